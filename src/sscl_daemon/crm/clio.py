"""Clio Manage writer: a ``CompletedCall`` becomes a phone communication (dispatch -> here -> Clio).

Requests (API v4 on the account's region, ``app.clio.com``, ``eu.app.clio.com``,
``ca.app.clio.com`` or ``au.app.clio.com``; JSON ``{"data": ...}``; OAuth 2 refresh-token
grant at ``{region_url}/oauth/token``, bearer tokens):

* ``POST /api/v4/communications.json`` -- ``type: PhoneCommunication``, ``subject``,
  ``body`` (the note), ``received_at`` (the call's start), ``senders`` and ``receivers``
  (the firm's user and the contact, in the call's direction: outbound = user -> contact),
  and the contact's ``matter`` when it has exactly one open matter (``link_matter``), as
  App Connect does;
* ``POST /api/v4/activities.json`` -- with ``time_entries = "billable"`` or
  ``"non-billable"``, a ``TimeEntry`` of the talk time on that matter, linked to the
  communication (after a retry, ``GET /api/v4/activities.json?communication_id=`` first, so
  an entry is made once; an entry Clio refuses is logged, the communication stands; none
  for a call nobody talked on -- one the caller left in the user's voicemail is a missed
  call, its communication runs contact -> user and its note says so);
* ``GET /api/v4/communications.json?type=PhoneCommunication&received_since=...&
  received_before=...`` (the contact's, when known) before creating, to find our own
  earlier record (its body carries our key) after an uncertain attempt or a retry, and a
  log a user's own client made: its body names the RingCentral session, or it is what App
  Connect's Clio connector writes by default, which names no session
  (:func:`app_connect_communication`: ``[Call] <Direction> Call from|to ...`` received at
  the call's start minute). A batch of several calls reads its whole window once instead
  (cursor pages of 200, ``meta.paging.next``) and each call takes from it exactly what its
  own read would answer (``crm/clio_window.py``); when that needs more than half as many
  pages as the batch has calls, or cannot be read, the batch reads per call;
* ``GET /api/v4/contacts.json?query=<number>`` per uncached number (Clio matches the text
  as typed: the national digits are asked for and every returned number compared here);
  ``POST /api/v4/contacts.json`` (a Person) for ``no_contact = create``;
  ``GET /api/v4/matters.json?client_id=...&status=open`` per contact (cached with the
  contact lookups); ``GET /api/v4/users.json`` once per cache TTL for owners by e-mail and
  ``GET /api/v4/users/who_am_i.json`` once for the API user, who is the firm's side of a
  call nobody is mapped for.

Exactly once. Clio has no external id or unique field on communications, so our key rides
in the body (``sscl-key:`` line) and the listing above is read before every create that
follows an uncertain attempt or a retry (the outbox claim keeps other writers away meanwhile).
Clio has no batch API: a batch is written call by call (sharing the read above).

Limits: per access token, a 60-second window (50 requests at peak); every answer carries
``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (a Unix time), and a 429 ``Retry-After``.

After the create, recordings and voicemail (audio and transcription) are added
(``crm/clio_enrich.py``): the file as a document of the call's matter or contact, the section
in the communication's body unless a person changed it, else in a note of that matter or
contact.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import OAuthClientSettings, WriterSettings
from sscl_daemon.config.writers import oauth_settings
from sscl_daemon.crm import batch, content
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    OptionReader,
    PermanentFailure,
    RetryLater,
    WriteContext,
    WriteResult,
    WriterPlugin,
)
from sscl_daemon.crm.clio_enrich import ClioCommunication
from sscl_daemon.crm.clio_mapping import (
    SUBJECT_MAX,
    app_connect_communication,
    communication,
    data_of,
    int_of,
)
from sscl_daemon.crm.clio_window import FIELDS, PAGE, WINDOW_FIELDS, CommunicationWindow, bounds
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution, parse_time, succeeded
from sscl_daemon.crm.enrich import Enrichment, EnrichResult
from sscl_daemon.crm.http import CrmHttp, OAuthBearer, Response
from sscl_daemon.crm.oauth import OAuthClient
from sscl_daemon.crm.plugin_enrich import enrich_record
from sscl_daemon.crm.plugin_parts import Fingerprints, options_of, talk_seconds
from sscl_daemon.crm.singleflight import SharedCache, SingleFlight
from sscl_daemon.crm.wiring import CrmWriterBase, nested_error_message
from sscl_daemon.logging import get_logger

log = get_logger(__name__)

# The pure mapping lives in crm/clio_mapping.py; its names are this writer's too.
__all__ = [
    "CRM",
    "PLUGIN",
    "SUBJECT_MAX",
    "ClioOptions",
    "ClioWriter",
    "TimeEntries",
    "app_connect_communication",
    "communication",
    "parse_options",
]

CRM: Final = "Clio"
DEFAULT_REGION_URL: Final = "https://app.clio.com"
API: Final = "/api/v4"


class TimeEntries(enum.StrEnum):
    """Whether a call's talk time also becomes a time entry on the matter."""

    OFF = "off"
    BILLABLE = "billable"
    NON_BILLABLE = "non-billable"


@dataclass(frozen=True)
class ClioOptions:
    oauth: OAuthClientSettings
    region_url: str = DEFAULT_REGION_URL
    # Attach the communication to the contact's matter when it has exactly one open matter.
    link_matter: bool = True
    time_entries: TimeEntries = TimeEntries.OFF


def parse_options(reader: OptionReader) -> ClioOptions | None:
    d = ClioOptions
    region = reader.url("region_url", d.region_url)
    link = reader.boolean("link_matter", d.link_matter)
    raw = reader.string("time_entries", d.time_entries.value)
    try:
        entries = TimeEntries(raw)
    except ValueError:
        allowed = ", ".join(repr(t.value) for t in TimeEntries)
        reader.problem("time_entries", f"{raw!r} is not allowed; use one of {allowed}")
        entries = d.time_entries
    oauth = oauth_settings(reader, "Clio (an app from the Clio developer portal)")
    return ClioOptions(oauth, region, link, entries) if oauth is not None else None


class ClioWriter(CrmWriterBase):
    """Writes phone communications into one Clio Manage account."""

    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        self._opts = opts = options_of(settings, ClioOptions, "ClioWriter", "clio")
        self._zone_of = content.zone_of(settings.contacts)  # per call: timezone = "user"
        self._base = opts.region_url.rstrip("/") + API
        self.oauth = OAuthClient.at(
            session, opts.region_url, "/oauth/token", opts.oauth, timeout=settings.timeout
        )
        self._me: int | None = None
        self._me_read: SingleFlight[str, int | LookupFailure] = SingleFlight()
        self.recordings = settings.contacts.recordings
        # Cached with the contact lookups; a batch's calls of one contact share one read.
        self._matters: SharedCache[str, int | LookupFailure | None] = SharedCache(
            settings.contacts.cache_size, settings.contacts.cache_ttl, succeeded
        )
        super().__init__(
            CRM,
            settings,
            session,
            OAuthBearer(self.oauth),
            find=self._find,
            create=self._create_contact,
            list_users=self._list_users,
            owner_valid=lambda owner: int_of(owner) is not None,
            message=nested_error_message,
        )
        # The signed upload URLs of documents are cloud storage, sent no Clio token.
        self._storage = CrmHttp(CRM, session, self.http.limiter, None, timeout=settings.timeout)

    def __repr__(self) -> str:
        return f"ClioWriter(name={self.name!r}, region_url={self._opts.region_url!r})"

    async def _get(self, path: str, params: Mapping[str, str]) -> Response | LookupFailure:
        return await self.http.request("GET", self._base + path, params=params)

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        """The audio as a document of the call's matter or contact, the section in the
        communication's body or a note beside it (``crm/clio_enrich.py``)."""
        record = ClioCommunication(self.http, self._storage, self._base)
        return await enrich_record(record, e, ctx)

    # -- the writer protocol -------------------------------------------------------------------

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult:
        return await self._write(call, ctx, None)

    async def _write(
        self, call: CompletedCall, ctx: WriteContext, window: CommunicationWindow | None
    ) -> WriteResult:
        resolved = await self.resolver.resolve(call)
        if not isinstance(resolved, Resolution):
            return resolved
        contact = resolved.primary
        user = int_of(resolved.owner_id) if resolved.owner_id else None
        if user is None:
            me = await self._who_am_i()
            if not isinstance(me, int):
                return me
            user = me
        matter_id: int | None = None
        if contact is not None and self._opts.link_matter:
            matter = await self._matter(contact)
            if isinstance(matter, RetryLater | PermanentFailure):
                return matter
            matter_id = matter
        again = ctx.uncertain or ctx.attempt > 1
        comm_id: str | None = None
        if again or self._settings.contacts.detect_client_logs:
            existing = await self._existing(call, contact, window)
            if isinstance(existing, RetryLater | PermanentFailure):
                return existing
            if existing is not None and existing[1] is content.Match.CLIENT:
                return AlreadyExisted(existing[0])
            comm_id = existing[0] if existing is not None else None
        created = comm_id is None
        written: str | None = None
        if comm_id is None:
            record = communication(
                call, contact, user, matter_id, self._zone_of(call), self.recordings
            )
            written = str(record["body"])
            answer = await self.http.request(
                "POST", f"{self._base}/communications.json", json_body={"data": record}
            )
            if not isinstance(answer, Response):
                return answer
            data = data_of(answer)
            made = batch.created(CRM, data.get("id") if isinstance(data, dict) else None, written)
            if not isinstance(made, Created):
                return made
            comm_id = made.record_id
        if self._opts.time_entries is not TimeEntries.OFF and matter_id is not None:
            entry = await self._time_entry(call, comm_id, matter_id, user, check=not created)
            if isinstance(entry, RetryLater):
                # The communication stands; the retry finds it and adds the entry.
                return entry
            if isinstance(entry, PermanentFailure):
                log.warning("crm.time_entry.refused", writer=self.name, reason=entry.reason)
        # Not created: found by our key (a client's log returned above).
        return Created(comm_id, written) if created else AlreadyExisted(comm_id, ours=True)

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]:
        # One create per call, but the batch's client-log checks share one read.
        window: CommunicationWindow | None = None
        if self._settings.contacts.detect_client_logs and len(items) > 1:
            window = await self._client_window([call for call, _ in items])

        async def write(call: CompletedCall, ctx: WriteContext) -> WriteResult:
            return await self._write(call, ctx, window)

        return await batch.each(write, items)

    async def _client_window(self, calls: Sequence[CompletedCall]) -> CommunicationWindow | None:
        """Every phone communication received in the calls' windows, read in at most
        ``len(calls) // 2`` pages -- never more than half the requests of a read per call;
        None (read per call instead) when the window holds more, or its read fails."""
        windows = [bounds(c) for c in calls]
        endpoint = url = f"{self._base}/communications.json"
        params: Mapping[str, str] = {
            "type": "PhoneCommunication",
            "received_since": min(w[0] for w in windows),
            "received_before": max(w[1] for w in windows),
            "fields": WINDOW_FIELDS,
            "limit": str(PAGE),
            "order": "id(asc)",  # Clio's cursor pagination asks for it
        }
        found: list[Mapping[str, object]] = []
        for _ in range(max(1, len(calls) // 2)):
            answer = await self.http.request("GET", url, params=params)
            if not isinstance(answer, Response):
                log.info("clio.client_window.unread", writer=self.name, reason=str(answer))
                return None
            data = data_of(answer)
            found += [r for r in (data if isinstance(data, list) else []) if isinstance(r, dict)]
            meta = answer.object().get("meta")
            paging = meta.get("paging") if isinstance(meta, dict) else None
            following = paging.get("next") if isinstance(paging, dict) else None
            if not following:
                return CommunicationWindow(found)
            # The next page's URL carries the query; our token goes to Clio's API only.
            if not (isinstance(following, str) and following.startswith(endpoint + "?")):
                return None
            url, params = following, {}
        return None

    # -- lookups -----------------------------------------------------------------------------

    async def _existing(
        self, call: CompletedCall, contact: Contact | None, window: CommunicationWindow | None
    ) -> tuple[str, content.Match] | LookupFailure | None:
        """Our own earlier communication of this call, or one a user's client made."""
        rows: Sequence[Mapping[str, object]]
        if window is not None:
            rows = window.of(call, contact.id if contact is not None else None)
        else:
            since, before = bounds(call)
            params = {
                "type": "PhoneCommunication",
                "received_since": since,
                "received_before": before,
                "fields": FIELDS,
                "limit": str(PAGE),
            }
            if contact is not None:
                params["contact_id"] = contact.id
            answer = await self._get("/communications.json", params)
            if not isinstance(answer, Response):
                return answer
            data = data_of(answer)
            rows = [r for r in (data if isinstance(data, list) else []) if isinstance(r, dict)]
        records = [
            (str(r.get("id")), b if isinstance(b := r.get("body"), str) else None) for r in rows
        ]
        found = content.first_match(call, records)
        if found is not None or not self._settings.contacts.detect_client_logs:
            return found
        listed = contact is not None

        def matches(c: CompletedCall, r: Mapping[str, object]) -> bool:
            return app_connect_communication(c, r, listed)

        theirs = Fingerprints(
            [(str(r["id"]), r) for r in rows if r.get("id") is not None], matches
        ).take(call)
        return (theirs, content.Match.CLIENT) if theirs is not None else None

    async def _time_entry(
        self, call: CompletedCall, comm_id: str, matter_id: int, user: int, *, check: bool
    ) -> int | LookupFailure | None:
        """The talk time as a time entry on the matter, linked to the communication (once:
        with ``check`` an entry already linked to it is kept)."""
        # Nothing to bill for a call nobody talked on (one the caller left as voicemail).
        seconds = talk_seconds(call)
        if seconds <= 0:
            return None
        if check:
            answer = await self._get(
                "/activities.json",
                {"communication_id": comm_id, "type": "TimeEntry", "fields": "id"},
            )
            if not isinstance(answer, Response):
                return answer
            listed = data_of(answer)
            if isinstance(listed, list) and listed:
                return int_of(listed[0].get("id")) if isinstance(listed[0], dict) else None
        body = {
            "data": {
                "type": "TimeEntry",
                "date": content.local_date(call.start_time, self._zone_of(call)),
                "quantity": seconds,
                "matter": {"id": matter_id},
                "user": {"id": user},
                "communication": {"id": int(comm_id)},
                "note": content.subject(call)[:SUBJECT_MAX],
                "non_billable": self._opts.time_entries is TimeEntries.NON_BILLABLE,
            }
        }
        answer = await self.http.request("POST", f"{self._base}/activities.json", json_body=body)
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        return int_of(data.get("id")) if isinstance(data, dict) else None

    async def _who_am_i(self) -> int | LookupFailure:
        if self._me is None:
            # The calls of a batch nobody is mapped for share the one read.
            return await self._me_read.run("me", self._read_me)
        return self._me

    async def _read_me(self) -> int | LookupFailure:
        answer = await self._get("/users/who_am_i.json", {"fields": "id,name,email"})
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        me = int_of(data.get("id")) if isinstance(data, dict) else None
        if me is None:
            return RetryLater(f"{CRM}: who_am_i answered without an id")
        self._me = me
        return me

    async def _matter(self, contact: Contact) -> int | LookupFailure | None:
        return await self._matters.get(contact.id, lambda: self._read_matter(contact))

    async def _read_matter(self, contact: Contact) -> int | LookupFailure | None:
        answer = await self._get(
            "/matters.json",
            {
                "client_id": contact.id,
                "status": "open",
                "fields": "id,display_number",
                "limit": "2",
            },
        )
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        matters = [m for m in (data if isinstance(data, list) else []) if isinstance(m, dict)]
        return int_of(matters[0].get("id")) if len(matters) == 1 else None

    async def _find(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        answer = await self._get(
            "/contacts.json",
            {
                "query": content.national_digits(number) or number,
                "fields": "id,name,type,created_at,updated_at,phone_numbers{number}",
                "limit": "20",
            },
        )
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        found: list[Contact] = []
        for row in data if isinstance(data, list) else []:
            if not isinstance(row, dict) or int_of(row.get("id")) is None:
                continue
            phones = row.get("phone_numbers")
            numbers = [
                p["number"]
                for p in (phones if isinstance(phones, list) else [])
                if isinstance(p, dict) and isinstance(p.get("number"), str)
            ]
            if any(content.same_number(n, number) for n in numbers):
                name = row.get("name")
                found.append(
                    Contact(
                        str(row["id"]),
                        name if isinstance(name, str) else None,
                        created=parse_time(row.get("created_at")),
                        updated=parse_time(row.get("updated_at")),
                    )
                )
        return tuple(found)

    async def _create_contact(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        name = call.external_name or number
        body = {
            "data": {
                "type": "Person",
                "last_name": name,
                "phone_numbers": [{"number": number, "name": "Work", "default_number": True}],
            }
        }
        answer = await self.http.request("POST", f"{self._base}/contacts.json", json_body=body)
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        cid = int_of(data.get("id")) if isinstance(data, dict) else None
        if cid is None:
            return RetryLater(f"{CRM} contact create answered without an id")
        return Contact(str(cid), name)

    async def _list_users(self) -> dict[str, str] | LookupFailure:
        answer = await self._get("/users.json", {"fields": "id,email,enabled", "enabled": "true"})
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        return {
            str(u["email"]).lower(): str(u["id"])
            for u in (data if isinstance(data, list) else [])
            if isinstance(u, dict) and u.get("email") and u.get("id") is not None
        }


def _build(settings: WriterSettings, session: aiohttp.ClientSession) -> ClioWriter:
    return ClioWriter(settings, session)


PLUGIN: Final = WriterPlugin("clio", CRM, parse_options, _build)
