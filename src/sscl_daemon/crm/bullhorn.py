"""Bullhorn writer: a ``CompletedCall`` becomes a Note on the person who called (dispatch -> here
-> Bullhorn REST).

Authentication has two steps, both handled by :class:`BullhornSession`:

* OAuth 2 on the data centre's auth host (``auth_url``, e.g. ``https://auth-east.
  bullhornstaffing.com``): ``POST /oauth/token`` with the refresh-token grant. Bullhorn
  refresh tokens are single-use: every refresh returns a new one, kept in the daemon's
  vault like Pipedrive's; access tokens live ten minutes.
* REST login on ``login_url`` (e.g. ``https://rest-east.bullhornstaffing.com``):
  ``GET /rest-services/login?version=2.0&access_token=...`` answers a session token
  (``BhRestToken``, sent as a header) and the corporation's ``restUrl`` every other request
  goes to. A session that timed out answers 401: the writer logs in again, refreshing the
  access token first when the login itself is refused.

Requests under ``restUrl``:

* ``PUT entity/Note`` (in Bullhorn, PUT creates) -- ``comments`` (the note), ``action``
  (``action_inbound``/``action_outbound``: values of the corporation's
  ``commentActionList``; ``action_missed``, when set, for an inbound call nobody took),
  ``personReference`` (the candidate, contact or lead found), ``commentingPerson`` (the
  mapped CorporateUser), ``dateAdded`` (the call's start, epoch ms), ``minutesSpent`` (talk
  time rounded up: none for a call the caller left in the user's voicemail, a missed call --
  not the rep's "left message") and ``externalID`` = our key. Giving both a
  person and the commenting person makes Bullhorn link the Note to the person itself.
* ``GET query/Note?where=externalID IN (...)`` before each create: our key (after an
  uncertain attempt or a retry) and, unless ``detect_client_logs = false``, the call's
  RingCentral session ids, which App Connect's Bullhorn connector writes into the same
  field of the Notes users' own clients make (for a batch, one query per 20 calls). The
  database, not the search index, so a Note just created is found.
* ``GET search/{ClientContact,Candidate,Lead}?query=(phone:"N" OR mobile:"N" ...) AND
  isDeleted:false`` per uncached number, in the order of ``search_entities`` until one has
  matches (N = the national digits and E.164, each result's numbers compared here);
  ``PUT entity/Candidate`` for ``no_contact = create``; ``GET query/CorporateUser`` once per
  cache TTL for owners by e-mail.

A Note must be about a person (``personReference`` is not nullable), so ``no_contact =
unassociated`` cannot apply: such a call is parked with a reason that says to choose
``create`` or ``skip``; an internal call (nobody outside the firm) is settled as skipped.

Limits: ``RateLimit-Limit``/``-Remaining``/``-Reset`` on every answer; 429 asks to wait a
second and retry.

After the create, recordings and voicemail (audio and transcription) are added
(``crm/bullhorn_enrich.py``): the file attached to the Note's person where Bullhorn keeps
files for it (candidates, client contacts; a lead's is linked), the section in the Note's
comments unless a person changed them, else in a Note of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

import aiohttp

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.config import OAuthClientSettings, RecordingsMode, WriterSettings
from sscl_daemon.config.writers import oauth_settings
from sscl_daemon.crm import batch, content
from sscl_daemon.crm.base import (
    AlreadyExisted,
    OptionReader,
    PermanentFailure,
    RetryLater,
    Skipped,
    WriteContext,
    WriteResult,
    WriterPlugin,
)
from sscl_daemon.crm.bullhorn_enrich import BullhornNote
from sscl_daemon.crm.bullhorn_session import CRM, BullhornSession, bullhorn_message, bullhorn_string
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution
from sscl_daemon.crm.enrich import Enrichment, EnrichResult
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.oauth import (
    ClientAuth,
    OAuthClient,
)
from sscl_daemon.crm.plugin_enrich import enrich_record
from sscl_daemon.crm.plugin_parts import (
    BaseUrlCalls,
    caller_left_voicemail,
    options_of,
    talk_seconds,
)
from sscl_daemon.crm.wiring import CrmWriterBase

DEFAULT_AUTH_URL: Final = "https://auth.bullhornstaffing.com"
DEFAULT_LOGIN_URL: Final = "https://rest.bullhornstaffing.com"
EXTERNAL_ID_MAX: Final = 100
# externalIDs per Note query of a batch (a short URL), and the rows a query answers at most.
QUERY_IDS: Final = 60
QUERY_COUNT: Final = 500
ACTION_MAX: Final = 30
PERSON_ENTITIES: Final = ("ClientContact", "Candidate", "Lead")
PHONE_FIELDS: Final = ("phone", "mobile", "phone2", "phone3", "workPhone")


@dataclass(frozen=True)
class BullhornOptions:
    oauth: OAuthClientSettings
    auth_url: str = DEFAULT_AUTH_URL
    login_url: str = DEFAULT_LOGIN_URL
    action_inbound: str = "Inbound Call"
    action_outbound: str = "Outbound Call"
    search_entities: tuple[str, ...] = field(default=PERSON_ENTITIES)
    # The action of an inbound call nobody took (the caller may have left a voicemail);
    # empty: ``action_inbound``.
    action_missed: str = ""


def parse_options(reader: OptionReader) -> BullhornOptions | None:
    auth = reader.url("auth_url", DEFAULT_AUTH_URL)
    login = reader.url("login_url", DEFAULT_LOGIN_URL)
    actions = {}
    for key, default in (
        ("action_inbound", "Inbound Call"),
        ("action_outbound", "Outbound Call"),
        ("action_missed", ""),
    ):
        value = reader.string(key, default)
        if (default and not value) or len(value) > ACTION_MAX:
            reader.problem(
                key, f"{value!r}: give a value of the commentActionList (1..30 characters)"
            )
        actions[key] = value
    entities = tuple(reader.string_list("search_entities")) or PERSON_ENTITIES
    wrong = [e for e in entities if e not in PERSON_ENTITIES]
    if wrong:
        reader.problem(
            "search_entities",
            f"{', '.join(wrong)}: use some of {', '.join(PERSON_ENTITIES)}",
        )
    oauth = oauth_settings(reader, "Bullhorn (an OAuth client from Bullhorn support)")
    if oauth is None:
        return None
    return BullhornOptions(
        oauth,
        auth,
        login,
        actions["action_inbound"],
        actions["action_outbound"],
        entities,
        actions["action_missed"],
    )


# -- pure mapping ----------------------------------------------------------------------------


def note(
    call: CompletedCall,
    person: Contact,
    owner_id: str | None,
    options: BullhornOptions,
    tz: ZoneInfo | None = None,
    recordings: RecordingsMode | None = None,
) -> dict[str, object]:
    """The ``PUT entity/Note`` body (pure); the note's times in ``tz``."""
    body: dict[str, object] = {
        "comments": content.note_html(call, person.name, tz=tz, recordings=recordings),
        "action": note_action(call, options),
        "personReference": {"id": int(person.id)},
        "dateAdded": int(content.utc(call.start_time).timestamp() * 1000),
        # Nobody talked on a call the caller left as voicemail: no minutes spent.
        "minutesSpent": content.minutes(talk_seconds(call)),
        "externalID": call.key[:EXTERNAL_ID_MAX],
    }
    if owner_id:
        body["commentingPerson"] = {"id": int(owner_id)}
    return body


def note_action(call: CompletedCall, options: BullhornOptions) -> str:
    """The Note's action: the call's direction, and for an inbound call nobody took (a
    voicemail among them: a missed call, not the rep's "left message") ``action_missed``
    when it is set."""
    if call.direction is Direction.OUTBOUND:
        return options.action_outbound
    missed = caller_left_voicemail(call) or not talk_seconds(call)
    return (options.action_missed or options.action_inbound) if missed else options.action_inbound


def epoch_ms(value: object) -> datetime | None:
    """Bullhorn's timestamps: milliseconds since the epoch."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def phone_query(e164: str) -> str:
    forms = [e164, content.national_digits(e164) or e164]
    terms = " OR ".join(f'{f}:"{n}"' for f in PHONE_FIELDS for n in dict.fromkeys(forms))
    return f"({terms}) AND isDeleted:false"


# -- the writer ------------------------------------------------------------------------------


class BullhornWriter(BaseUrlCalls, CrmWriterBase):
    """Writes Notes into one Bullhorn corporation."""

    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        self._opts = opts = options_of(settings, BullhornOptions, "BullhornWriter", "bullhorn")
        self._zone_of = content.zone_of(settings.contacts)  # per call: timezone = "user"
        self.recordings = settings.contacts.recordings
        # Bullhorn creates with PUT, which HTTP calls idempotent: aiohttp then resends a PUT
        # whose connection was lost on its own, and a Note stored by the first one would be
        # stored twice. So this writer has a session of its own without that resend (the
        # switch aiohttp's own test client uses); a lost PUT comes back to us as uncertain.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(settings.concurrency, 1))
        )
        session._retry_connection = False
        self._own_session = session
        self.oauth = OAuthClient.at(
            session,
            opts.auth_url,
            "/oauth/token",
            opts.oauth,
            client_auth=ClientAuth.BODY,
            timeout=settings.timeout,
        )
        self.bh = BullhornSession(self.oauth, session, opts.login_url, settings.timeout)
        super().__init__(
            CRM,
            settings,
            session,
            self.bh,
            find=self._find,
            create=self._create_candidate,
            list_users=self._list_users,
            owner_valid=lambda owner: owner.isdigit(),
            message=bullhorn_message,
        )

    async def close(self) -> None:
        await self._own_session.close()

    def __repr__(self) -> str:
        return f"BullhornWriter(name={self.name!r}, login_url={self._opts.login_url!r})"

    async def _base_url(self) -> str | LookupFailure:
        """The corporation's ``restUrl``, from the REST login."""
        failure = await self.bh.ensure()
        if failure is not None:
            return failure
        assert self.bh.rest_url is not None
        return self.bh.rest_url

    async def _rows(
        self, path: str, params: Mapping[str, str]
    ) -> list[Mapping[str, object]] | LookupFailure:
        answer = await self._call("GET", path, params=params)
        if not isinstance(answer, Response):
            return answer
        data = answer.object().get("data")
        return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        """The audio as a file of the Note's person, the section in the Note or a Note beside
        it (``crm/bullhorn_enrich.py``)."""
        return await enrich_record(BullhornNote(self), e, ctx)

    # -- the writer protocol -------------------------------------------------------------------

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult:
        return await self._write(call, ctx, None)

    def _wanted(self, call: CompletedCall, ctx: WriteContext) -> list[str]:
        """The externalIDs to look for before creating (none: no lookup). Our own earlier
        Note carries our key; one App Connect made carries the call's session id."""
        wanted = [call.key]
        if self._settings.contacts.detect_client_logs:
            wanted += [i for i in (call.session_id, call.telephony_session_id) if i]
        return wanted if ctx.uncertain or ctx.attempt > 1 or len(wanted) > 1 else []

    async def _write(
        self, call: CompletedCall, ctx: WriteContext, known: Mapping[str, str] | None
    ) -> WriteResult:
        """``known``: the batch's Notes by externalID, read for every call of it at once."""
        wanted = self._wanted(call, ctx)
        if wanted:
            found = known if known is not None else await self._by_external_id(wanted)
            if not isinstance(found, Mapping):
                return found
            existing = next((found[k] for k in wanted if k in found), None)
            if existing is not None:
                return AlreadyExisted(existing, ours=True)  # its externalID is our key
        resolved = await self.resolver.resolve(call)
        if not isinstance(resolved, Resolution):
            return resolved
        person = resolved.primary
        if person is None and not call.external_number:
            # An internal call: nobody outside the firm for a Note to be about.
            return Skipped(f"{CRM} notes are about a person; an internal call has none")
        if person is None:
            return PermanentFailure(
                f"{CRM} notes must be about a person, and no candidate, contact or lead has"
                f" {call.external_number or 'this call'}'s number; set contacts.no_contact ="
                ' "create" (a new candidate) or "skip" in the writer\'s configuration'
            )
        record = note(
            call, person, resolved.owner_id, self._opts, self._zone_of(call), self.recordings
        )
        answer = await self._call("PUT", "entity/Note", body=record)
        if not isinstance(answer, Response):
            return answer
        return batch.created(CRM, answer.object().get("changedEntityId"), str(record["comments"]))

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]:
        # Bullhorn has no batch create for entities, but the Notes by externalID of a whole
        # batch are read in a few queries (QUERY_IDS ids each), not one per call; a failed
        # read falls back to each call's own.
        ids = [i for call, ctx in items for i in self._wanted(call, ctx)]
        known: dict[str, str] = {}
        for start in range(0, len(ids) if len(items) > 1 else 0, QUERY_IDS):
            found = await self._by_external_id(ids[start : start + QUERY_IDS])
            if not isinstance(found, dict):
                return await batch.each(self.write, items)
            known.update(found)
        lookups = known if len(items) > 1 else None
        return await batch.each(lambda call, ctx: self._write(call, ctx, lookups), items)

    # -- lookups -----------------------------------------------------------------------------

    async def _by_external_id(self, keys: Sequence[str]) -> dict[str, str] | LookupFailure:
        listed = ",".join(bullhorn_string(k[:EXTERNAL_ID_MAX]) for k in keys)
        rows = await self._rows(
            "query/Note",
            {
                "where": f"externalID IN ({listed}) AND isDeleted=false",
                "fields": "id,externalID",
                "count": str(QUERY_COUNT),
            },
        )
        if not isinstance(rows, list):
            return rows
        return {str(r.get("externalID")): str(r.get("id")) for r in rows if r.get("id") is not None}

    async def _find(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        for entity in self._opts.search_entities:
            rows = await self._rows(
                f"search/{entity}",
                {
                    "query": phone_query(number),
                    "fields": f"id,name,dateAdded,dateLastModified,{','.join(PHONE_FIELDS)}",
                    "count": "20",
                },
            )
            if not isinstance(rows, list):
                return rows
            found = tuple(
                Contact(
                    str(r["id"]),
                    n if isinstance(n := r.get("name"), str) else None,
                    entity,
                    created=epoch_ms(r.get("dateAdded")),
                    updated=epoch_ms(r.get("dateLastModified")),
                )
                for r in rows
                if r.get("id") is not None
                and any(
                    isinstance(v := r.get(f), str) and content.same_number(v, number)
                    for f in PHONE_FIELDS
                )
            )
            if found:
                return found
        return ()

    async def _create_candidate(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        name = call.external_name or number
        body: dict[str, object] = {
            "firstName": name.split()[0] if call.external_name else "Caller",
            "lastName": name.split()[-1] if call.external_name else number,
            "name": name,
            "phone": number,
            "source": "RingCentral call",
        }
        if owner_id:
            body["owner"] = {"id": int(owner_id)}
        answer = await self._call("PUT", "entity/Candidate", body=body)
        if not isinstance(answer, Response):
            return answer
        cid = answer.object().get("changedEntityId")
        if cid is None:
            return RetryLater(f"{CRM} candidate create answered without an id")
        return Contact(str(cid), name, "Candidate")

    async def _list_users(self) -> dict[str, str] | LookupFailure:
        rows = await self._rows(
            "query/CorporateUser",
            {"where": "isDeleted=false AND enabled=true", "fields": "id,email", "count": "500"},
        )
        if not isinstance(rows, list):
            return rows
        return {
            str(r["email"]).lower(): str(r["id"])
            for r in rows
            if isinstance(r.get("email"), str) and r.get("email") and r.get("id") is not None
        }


def _build(settings: WriterSettings, session: aiohttp.ClientSession) -> BullhornWriter:
    return BullhornWriter(settings, session)


PLUGIN: Final = WriterPlugin("bullhorn", CRM, parse_options, _build)
