"""Pipedrive writer: a ``CompletedCall`` becomes a Pipedrive call log (dispatch -> here -> Pipedrive).

Requests (JSON; the API token in the ``x-api-token`` header as Pipedrive's authentication
page asks -- never the older ``api_token`` query parameter, which puts the token into URLs
and logs -- or ``Authorization: Bearer`` with OAuth, whose token answer names the company
host ``api_domain`` that requests then go to):

* ``POST /api/v1/callLogs`` -- the call log: ``user_id`` (owner), ``subject``, ``duration``
  (talk seconds, as a string), ``outcome`` (``connected``, ``no_answer``, ``busy``; an
  inbound call that went to the user's voicemail is ``no_answer`` with the voicemail in the
  note -- ``left_voicemail``, ``left_message`` and ``wrong_number`` are a rep's outcomes of
  an outbound call, which we never infer), ``from_phone_number`` / ``to_phone_number``
  (required: the caller's number and the number called -- on an inbound call the
  RingCentral number the caller dialled, else the extension), ``start_time`` / ``end_time``
  (required, UTC ``YYYY-MM-DD HH:MM:SS`` as the API asks), ``person_id``, ``org_id``,
  ``note`` (HTML, times in the writer's ``timezone``).
  Call logs take one person: with several matches and ``several_contacts = all`` the first
  one is used.
* ``GET /api/v2/persons/search?term=<national number>&fields=phone`` per uncached number;
  the candidates are kept when one of their phones *is* the call's number in E.164 (users
  type numbers in every format, so the search is not exact and we compare ourselves).
  Search items carry no record times, so with several matches and ``several_contacts =
  "most-recently-updated"`` or ``"oldest"`` one ``GET /api/v2/persons?ids=…`` reads their
  ``add_time`` / ``update_time``.
* ``POST /api/v2/persons`` when ``no_contact = create``.
* ``GET /api/v2/deals?person_id=…&status=open`` with a ``deals`` policy (cached per person
  like contact lookups): the chosen open deal becomes the call log's ``deal_id``.
* ``GET /api/v1/users`` once per cache TTL, for owners by e-mail.

Exactly once. Pipedrive call logs have no external id, no upsert and no search, so our key
rides in the note (``sscl-key:`` line, ``crm/content.py``), and:

* after an uncertain or failed earlier attempt (``ctx.uncertain`` or ``attempt > 1``: a
  timeout on our side is only a ``RetryLater`` to the dispatcher) we look for our key among
  the *activities* updated since an hour before the call (``GET /api/v2/activities?
  updated_since=<start − 1 h>&limit=500`` by cursor, at most :data:`SCAN_PAGES` pages; in a
  batch, the batch's one read below): every call log is an activity too, carrying the log's
  note, and unlike ``GET /v1/callLogs`` -- which lists only the logs *assigned* to the API
  token's user, while we assign each to the call's owner -- the list holds the logs of every
  owner, with or without a person. Found, the log is named by its id when the token user's
  call logs show it (``GET /api/v1/callLogs``, 50 a page, newest first, at most
  :data:`SCAN_PAGES` pages), else by its activity (``call-log-activity:<id>``, below); not
  found, there is no earlier log of ours and we create. Only when the hour holds more
  activities than those pages does the retry fall back to the token user's call logs (and
  the person's activities, below). Logs older than the call's hour are beyond this; the
  dispatcher's ledger covers them.
* logs made by a user's own client: when the call has a person, ``GET /api/v2/activities?
  person_id=…&updated_since=<start − 1 h>`` is read and an activity without a key of ours
  counts as the log (``AlreadyExisted("activity:<id>")``) when its note names the call's
  RingCentral session (App Connect's optional "Session Id" line), or when it is what App
  Connect writes with its *default* settings, which carry no session id (its Pipedrive
  connector, ``createCallLog``): a done activity whose type key contains "call", due at the
  call's start minute in UTC (``due_date`` / ``due_time`` ``HH:MM``, one minute either way
  for the call-log record's rounding) and whose subject is ``"<Inbound|Outbound> Call
  from|to …"`` in the call's direction (:func:`app_connect_activity`).
  An activity carrying our own key is not a client's: it is the activity Pipedrive keeps
  for a call log of ours that the scan did not show (``GET /v1/callLogs`` lists only the
  logs assigned to the token's user, and we assign each to the call's owner), so the answer
  is that log, ``ours`` -- by its id when the token user's logs show it, else by its
  activity (``call-log-activity:<id>``, whose updates go to that activity,
  ``crm/pipedrive_enrich.py``): an activity does not name its call log.
  ``detect_client_logs = false`` skips this request (such calls are then logged twice).
  A batch of several calls (``write_batch``: a backlog, or calls ending together) shares
  one read instead, ``GET /api/v2/activities?updated_since=<earliest start − 1 h>&limit=500``
  by cursor (:class:`ClientWindow`), each call then looking at its person's activities of
  its own hour: the same answer as a read per person, for one request per batch instead of
  one per call. When that window needs more than half as many pages as the batch has calls,
  or cannot be read, the batch reads per person as above.

Rate limits: every answer carries ``x-ratelimit-limit/remaining/reset`` (per token, 2 s
window) fed to the limiter; 429 answers are retried after ``Retry-After`` or the reset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

import aiohttp
import structlog
from cachetools import TTLCache

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import (
    DealsPolicy,
    PipedriveOptions,
    SeveralContactsPolicy,
    WriterSettings,
)
from sscl_daemon.crm import batch, content, deals
from sscl_daemon.crm.base import AlreadyExisted, Created, RetryLater
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution, parse_time
from sscl_daemon.crm.deals import Deal
from sscl_daemon.crm.http import Auth, HeaderToken, OAuthBearer, Response
from sscl_daemon.crm.oauth import ClientAuth, OAuthClient
from sscl_daemon.crm.pipedrive_api import CRM, PipedriveApi
from sscl_daemon.crm.pipedrive_enrich import LOG_ACTIVITY, enrich_call_log
from sscl_daemon.crm.pipedrive_mapping import app_connect_activity as app_connect_activity
from sscl_daemon.crm.pipedrive_mapping import call_log_body, int_id
from sscl_daemon.crm.pipedrive_reads import (
    ClientWindow,
    activities_of,
    client_log,
    data_of,
    our_activity,
    person_of,
    phones_of,
    rfc3339,
)
from sscl_daemon.crm.templates import Style
from sscl_daemon.crm.wiring import CrmWriterBase

if TYPE_CHECKING:
    from sscl_daemon.crm.base import WriteContext, WriteResult
    from sscl_daemon.crm.enrich import Enrichment, EnrichResult

__all__ = ["CRM", "SCAN_PAGES", "PipedriveWriter", "app_connect_activity", "call_log_body"]

SCAN_PAGES: Final = 4
PAGE: Final = 50
SEARCH_LIMIT: Final = 20
CLIENT_WINDOW: Final = timedelta(hours=1)
# Activities per page of a batch's client-log read (the v2 list's maximum).
WINDOW_PAGE: Final = 500
# Contact policies that need each match's record times.
_BY_TIME: Final = frozenset(
    {SeveralContactsPolicy.MOST_RECENTLY_UPDATED, SeveralContactsPolicy.OLDEST}
)


log = structlog.get_logger(__name__)


class PipedriveWriter(CrmWriterBase):
    """Writes call logs into one Pipedrive company."""

    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        options = settings.options
        if not isinstance(options, PipedriveOptions):
            raise TypeError(f"writer {settings.name!r}: pipedrive needs PipedriveOptions")
        self._style = Style.of(settings.contacts)
        # Person id -> their open deals, kept as long as contact lookups.
        self._deals: TTLCache[str, tuple[Deal, ...]] = TTLCache(
            maxsize=max(settings.contacts.cache_size, 1), ttl=settings.contacts.cache_ttl
        )
        self.recordings = settings.contacts.recordings
        oauth: OAuthClient | None = None
        auth: Auth
        if options.oauth is not None:
            oauth = OAuthClient(
                session,
                options.token_url,
                options.oauth,
                client_auth=ClientAuth.BASIC,
                timeout=settings.timeout,
            )
            auth = OAuthBearer(oauth)
        elif options.api_token is not None:
            auth = HeaderToken("x-api-token", options.api_token.reveal())
        else:
            raise ValueError(f"writer {settings.name!r}: give an api_token or OAuth credentials")
        super().__init__(
            CRM,
            settings,
            session,
            auth,
            find=self._search_persons,
            create=self._create_person,
            list_users=self._list_users,
            owner_valid=lambda owner: int_id(owner) is not None,
        )
        self.api = PipedriveApi(settings.name, self.http, options.base_url, oauth)

    def __repr__(self) -> str:
        return f"PipedriveWriter({self.name!r}, base_url={self.api.base!r})"

    # -- lookups -------------------------------------------------------------------------------

    async def _list_users(self) -> dict[str, str] | LookupFailure:
        answer = await self.api.get("/api/v1/users", {})
        if not isinstance(answer, Response):
            return answer
        users: dict[str, str] = {}
        data = data_of(answer)
        for user in data if isinstance(data, list) else []:
            if (
                isinstance(user, dict)
                and isinstance(user.get("email"), str)
                and user.get("active_flag", True)
            ):
                users[user["email"]] = str(user.get("id"))
        return users

    async def _search_persons(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        term = content.national_digits(number) or number.lstrip("+")
        answer = await self.api.get(
            "/api/v2/persons/search",
            {"term": term, "fields": "phone", "limit": str(SEARCH_LIMIT)},
        )
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        items = data.get("items") if isinstance(data, dict) else None
        found: list[Contact] = []
        for entry in items if isinstance(items, list) else []:
            item = entry.get("item") if isinstance(entry, dict) else None
            if not isinstance(item, dict):
                continue
            person = person_of(item)
            if person and any(content.same_number(p, number) for p in phones_of(item)):
                found.append(person)
        if len(found) > 1 and self._settings.contacts.several_contacts in _BY_TIME:
            return await self._with_times(found)
        return tuple(found)

    async def _with_times(self, persons: Sequence[Contact]) -> tuple[Contact, ...] | LookupFailure:
        """The persons as full records (with ``add_time`` / ``update_time``), same order
        (at most SEARCH_LIMIT of them, within the endpoint's 100 ids)."""
        answer = await self.api.get("/api/v2/persons", {"ids": ",".join(p.id for p in persons)})
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        full = {
            c.id: c
            for c in (
                person_of(r)
                for r in (data if isinstance(data, list) else [])
                if isinstance(r, dict)
            )
            if c is not None
        }
        return tuple(full.get(p.id, p) for p in persons)

    async def _deal(self, person: Contact) -> Deal | LookupFailure | None:
        """The person's open deal the ``deals`` policy picks (cached like contacts)."""
        cached = self._deals.get(person.id)
        if cached is None:
            answer = await self.api.get(
                "/api/v2/deals", {"person_id": person.id, "status": "open", "limit": "100"}
            )
            if not isinstance(answer, Response):
                return answer
            data = data_of(answer)
            cached = tuple(
                Deal(str(d["id"]), True, parse_time(d.get("update_time")))
                for d in (data if isinstance(data, list) else [])
                if isinstance(d, dict) and int_id(d.get("id")) is not None
            )
            self._deals[person.id] = cached
        return deals.choose(cached, self._settings.contacts.deals)

    async def _create_person(
        self, call: CompletedCall, number: str, owner: str | None
    ) -> Contact | LookupFailure:
        body: dict[str, object] = {
            "name": call.external_name or number,
            "phones": [{"value": number, "primary": True, "label": "work"}],
        }
        owner_id = int_id(owner)
        if owner_id is not None:
            body["owner_id"] = owner_id
        answer = await self.api.post("/api/v2/persons", body)
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        person = person_of(data) if isinstance(data, dict) else None
        if person is None:
            return RetryLater(f"{CRM} person create answered without an id")
        return person

    async def _client_activity(
        self, call: CompletedCall, person: Contact, window: ClientWindow | None
    ) -> AlreadyExisted | LookupFailure | None:
        since = content.utc(call.start_time) - CLIENT_WINDOW
        activities: Sequence[Mapping[str, object]]
        if window is not None:
            activities = window.of(person, since)
        else:
            answer = await self.api.get(
                "/api/v2/activities",
                {"person_id": person.id, "updated_since": rfc3339(since), "limit": "100"},
            )
            if not isinstance(answer, Response):
                return answer
            activities = activities_of(answer)
        return client_log(call, activities)

    async def _client_window(self, calls: Sequence[CompletedCall]) -> ClientWindow | None:
        """Every activity updated since an hour before the batch's earliest call, read in
        at most ``len(calls) // 2`` pages of :data:`WINDOW_PAGE` -- never more than half the
        requests of a read per person; None (read per person instead) when the window holds
        more, or its read fails."""
        since = min(content.utc(c.start_time) for c in calls) - CLIENT_WINDOW
        found = await self._activities_since(since, max(1, len(calls) // 2))
        if isinstance(found, list):
            return ClientWindow(found)
        if found is not None:
            log.info("pipedrive.client_window.unread", writer=self.name, reason=str(found))
        return None

    async def _activities_since(
        self, since: datetime, pages: int
    ) -> list[dict[str, object]] | LookupFailure | None:
        """Every activity updated at or after ``since`` (all owners', with or without a
        person), by cursor in at most ``pages`` pages of :data:`WINDOW_PAGE`; None when
        there are more."""
        params = {"updated_since": rfc3339(since), "limit": str(WINDOW_PAGE)}
        found: list[dict[str, object]] = []
        for _ in range(pages):
            answer = await self.api.get("/api/v2/activities", params)
            if not isinstance(answer, Response):
                return answer
            found += activities_of(answer)
            extra = answer.object().get("additional_data")
            cursor = extra.get("next_cursor") if isinstance(extra, dict) else None
            if not cursor:
                return found
            params["cursor"] = str(cursor)
        return None

    async def _our_call_log(self, call: CompletedCall) -> AlreadyExisted | LookupFailure | None:
        for page in range(SCAN_PAGES):
            answer = await self.api.get(
                "/api/v1/callLogs", {"start": str(page * PAGE), "limit": str(PAGE)}
            )
            if not isinstance(answer, Response):
                return answer
            data = data_of(answer)
            logs = [
                log for log in (data if isinstance(data, list) else []) if isinstance(log, dict)
            ]
            for log in logs:
                note = log.get("note")
                if (
                    content.recognise(call, note if isinstance(note, str) else None)
                    is content.Match.OURS
                ):
                    return AlreadyExisted(str(log.get("id")), ours=True)
            extra = answer.object().get("additional_data")
            pagination = extra.get("pagination") if isinstance(extra, dict) else None
            if not (isinstance(pagination, dict) and pagination.get("more_items_in_collection")):
                return None
        return None

    # -- the writer protocol -------------------------------------------------------------------

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult:
        return await self._write(call, ctx, None)

    async def _write(
        self, call: CompletedCall, ctx: WriteContext, window: ClientWindow | None
    ) -> WriteResult:
        resolved = await self.resolver.resolve(call)
        if not isinstance(resolved, Resolution):
            return resolved  # a failed lookup, or Skipped by the contact policy
        person = resolved.primary
        scanned = ctx.uncertain or ctx.attempt > 1
        if scanned:
            ours = await self._ours(call, person, window)
            if ours is not None:
                return ours
        detect = self._settings.contacts.detect_client_logs
        if detect and person is not None and not resolved.created_contact:
            client = await self._client_activity(call, person, window)
            if isinstance(client, AlreadyExisted) and client.ours:
                return await self._own_activity(call, client.record_id, scanned)
            if client is not None:
                return client
        deal: Deal | None = None
        if person is not None and self._settings.contacts.deals is not DealsPolicy.NONE:
            found = await self._deal(person)
            if not isinstance(found, Deal | None):
                return found
            deal = found
        return await self._create(call, person, int_id(resolved.owner_id), deal)

    async def _ours(
        self, call: CompletedCall, person: Contact | None, window: ClientWindow | None
    ) -> AlreadyExisted | LookupFailure | None:
        """Our own log of ``call`` from an earlier attempt, if there is one: our key among
        the activities updated since an hour before the call (every log of ours is one, or
        has one, whoever it is assigned to), the batch's read when there is one."""
        since = content.utc(call.start_time) - CLIENT_WINDOW
        recent: Sequence[Mapping[str, object]] | LookupFailure | None
        if window is not None:
            recent = window.since(since)
        else:
            recent = await self._activities_since(since, SCAN_PAGES)
        if recent is None:
            # A busier hour than a retry reads: the narrower reads, which may miss a log.
            log.info("pipedrive.retry.activities_beyond_scan", writer=self.name)
            return await self._narrow_ours(call, person)
        if not isinstance(recent, list):
            return recent
        activity = our_activity(call, recent)
        if activity is None:
            return None
        return await self._own_activity(call, activity, scanned=False)

    async def _narrow_ours(
        self, call: CompletedCall, person: Contact | None
    ) -> AlreadyExisted | LookupFailure | None:
        """The retry's check when the call's hour holds too many activities: the token
        user's call logs (the person's activities follow in the client-log check)."""
        return await self._our_call_log(call)

    async def _own_activity(
        self, call: CompletedCall, activity: str, scanned: bool
    ) -> AlreadyExisted | LookupFailure:
        """Our key in the note of ``activity``: an earlier attempt's call log, whose activity
        it is (Pipedrive keeps one per call log). The log by its id when the token user's
        logs show it; else -- assigned to another user, or beyond the scan -- known by its
        activity (:data:`LOG_ACTIVITY`), which its updates then go to: an activity does not
        name its call log, so ``activity:<id>`` (a client's, never updated) would lose them."""
        if not scanned:
            found = await self._our_call_log(call)
            if found is not None:
                return found
        return AlreadyExisted(f"{LOG_ACTIVITY}{activity}", ours=True)

    async def _create(
        self, call: CompletedCall, person: Contact | None, owner: int | None, deal: Deal | None
    ) -> WriteResult:
        body = call_log_body(call, person, owner, self._style)
        if deal is not None:
            body["deal_id"] = int(deal.id)
        answer = await self.api.post("/api/v1/callLogs", body)
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        record_id = data.get("id") if isinstance(data, dict) else None
        if record_id is None:
            # Stored, but we cannot name it: the next attempt finds it by its key.
            return RetryLater(f"{CRM} call log answer without an id")
        return Created(str(record_id), str(body["note"]))

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]:
        # Pipedrive has no batch endpoint for call logs: one create per call, but the
        # client-log checks and retries' checks for their own earlier log of a batch share
        # one read of the recent activities.
        window: ClientWindow | None = None
        retries = any(ctx.uncertain or ctx.attempt > 1 for _, ctx in items)
        if (self._settings.contacts.detect_client_logs or retries) and len(items) > 1:
            window = await self._client_window([call for call, _ in items])

        async def write(call: CompletedCall, ctx: WriteContext) -> WriteResult:
            return await self._write(call, ctx, window)

        return await batch.each(write, items)

    # -- updates after the create (crm/pipedrive_enrich.py) -------------------------------

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        return await enrich_call_log(self.api, e, ctx)
