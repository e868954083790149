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
not for calls, so the writer does not assume the property is unique: before its first write it
reads the property's definition (``GET /crm/v3/properties/calls/<key_property>``, once per
writer) and works in one of two modes (:class:`KeyMode`, logged, and on ``key_mode``):

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
import html
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import aiohttp
import structlog
from cachetools import TTLCache

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.config import DealsPolicy, HubSpotOptions, WriterSettings
from sscl_daemon.crm import batch, content, deals, enrich
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    PermanentFailure,
    RetryLater,
    WriteContext,
    WriteResult,
)
from sscl_daemon.crm.batch import Pending
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution, parse_time
from sscl_daemon.crm.deals import Deal
from sscl_daemon.crm.enrich import Enrichment, EnrichResult, Updated
from sscl_daemon.crm.http import Auth, BearerToken, OAuthBearer, Response
from sscl_daemon.crm.oauth import OAuthClient
from sscl_daemon.crm.templates import Style
from sscl_daemon.crm.wiring import ChunkedWriterBase

if TYPE_CHECKING:
    from sscl_daemon.ringcentral.media import Audio

CRM: Final = "HubSpot"
KEY_PROPERTY: Final = "sscl_call_key"
DEFAULT_STYLE: Final = Style()
CALL_TO_CONTACT: Final = 194  # HUBSPOT_DEFINED association type id, call -> contact
CALL_TO_DEAL: Final = 206  # call -> deal
BATCH_MAX: Final = 100
SEARCH_PAGE: Final = 200
SEARCH_PAGES: Final = 5
OWNER_PAGES: Final = 20
CLIENT_WINDOW: Final = timedelta(hours=1)
# How long HubSpot's search index may lag behind a create (it documents "a few moments").
INDEX_SETTLE: Final = 15.0
# Where uploaded recordings and voicemail go in the portal's file manager.
MEDIA_FOLDER: Final = "/sscl-daemon/calls"
# Keys whose uncertain attempt we are waiting out (bounded; losing one only waits again).
SETTLING_MAX: Final = 10_000

log = structlog.get_logger(__name__)


class KeyMode(enum.StrEnum):
    """How the writer finds its own earlier records (see the module docstring)."""

    UNIQUE = "unique"  # the key property has unique values: HubSpot refuses repeats
    SEARCH = "search"  # a plain property: search by key before creating after an attempt


# Default call outcomes of every portal (``hs_call_disposition`` takes their GUIDs).
DISPOSITION_BUSY: Final = "9d9162e7-6cf3-4944-bf63-4dff82258764"
DISPOSITION_CONNECTED: Final = "f240bbac-87c9-4f6e-bf70-924b57d47db7"
DISPOSITION_NO_ANSWER: Final = "73a0d17f-1163-4015-bdd5-ec830791da20"

_DISPOSITIONS: Final = {
    content.CallOutcome.ANSWERED: DISPOSITION_CONNECTED,
    content.CallOutcome.TRANSFERRED: DISPOSITION_CONNECTED,
    # The caller reached the user's voicemail: for the user a missed call ("Left voicemail"
    # is the rep's outcome of an outbound call), with the voicemail in the note.
    content.CallOutcome.VOICEMAIL: DISPOSITION_NO_ANSWER,
    content.CallOutcome.BUSY: DISPOSITION_BUSY,
    content.CallOutcome.NO_ANSWER: DISPOSITION_NO_ANSWER,
    content.CallOutcome.REJECTED: DISPOSITION_NO_ANSWER,
    content.CallOutcome.ABANDONED: DISPOSITION_NO_ANSWER,
}
_STATUSES: Final = {
    content.CallOutcome.BUSY: "BUSY",
    content.CallOutcome.NO_ANSWER: "NO_ANSWER",
    content.CallOutcome.VOICEMAIL: "NO_ANSWER",
    content.CallOutcome.REJECTED: "NO_ANSWER",
    content.CallOutcome.ABANDONED: "NO_ANSWER",
    content.CallOutcome.INCOMPLETE: "FAILED",
}
_CALL_FIELDS: Final = ("hs_call_external_id", "hs_call_body", "hs_timestamp")
_CONTACT_FIELDS: Final = (
    "firstname",
    "lastname",
    "phone",
    "mobilephone",
    "hubspot_owner_id",
    "createdate",
    "lastmodifieddate",
)


# -- pure mapping ----------------------------------------------------------------------------


def call_properties(
    call: CompletedCall,
    contact_name: str | None = None,
    owner_id: str | None = None,
    key_property: str = KEY_PROPERTY,
    style: Style = DEFAULT_STYLE,
) -> dict[str, str]:
    """The ``properties`` of a call engagement, every value a string (the spec's type).

    ``hs_timestamp`` is an instant (HubSpot shows it in each user's own zone); the style's
    zone is that of the times written in the note. Recordings are never put in
    ``hs_call_recording_url``: HubSpot plays only an audio file it can fetch, and RingCentral's
    needs a token; the note links them (``link``) or they are attached later (``upload``)."""
    outcome = content.outcome(call)
    props = {
        "hs_timestamp": content.iso_utc(call.start_time),
        "hs_call_title": style.subject(call, contact_name),
        "hs_call_body": style.note_html(call, contact_name),
        "hs_call_duration": str(max(call.talk_ms, 0)),
        "hs_call_status": _STATUSES.get(outcome, "COMPLETED"),
        "hs_call_external_id": call.telephony_session_id,
        key_property: call.key,
    }
    # HubSpot knows only the two directions of a call with the outside world.
    if call.direction is Direction.INBOUND:
        props["hs_call_direction"] = "INBOUND"
        if call.external_number:
            props["hs_call_from_number"] = call.external_number
    elif call.direction is Direction.OUTBOUND:
        props["hs_call_direction"] = "OUTBOUND"
        if call.external_number:
            props["hs_call_to_number"] = call.external_number
    disposition = _DISPOSITIONS.get(outcome)
    if disposition:
        props["hs_call_disposition"] = disposition
    if owner_id:
        props["hubspot_owner_id"] = owner_id
    return props


def associations(contacts: Sequence[Contact]) -> list[dict[str, object]]:
    return [
        {
            "to": {"id": c.id},
            "types": [
                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CALL_TO_CONTACT}
            ],
        }
        for c in contacts
    ]


def create_input(
    call: CompletedCall,
    contacts: Sequence[Contact] = (),
    owner_id: str | None = None,
    key_property: str = KEY_PROPERTY,
    style: Style = DEFAULT_STYLE,
) -> dict[str, object]:
    """One ``SimplePublicObjectInputForCreate`` (also a batch input, traced by our key)."""
    name = contacts[0].name if len(contacts) == 1 else None
    return {
        "properties": call_properties(call, name, owner_id, key_property, style),
        "associations": associations(contacts),
        "objectWriteTraceId": call.key,
    }


def contact_search(e164: str) -> dict[str, object]:
    """Contacts whose phone or mobile phone is this number, as typed or as HubSpot normalised it."""
    groups: list[dict[str, object]] = [
        {"filters": [{"propertyName": prop, "operator": "EQ", "value": e164}]}
        for prop in ("phone", "mobilephone")
    ]
    national = content.national_digits(e164)
    if national:
        groups.extend(
            {"filters": [{"propertyName": prop, "operator": "EQ", "value": national}]}
            for prop in (
                "hs_searchable_calculated_phone_number",
                "hs_searchable_calculated_mobile_number",
            )
        )
    return {"filterGroups": groups, "properties": list(_CONTACT_FIELDS), "limit": 10}


def client_log_search(
    calls: Sequence[CompletedCall], after: str | None = None, key_property: str = KEY_PROPERTY
) -> dict[str, object]:
    """Call engagements near these calls that are not ours (no ``sscl_call_key``)."""
    low = min(c.start_time for c in calls) - CLIENT_WINDOW
    high = max(c.end_time for c in calls) + CLIENT_WINDOW
    body: dict[str, object] = {
        "filterGroups": [
            {
                "filters": [
                    {
                        "propertyName": "hs_timestamp",
                        "operator": "BETWEEN",
                        "value": _epoch_ms(low),
                        "highValue": _epoch_ms(high),
                    },
                    {"propertyName": key_property, "operator": "NOT_HAS_PROPERTY"},
                ]
            }
        ],
        "properties": [*_CALL_FIELDS, key_property],
        "sorts": [{"propertyName": "hs_timestamp", "direction": "ASCENDING"}],
        "limit": SEARCH_PAGE,
    }
    if after:
        body["after"] = after
    return body


def _epoch_ms(moment: datetime) -> str:
    """Search filters on datetime properties take epoch milliseconds (as strings)."""
    return str(int(content.utc(moment).timestamp() * 1000))


def client_log_for(
    call: CompletedCall,
    records: Sequence[Mapping[str, object]],
    key_property: str = KEY_PROPERTY,
) -> str | None:
    """The id of a record a user's client made for this call, if any."""
    sessions = {call.telephony_session_id, call.session_id} - {None}
    texts: list[tuple[str, str | None]] = []
    for record in records:
        rid = str(record.get("id", ""))
        props = _props(record)
        if props.get(key_property):
            continue
        if props.get("hs_call_external_id") in sessions:
            return rid
        texts.append((rid, props.get("hs_call_body")))
    found = content.first_match(call, texts)
    return found[0] if found else None


def contact_from(record: Mapping[str, object]) -> Contact:
    props = _props(record)
    name = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p) or None
    return Contact(
        id=str(record.get("id", "")),
        name=name,
        owner_id=props.get("hubspot_owner_id") or None,
        created=parse_time(props.get("createdate") or record.get("createdAt")),
        updated=parse_time(props.get("lastmodifieddate") or record.get("updatedAt")),
    )


def _props(record: Mapping[str, object]) -> dict[str, str]:
    raw = record.get("properties")
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, str)}


def _results(response: Response) -> list[Mapping[str, object]]:
    raw = response.object().get("results")
    return [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []


def is_key_conflict(status: int, body: object, key_property: str) -> bool:
    """Whether HubSpot's error answer may mean "a record with this key exists" (pure).

    Read from HubSpot's documented error shape, not its wording: a 409 or category
    ``CONFLICT``, or a ``VALIDATION_ERROR`` one of whose ``errors`` names the key property
    in ``context.propertyName`` (or, lacking context, in its message). The caller confirms by
    reading the record before answering ``AlreadyExisted``."""
    if not isinstance(body, dict):
        return status == 409
    category = body.get("category")
    if status == 409 or category == "CONFLICT":
        return True
    if category != "VALIDATION_ERROR":
        return False
    errors = body.get("errors")
    for err in errors if isinstance(errors, list) else []:
        if not isinstance(err, dict):
            continue
        context = err.get("context")
        names = context.get("propertyName") if isinstance(context, dict) else None
        if isinstance(names, list) and key_property in names:
            return True
        if names is None and key_property in str(err.get("message", "")):
            return True
    return False


def key_search(keys: Sequence[str], key_property: str = KEY_PROPERTY) -> dict[str, object]:
    """The calls search for records carrying any of ``keys`` (at most one batch's)."""
    return {
        "filterGroups": [
            {"filters": [{"propertyName": key_property, "operator": "IN", "values": list(keys)}]}
        ],
        "properties": [key_property],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "limit": SEARCH_PAGE,
    }


# -- the writer ------------------------------------------------------------------------------


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
            clients = await self._client_logs([p.call for p in open_])
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
            p.result = batch.created(CRM, answer.object().get("id"), _body_of(p.payload))

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
        for record in _results(answer):
            props = _props(record)
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
                p.result = Created(by_key[p.call.key], _body_of(p.payload))
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
            contacts.append(
                {
                    "to": {"id": deal.id},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": CALL_TO_DEAL,
                        }
                    ],
                }
            )

    async def _deal(self, contact: str) -> Deal | LookupFailure | None:
        cached = self._deals.get(contact)
        if cached is None:
            linked = await self.http.request(
                "GET",
                f"{self._base}/crm/v4/objects/contacts/{quote(contact, safe='')}"
                "/associations/deals",
                params={"limit": "100"},
            )
            if not isinstance(linked, Response):
                return linked
            ids = [str(r.get("toObjectId")) for r in _results(linked) if r.get("toObjectId")]
            cached = ()
            if ids:
                read = await self.http.request(
                    "POST",
                    f"{self._base}/crm/v3/objects/deals/batch/read",
                    json_body={
                        "inputs": [{"id": i} for i in ids],
                        "properties": ["hs_is_closed", "hs_lastmodifieddate"],
                        "propertiesWithHistory": [],
                    },
                )
                if not isinstance(read, Response):
                    return read
                cached = tuple(
                    Deal(
                        str(r["id"]),
                        _props(r).get("hs_is_closed") != "true",
                        parse_time(_props(r).get("hs_lastmodifieddate") or r.get("updatedAt")),
                    )
                    for r in _results(read)
                    if r.get("id")
                )
            self._deals[contact] = cached
        return deals.choose(cached, self._settings.contacts.deals)

    # -- updates after the create (crm/enrich.py) --------------------------------------------

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        """Attach the audio (files API, ``hs_attachment_ids``) and add the section to the
        note if nobody edited it, else in a note of its own associated with the call."""
        url = f"{self._base}/crm/v3/objects/calls/{quote(e.record_id, safe='')}"
        answer = await self.http.request(
            "GET",
            url,
            params={"properties": "hs_call_body,hs_attachment_ids"},
            accept=frozenset({404}),
        )
        if not isinstance(answer, Response):
            return answer
        if answer.status == 404:
            return PermanentFailure(f"{CRM} call {e.record_id} no longer exists")
        props = _props(answer.object())
        attached = [a for a in props.get("hs_attachment_ids", "").split(";") if a]
        update: dict[str, str] = {}
        for audio in e.audio:
            # A file of the same name in our folder is replaced, keeping its id: an
            # uncertain retry attaches the same file, never a second one.
            file_id = await self._upload(audio)
            if not isinstance(file_id, str):
                return file_id
            if file_id not in attached:
                attached.append(file_id)
                update["hs_attachment_ids"] = ";".join(attached)
        section = enrich.section_html(e)
        written: str | None = None
        body = props.get("hs_call_body")
        if section and enrich.added(body, section):
            written = body  # an earlier attempt of this update wrote it before a crash
        elif section and enrich.same_note(body, e.written):
            written = f"{body}{section}"
            update["hs_call_body"] = written
        if update:
            patched = await self.http.request("PATCH", url, json_body={"properties": update})
            if not isinstance(patched, Response):
                return patched
        if section and written is None:
            beside = await self._note_beside(e, section, ctx)
            if beside is not None:
                return beside
            return Updated(f"{e.kind} added beside the edited note", None)
        return Updated(f"{e.kind} added to the call", written)

    async def _upload(self, audio: Audio) -> str | LookupFailure:
        def form() -> aiohttp.FormData:
            audio.file.seek(0)
            data = aiohttp.FormData()
            data.add_field(
                "file", audio.file, filename=audio.filename, content_type=audio.content_type
            )
            data.add_field("fileName", audio.filename)
            data.add_field("folderPath", MEDIA_FOLDER)
            data.add_field("options", json.dumps({"access": "PRIVATE", "overwrite": True}))
            return data

        answer = await self.http.request("POST", f"{self._base}/files/v3/files", data=form)
        if not isinstance(answer, Response):
            return answer
        file_id = answer.object().get("id")
        if file_id is None:
            return RetryLater(f"{CRM} file upload answered without an id", uncertain=True)
        return str(file_id)

    async def _note_beside(
        self, e: Enrichment, section: str, ctx: WriteContext
    ) -> LookupFailure | None:
        """A note with the section, associated with the call (its body is a person's now).
        It carries an ``sscl-update`` line, so a retry finds the note among the call's."""
        marker = enrich.update_marker(e)
        if ctx.uncertain or ctx.attempt > 1:
            done = await self._noted(e.record_id, marker)
            if done is not False:
                return done if not isinstance(done, bool) else None
        note = await self.http.request(
            "POST",
            f"{self._base}/crm/v3/objects/notes",
            json_body={
                "properties": {
                    "hs_timestamp": content.iso_utc(e.call.end_time),
                    "hs_note_body": f"{section}<p>{html.escape(marker)}</p>",
                }
            },
        )
        if not isinstance(note, Response):
            return note
        note_id = note.object().get("id")
        if note_id is None:
            return RetryLater(f"{CRM} note create answered without an id", uncertain=True)
        linked = await self.http.request(
            "PUT",
            f"{self._base}/crm/v4/objects/notes/{note_id}/associations/default/calls/"
            f"{quote(e.record_id, safe='')}",
        )
        return linked if not isinstance(linked, Response) else None

    async def _noted(self, call_id: str, marker: str) -> bool | LookupFailure:
        """Whether a note of the call carries ``marker`` (associations read, not searched)."""
        linked = await self.http.request(
            "GET",
            f"{self._base}/crm/v4/objects/calls/{quote(call_id, safe='')}/associations/notes",
            params={"limit": "100"},
        )
        if not isinstance(linked, Response):
            return linked
        ids = [str(r.get("toObjectId")) for r in _results(linked) if r.get("toObjectId")]
        if not ids:
            return False
        read = await self.http.request(
            "POST",
            f"{self._base}/crm/v3/objects/notes/batch/read",
            json_body={
                "inputs": [{"id": i} for i in ids],
                "properties": ["hs_note_body"],
                "propertiesWithHistory": [],
            },
        )
        if not isinstance(read, Response):
            return read
        return any(marker in _props(r).get("hs_note_body", "") for r in _results(read))

    # -- the key mode ------------------------------------------------------------------------

    async def _mode(self) -> KeyMode | LookupFailure:
        """The key property's mode, read from its definition on the first write."""
        if self.key_mode is not None:
            return self.key_mode
        answer = await self.http.request(
            "GET",
            f"{self._base}/crm/v3/properties/calls/{quote(self.key_property, safe='')}",
            accept=frozenset({403, 404}),
        )
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
            self._read_by_key(keys) if mode is KeyMode.UNIQUE else self._search_keys(keys)
        )

    async def _search_keys(self, keys: Sequence[str]) -> dict[str, str] | LookupFailure:
        """key -> id of the oldest record carrying it (search; lags behind writes)."""
        found: dict[str, str] = {}
        after: str | None = None
        for _ in range(SEARCH_PAGES):
            body = key_search(keys, self.key_property)
            if after:
                body["after"] = after
            answer = await self.http.request(
                "POST", f"{self._base}/crm/v3/objects/calls/search", json_body=body
            )
            if not isinstance(answer, Response):
                return answer
            for record in _results(answer):
                key = _props(record).get(self.key_property)
                if key and record.get("id"):
                    found.setdefault(key, str(record["id"]))
            after = _next_after(answer)
            if not after:
                break
        return found

    # -- lookups -----------------------------------------------------------------------------

    async def _read_by_key(self, keys: Sequence[str]) -> dict[str, str] | LookupFailure:
        """key -> record id for the records that carry our key (batch read by idProperty)."""
        answer = await self.http.request(
            "POST",
            f"{self._base}/crm/v3/objects/calls/batch/read",
            json_body={
                "idProperty": self.key_property,
                "inputs": [{"id": k} for k in keys],
                "properties": [self.key_property],
                "propertiesWithHistory": [],
            },
            accept=frozenset({404}),
        )
        if not isinstance(answer, Response):
            return answer
        found: dict[str, str] = {}
        for record in _results(answer):
            key = _props(record).get(self.key_property)
            if key and record.get("id"):
                found[key] = str(record["id"])
        return found

    async def _client_logs(
        self, calls: Sequence[CompletedCall]
    ) -> list[Mapping[str, object]] | LookupFailure:
        records: list[Mapping[str, object]] = []
        after: str | None = None
        for _ in range(SEARCH_PAGES):
            answer = await self.http.request(
                "POST",
                f"{self._base}/crm/v3/objects/calls/search",
                json_body=client_log_search(calls, after, self.key_property),
            )
            if not isinstance(answer, Response):
                return answer
            records.extend(_results(answer))
            after = _next_after(answer)
            if not after:
                break
        return records

    async def _find_contacts(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        answer = await self.http.request(
            "POST", f"{self._base}/crm/v3/objects/contacts/search", json_body=contact_search(number)
        )
        if not isinstance(answer, Response):
            return answer
        return tuple(contact_from(r) for r in _results(answer) if r.get("id"))

    async def _create_contact(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        props = {"phone": number, "firstname": call.external_name or number}
        answer = await self.http.request(
            "POST", f"{self._base}/crm/v3/objects/contacts", json_body={"properties": props}
        )
        if not isinstance(answer, Response):
            return answer
        return contact_from(answer.object())

    async def _list_owners(self) -> dict[str, str] | LookupFailure:
        owners: dict[str, str] = {}
        after: str | None = None
        for _ in range(OWNER_PAGES):
            params = {"limit": "100", "archived": "false"}
            if after:
                params["after"] = after
            answer = await self.http.request("GET", f"{self._base}/crm/v3/owners", params=params)
            if not isinstance(answer, Response):
                return answer
            for owner in _results(answer):
                email, oid = owner.get("email"), owner.get("id")
                if isinstance(email, str) and email and oid is not None:
                    owners[email.lower()] = str(oid)
            after = _next_after(answer)
            if not after:
                break
        return owners


def _body_of(payload: Mapping[str, object]) -> str | None:
    """The note a create input carries (what later updates compare with)."""
    props = payload.get("properties")
    body = props.get("hs_call_body") if isinstance(props, dict) else None
    return body if isinstance(body, str) else None


def _next_after(answer: Response) -> str | None:
    paging = answer.object().get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return str(after) if after else None
