"""HubSpot writer: a ``CompletedCall`` becomes a CRM v3 *call* engagement (dispatch -> here -> HubSpot).

Requests (all under ``base_url``, JSON, ``Authorization: Bearer``):

* ``POST /crm/v3/objects/calls`` (one call) or ``POST /crm/v3/objects/calls/batch/create``
  (2..100 calls) with ``properties`` (every value a string, as the published OpenAPI spec
  types them) and ``associations`` (call -> contact, HUBSPOT_DEFINED type 194);
* ``GET /crm/v3/properties/calls/<key_property>`` once per writer (the key mode, below);
* ``POST /crm/v3/objects/calls/batch/read`` with ``idProperty`` = our key property after an
  uncertain attempt when it is unique (strongly consistent, unlike search), else
  ``POST /crm/v3/objects/calls/search`` by key;
* ``POST /crm/v3/objects/calls/search`` once per write/batch for logs made by users' own
  clients (not with ``detect_client_logs = false``); ``POST /crm/v3/objects/contacts/search`` per uncached number;
  ``GET /crm/v3/owners`` once per cache TTL; with a ``deals`` policy, per uncached contact
  ``GET /crm/v4/objects/contacts/{id}/associations/deals`` and a ``deals/batch/read`` of their
  ``hs_is_closed`` / ``hs_lastmodifieddate``: the chosen open deal is associated (type 206).

Exactly once. One-time setup in the portal: a call property ``sscl_call_key`` (the writer's
``key_property``, single-line text) created in the property settings or with ``POST
/crm/v3/properties/calls``. Every log carries our key in it (and in the note). HubSpot
documents unique-value properties for contacts, companies, deals, tickets and custom objects,
not for calls, so the writer does not assume the property is unique: at start (``prepare``,
else before its first write) it reads the property's definition (``GET
/crm/v3/properties/calls/<key_property>``, once per writer) and works in one of two modes
(:class:`KeyMode`, logged once, on ``key_mode`` and in ``status`` through ``facts``):

* ``unique`` (``hasUniqueValue: true``, where a portal allows it): HubSpot refuses a second
  record with the same key; that refusal -- recognised by HubSpot's documented error shape, a
  409 / ``CONFLICT`` or a ``VALIDATION_ERROR`` whose errors name the key property, never by
  the wording -- and an uncertain earlier attempt are answered by reading the record by
  ``idProperty=<key_property>`` (``batch/read``, strongly consistent): ``AlreadyExisted``.
* ``search`` (a plain property, or a token that may not read property definitions): after an
  earlier attempt that may have stored the call (uncertain, or any retry) the writer searches
  the calls by key (``IN`` filter, one search per batch) before creating. The outbox's claim
  keeps every other worker away from the key meanwhile. Search is an index that lags behind
  writes, so when an *uncertain* attempt's key is not found the writer answers "retry later"
  until ``index_settle`` seconds have passed since it first looked, then searches again and
  only then creates.

A missing property (404) is a permanent failure naming the setup step. We only ever create:
an existing record is never updated, so edits a user made to a log are never overwritten.

Logs made by a user's own RingCentral client: before creating, one search lists the call
engagements without our key property whose ``hs_timestamp`` lies within an hour of the
calls; a record is the same call when its ``hs_call_external_id`` is the call's RingCentral
telephony session id or session id, or when its body names either (App Connect writes a
"Session Id" line into the body; see ``crm/content.py``). Search is an index that lags by
seconds, so a client log written in the same second can still be missed; our own records do
not depend on it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import aiohttp
import structlog
from cachetools import TTLCache

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import DealsPolicy, HubSpotOptions, WriterSettings
from sscl_daemon.crm import batch, deals
from sscl_daemon.crm.base import AlreadyExisted, Created, PermanentFailure, RetryLater
from sscl_daemon.crm.batch import Pending
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution
from sscl_daemon.crm.deals import Deal
from sscl_daemon.crm.enrich import Enrichment, EnrichResult
from sscl_daemon.crm.http import Auth, BearerToken, OAuthBearer, Response
from sscl_daemon.crm.hubspot_api import HubSpotApi
from sscl_daemon.crm.hubspot_enrich import enrich_call

# The mapping's public names, importable from here as they were before the split.
from sscl_daemon.crm.hubspot_mapping import CALL_TO_CONTACT as CALL_TO_CONTACT
from sscl_daemon.crm.hubspot_mapping import CALL_TO_DEAL as CALL_TO_DEAL
from sscl_daemon.crm.hubspot_mapping import CRM as CRM
from sscl_daemon.crm.hubspot_mapping import DISPOSITION_BUSY as DISPOSITION_BUSY
from sscl_daemon.crm.hubspot_mapping import DISPOSITION_CONNECTED as DISPOSITION_CONNECTED
from sscl_daemon.crm.hubspot_mapping import DISPOSITION_NO_ANSWER as DISPOSITION_NO_ANSWER
from sscl_daemon.crm.hubspot_mapping import KEY_PROPERTY as KEY_PROPERTY
from sscl_daemon.crm.hubspot_mapping import (
    association,
    body_of,
    client_log_for,
    create_input,
    is_key_conflict,
    props_of,
    results_of,
)
from sscl_daemon.crm.hubspot_mapping import call_properties as call_properties
from sscl_daemon.crm.hubspot_mapping import key_search as key_search
from sscl_daemon.crm.oauth import OAuthClient
from sscl_daemon.crm.templates import Style
from sscl_daemon.crm.wiring import ChunkedWriterBase

if TYPE_CHECKING:
    from sscl_daemon.crm.base import WriteContext, WriteResult

BATCH_MAX: Final = 100
# How long HubSpot's search index may lag behind a create (it documents "a few moments").
INDEX_SETTLE: Final = 15.0
# Keys whose uncertain attempt we are waiting out (bounded; losing one only waits again).
SETTLING_MAX: Final = 10_000

log = structlog.get_logger(__name__)


class KeyMode(enum.StrEnum):
    """How the writer finds its own earlier records (see the module docstring)."""

    UNIQUE = "unique"  # the key property has unique values: HubSpot refuses repeats
    SEARCH = "search"  # a plain property: search by key before creating after an attempt


class HubSpotWriter(ChunkedWriterBase):
    """Writes call engagements to one HubSpot portal (private-app token or OAuth)."""

    chunk_size = BATCH_MAX

    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        opts = settings.options
        if not isinstance(opts, HubSpotOptions):
            raise TypeError(
                f'writer {settings.name!r}: HubSpotWriter needs a writer with type = "hubspot"'
            )
        self._base = opts.base_url.rstrip("/")
        self.key_property = opts.key_property
        self._style = Style.of(settings.contacts)
        # Contact id -> its deals, kept as long as contact lookups.
        self._deals: TTLCache[str, tuple[Deal, ...]] = TTLCache(
            maxsize=max(settings.contacts.cache_size, 1), ttl=settings.contacts.cache_ttl
        )
        self.recordings = settings.contacts.recordings
        # None until the property's definition was read (the first write asks).
        self.key_mode: KeyMode | None = None
        self.index_settle = INDEX_SETTLE
        self._clock: Callable[[], float] = time.monotonic
        self._settling: TTLCache[str, float] = TTLCache(
            maxsize=SETTLING_MAX, ttl=INDEX_SETTLE * 20, timer=time.monotonic
        )
        auth: Auth
        if opts.oauth is not None:
            self.oauth: OAuthClient | None = OAuthClient(
                session, f"{self._base}/oauth/v1/token", opts.oauth, timeout=settings.timeout
            )
            auth = OAuthBearer(self.oauth)
        elif opts.access_token is not None:
            self.oauth = None
            auth = BearerToken(opts.access_token.reveal())
        else:
            raise ValueError(
                f"[writers.{settings.name}]: give access_token (private app) or"
                " client_id, client_secret and refresh_token (OAuth app)"
            )
        super().__init__(
            CRM,
            settings,
            session,
            auth,
            find=self._find_contacts,
            create=self._create_contact,
            list_users=self._list_owners,
        )
        self.api = HubSpotApi(self.http, self._base, self.key_property)

    def __repr__(self) -> str:
        return f"HubSpotWriter(name={self._settings.name!r}, base_url={self._base!r})"

    # -- steps -------------------------------------------------------------------------------

    def _payload(self, call: CompletedCall, resolved: Resolution) -> dict[str, object]:
        return create_input(
            call, resolved.contacts, resolved.owner_id, self.key_property, self._style
        )

    async def _write_chunk(self, chunk: list[Pending]) -> None:
        mode = await self._mode()
        if not isinstance(mode, KeyMode):
            batch.fail_open(chunk, mode)
            return
        # Calls an earlier attempt may have stored (any retry, with a non-unique key).
        earlier = [
            p for p in chunk if p.ctx.uncertain or (mode is KeyMode.SEARCH and p.ctx.attempt > 1)
        ]
        if earlier:
            found = await self._ours(mode, [p.call.key for p in earlier])
            if not isinstance(found, dict):
                batch.fail_open(earlier, found)
            else:
                for p in earlier:
                    if p.call.key in found:
                        self._settling.pop(p.call.key, None)
                        p.result = AlreadyExisted(found[p.call.key], ours=True)
                    elif mode is KeyMode.SEARCH and p.ctx.uncertain:
                        wait = self._still_settling(p.call.key)
                        if wait > 0:
                            p.result = RetryLater(
                                f"{CRM} search may not show a call logged seconds ago yet;"
                                " looking again before creating",
                                delay=wait,
                                uncertain=True,
                            )
        open_ = batch.still_open(chunk)
        if not open_:
            return
        if self._settings.contacts.detect_client_logs:
            clients = await self.api.client_logs([p.call for p in open_])
            if not isinstance(clients, list):
                batch.fail_open(open_, clients)
                return
            for p in open_:
                rid = client_log_for(p.call, clients, self.key_property)
                if rid:
                    p.result = AlreadyExisted(rid)
        ready = await batch.prepare(chunk, self.resolver, self._payload)
        if self._settings.contacts.deals is not DealsPolicy.NONE:
            await self._attach_deals(ready)
            ready = batch.still_open(ready)
        await batch.send(ready, self._create_one, self._create_many)

    async def _create_one(self, p: Pending) -> None:
        body = {k: v for k, v in p.payload.items() if k != "objectWriteTraceId"}
        answer = await self.http.request(
            "POST",
            f"{self._base}/crm/v3/objects/calls",
            json_body=body,
            accept=frozenset({400, 409}),
        )
        if not isinstance(answer, Response):
            p.result = answer
        elif answer.status in (400, 409):
            p.result = await self._conflict_or_failure(p, answer)
        else:
            p.result = batch.created(CRM, answer.object().get("id"), body_of(p.payload))

    async def _create_many(self, ready: list[Pending]) -> None:
        answer = await self.http.request(
            "POST",
            f"{self._base}/crm/v3/objects/calls/batch/create",
            json_body={"inputs": [p.payload for p in ready]},
            accept=frozenset({400, 409}),
        )
        if not isinstance(answer, Response):
            batch.fail_open(ready, answer)
            return
        if answer.status in (400, 409):
            # One bad or already-logged input fails the whole batch: settle them one by one.
            for p in ready:
                await self._create_one(p)
            return
        by_key: dict[str, str] = {}
        for record in results_of(answer):
            props = props_of(record)
            key = props.get(self.key_property) or record.get("objectWriteTraceId")
            if isinstance(key, str) and record.get("id"):
                by_key[key] = str(record["id"])
        errors = answer.object().get("errors")
        failed: dict[str, str] = {}
        for err in errors if isinstance(errors, list) else []:
            if not isinstance(err, dict):
                continue
            context = err.get("context")
            traces = context.get("objectWriteTraceId") if isinstance(context, dict) else None
            for key in traces if isinstance(traces, list) else []:
                failed[str(key)] = str(err.get("message", "rejected"))
        for p in ready:
            if p.call.key in by_key:
                p.result = Created(by_key[p.call.key], body_of(p.payload))
            elif p.call.key in failed:
                p.result = PermanentFailure(f"{CRM} rejected the call log: {failed[p.call.key]}")
            else:
                p.result = RetryLater(f"{CRM}: batch create did not report {p.call.key}")

    async def _conflict_or_failure(self, p: Pending, answer: Response) -> WriteResult:
        message = self.http.reason(answer)
        if is_key_conflict(answer.status, answer.body, self.key_property):
            found = await self._ours(self.key_mode or KeyMode.SEARCH, [p.call.key])
            if isinstance(found, dict) and p.call.key in found:
                return AlreadyExisted(found[p.call.key], ours=True)
            if not isinstance(found, dict):
                return found
        return PermanentFailure(f"{CRM} rejected the call log (HTTP {answer.status}): {message}")

    async def _attach_deals(self, ready: list[Pending]) -> None:
        """Associate each call with its contact's open deal the ``deals`` policy picks (a
        call with exactly one contact; the deals are cached per contact)."""
        for p in ready:
            associated = p.payload.get("associations")
            contacts = associated if isinstance(associated, list) else []
            if len(contacts) != 1:
                continue
            contact = str(contacts[0]["to"]["id"])
            deal = await self._deal(contact)
            if deal is None:
                continue
            if not isinstance(deal, Deal):
                p.result = deal
                continue
            contacts.append(association(deal.id, CALL_TO_DEAL))

    async def _deal(self, contact: str) -> Deal | LookupFailure | None:
        cached = self._deals.get(contact)
        if cached is None:
            found = await self.api.contact_deals(contact)
            if not isinstance(found, tuple):
                return found
            cached = self._deals[contact] = found
        return deals.choose(cached, self._settings.contacts.deals)

    # -- updates after the create (crm/enrich.py) --------------------------------------------

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        """Attach the audio and add the section to the call (``crm/hubspot_enrich.py``)."""
        return await enrich_call(self.api, e, ctx)

    # -- the key mode ------------------------------------------------------------------------

    async def _mode(self) -> KeyMode | LookupFailure:
        """The key property's mode, read from its definition at start or on the first write."""
        if self.key_mode is not None:
            return self.key_mode
        answer = await self.api.key_property_definition()
        if not isinstance(answer, Response):
            return answer
        if answer.status == 404:
            return PermanentFailure(
                f"{CRM} has no call property {self.key_property!r} (HTTP 404:"
                f" {self.http.reason(answer)}); create it as docs/crm-setup.md says"
            )
        # A token that may not read property definitions: searching by key is right for a
        # unique property too, only one request dearer after an uncertain attempt.
        unique = answer.status == 200 and answer.object().get("hasUniqueValue") is True
        self.key_mode = KeyMode.UNIQUE if unique else KeyMode.SEARCH
        log.info(
            "crm.key_property.resolved",
            writer=self.name,
            property=self.key_property,
            mode=self.key_mode.value,
            definition_readable=answer.status == 200,
        )
        return self.key_mode

    async def prepare(self) -> None:
        """The key mode read at start (crm/base.py ``Described``); a failed read is retried
        by the first write."""
        await self._mode()

    def facts(self) -> dict[str, str]:
        return {"key_mode": self.key_mode.value} if self.key_mode is not None else {}

    def _still_settling(self, key: str) -> float:
        """Seconds to wait before creating after an uncertain attempt not found by search."""
        now = self._clock()
        first = self._settling.setdefault(key, now)
        left = self.index_settle - (now - first)
        if left <= 0:
            self._settling.pop(key, None)
            return 0.0
        return left

    async def _ours(self, mode: KeyMode, keys: Sequence[str]) -> dict[str, str] | LookupFailure:
        return await (
            self.api.read_by_key(keys) if mode is KeyMode.UNIQUE else self.api.search_keys(keys)
        )

    # -- the resolver's lookups (crm/contacts.py), made by the api ---------------------------

    async def _find_contacts(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        return await self.api.find_contacts(number)

    async def _create_contact(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        return await self.api.create_contact(call, number, owner_id)

    async def _list_owners(self) -> dict[str, str] | LookupFailure:
        return await self.api.list_owners()
