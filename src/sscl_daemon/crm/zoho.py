"""Zoho CRM writer: a ``CompletedCall`` becomes a record of the Calls module (dispatch -> here -> Zoho).

Requests (REST API v7 on the data centre's API domain, ``Authorization: Zoho-oauthtoken``):

* ``POST {accounts_url}/oauth/v2/token`` -- refresh-token grant with the client id and
  secret in the form. Zoho accounts live in one data centre (``accounts.zoho.com``, ``.eu``,
  ``.in``, ``.com.au``, ``.jp``, ``.ca``, ``.sa``, ``zohocloud.ca`` ...): ``accounts_url``
  names it, and the token answer names the ``api_domain`` every other request goes to.
  Zoho refresh tokens do not rotate; access tokens live an hour (``expires_in``).
* ``POST /crm/v7/Calls`` -- up to 100 records per request in ``data``, one answer per
  record, in order (HTTP 201 all stored, 207 mixed, 400 all refused): ``Subject``,
  ``Call_Type`` (``Inbound``/``Outbound``/``Missed``: a call the caller left in the user's
  voicemail is ``Missed`` with ``Call_Result`` ``Voicemail``), ``Call_Start_Time`` (ISO 8601 with an
  offset), ``Call_Duration`` (``mm:ss`` of talk time), ``Outgoing_Call_Status``
  (``Completed``, required for outbound calls), ``Dialled_Number`` or ``Caller_ID`` (the
  other party's number), ``Call_Result``, ``Description`` (the note),
  ``Who_Id`` (the contact) or ``What_Id`` + ``$se_module: Leads`` (a lead), ``Owner``, and
  our key field.
* ``POST /crm/v7/coql`` -- ``select id, <key field> from Calls where <key field> in (...)``
  after an uncertain attempt, and ``... where Call_Start_Time between ... and <key field> is
  null`` once per batch for logs a user's own client made (not with
  ``detect_client_logs = false``). COQL reads the database, not a search index. Such a
  record is the call's log when its description names the call's RingCentral session, or,
  as neither App Connect's Zoho connector (RingClone's, closed source) nor RingCentral's
  PhoneBridge app writes the session by default, when it has the call's fingerprint
  (:func:`client_log_matches`: type of the call's direction, start minute, and the caller's
  number or the contact we matched).
* ``GET /crm/v7/Contacts/search?criteria=...`` per uncached number (``Phone``/``Mobile``
  equal to the number as E.164 or national digits; checked again here), then
  ``GET /crm/v7/Leads/search`` when no contact matches (``search_leads``); ``POST
  /crm/v7/Contacts`` for ``no_contact = create``; ``GET /crm/v7/users?type=ActiveUsers`` once
  per cache TTL for owners by e-mail. Zoho answers a search without results with 204.

Exactly once. One-time setup: a single-line custom field on Calls (API name
``SSCL_Call_Key`` by default, ``key_field``) with "Do not allow duplicate values" ticked.
Zoho then refuses a second record with the same key (``DUPLICATE_DATA`` naming the existing
record), which is read as ``AlreadyExisted``; an uncertain earlier attempt is looked up by
COQL first. Calls are not an ``upsert`` module in Zoho, so we only ever create.

Limits: a rolling 24-hour credit allowance and a per-organisation concurrency limit; past
either, HTTP 429 ``TOO_MANY_REQUESTS`` (no ``Retry-After``), retried after the default
pause.

Recordings and voicemail are added to the record after the create: ``crm/zoho_enrich.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

import aiohttp

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.config import OAuthClientSettings, RecordingsMode, WriterSettings
from sscl_daemon.config.writers import oauth_settings
from sscl_daemon.crm import batch, content
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    OptionReader,
    PermanentFailure,
    RetryLater,
    WriterPlugin,
)
from sscl_daemon.crm.batch import Pending
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution, parse_time
from sscl_daemon.crm.enrich import Enrichment, EnrichResult
from sscl_daemon.crm.http import OAuthBearer, Response, ensure_token
from sscl_daemon.crm.oauth import OAuthClient
from sscl_daemon.crm.plugin_enrich import enrich_record
from sscl_daemon.crm.plugin_parts import (
    BaseUrlCalls,
    near_start,
    options_of,
    prepare_unlogged,
    talk_seconds,
    talked,
    text_field,
)
from sscl_daemon.crm.wiring import ChunkedWriterBase
from sscl_daemon.crm.zoho_enrich import ZohoCall

if TYPE_CHECKING:
    from sscl_daemon.crm.base import WriteContext, WriteResult

CRM: Final = "Zoho CRM"
BATCH_MAX: Final = 100
COQL_LIMIT: Final = 200
COQL_IN_MAX: Final = 50
CLIENT_WINDOW: Final = timedelta(hours=1)
DEFAULT_KEY_FIELD: Final = "SSCL_Call_Key"
DEFAULT_ACCOUNTS_URL: Final = "https://accounts.zoho.com"
API_VERSION: Final = "v7"
# What the client-log query reads of each Calls record (session line and fingerprint).
CLIENT_FIELDS: Final = (
    "id",
    "Description",
    "Call_Type",
    "Call_Start_Time",
    "Caller_ID",
    "Dialled_Number",
    "Who_Id",
)

# Values for the Call_Result picklist (setup adds them to the field; see docs/crm-setup.md).
_RESULTS: Final = {
    content.CallOutcome.ANSWERED: "Answered",
    content.CallOutcome.NO_ANSWER: "No answer",
    content.CallOutcome.VOICEMAIL: "Voicemail",
    content.CallOutcome.BUSY: "Busy",
    content.CallOutcome.REJECTED: "Rejected",
    content.CallOutcome.TRANSFERRED: "Transferred",
    content.CallOutcome.ABANDONED: "Abandoned",
    content.CallOutcome.INCOMPLETE: "Incomplete",
}
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ZohoOptions:
    oauth: OAuthClientSettings
    accounts_url: str = DEFAULT_ACCOUNTS_URL
    # The custom Calls field (unique values) that holds our idempotency key.
    key_field: str = DEFAULT_KEY_FIELD
    # Look for a lead when no contact has the number.
    search_leads: bool = True


def parse_options(reader: OptionReader) -> ZohoOptions | None:
    accounts = reader.url("accounts_url", DEFAULT_ACCOUNTS_URL)
    key_field = reader.string("key_field", DEFAULT_KEY_FIELD)
    if not _API_NAME.match(key_field):
        reader.problem(
            "key_field",
            f"{key_field!r} is not a Zoho field API name (letters, digits and _, starting"
            f" with a letter; the default is {DEFAULT_KEY_FIELD!r})",
        )
    search_leads = reader.boolean("search_leads", True)
    oauth = oauth_settings(reader, "Zoho CRM (a self client or server-based client)")
    if oauth is None:
        return None
    return ZohoOptions(oauth, accounts, key_field, search_leads)


# -- pure mapping ----------------------------------------------------------------------------


def zoho_time(moment: datetime) -> str:
    """``yyyy-MM-ddTHH:mm:ss+00:00`` (Zoho's datetime format: seconds, an explicit offset)."""
    return content.utc(moment).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def mm_ss(seconds: int) -> str:
    """``Call_Duration``: minutes and seconds (minutes may pass 59)."""
    minutes, rest = divmod(max(seconds, 0), 60)
    return f"{minutes:02d}:{rest:02d}"


def call_type(call: CompletedCall) -> str:
    """Zoho's three call types: an inbound (or internal) call nobody took is ``Missed`` -- a
    call the caller left in the user's voicemail too (Zoho's PhoneBridge model: a missed
    call with the voice message), whatever time the mailbox counted."""
    if call.direction is Direction.OUTBOUND:
        return "Outbound"
    return "Inbound" if talked(call) else "Missed"


def call_record(
    call: CompletedCall,
    contact: Contact | None,
    owner_id: str | None,
    key_field: str = DEFAULT_KEY_FIELD,
    tz: ZoneInfo | None = None,
    recordings: RecordingsMode | None = None,
) -> dict[str, object]:
    """One record of the ``POST /crm/v7/Calls`` body (pure); the note's times in ``tz``."""
    name = contact.name if contact else None
    kind = call_type(call)
    record: dict[str, object] = {
        "Subject": content.subject(call, name)[:255],
        "Call_Type": kind,
        "Call_Start_Time": zoho_time(call.start_time),
        "Call_Duration": mm_ss(talk_seconds(call)),
        "Call_Result": _RESULTS[content.outcome(call)],
        "Description": content.note_text(call, name, tz=tz, recordings=recordings),
        key_field: call.key,
    }
    if kind == "Outbound":
        record["Outgoing_Call_Status"] = "Completed"
    if call.external_number:
        # Zoho's telephony fields: the number dialled out, or the caller's number.
        record["Dialled_Number" if kind == "Outbound" else "Caller_ID"] = call.external_number
    if contact is not None and contact.kind == "lead":
        record["What_Id"] = {"id": contact.id}
        record["$se_module"] = "Leads"
    elif contact is not None:
        record["Who_Id"] = {"id": contact.id}
    if owner_id:
        record["Owner"] = {"id": owner_id}
    return record


def contact_record(call: CompletedCall, number: str, owner_id: str | None) -> dict[str, object]:
    """A new contact for ``no_contact = create``: the caller ID name, else the number."""
    record: dict[str, object] = {"Last_Name": call.external_name or number, "Phone": number}
    if owner_id:
        record["Owner"] = {"id": owner_id}
    return record


def coql_string(value: str) -> str:
    """A COQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def key_query(keys: Sequence[str], key_field: str) -> str:
    listed = ", ".join(coql_string(k) for k in keys)
    return f"select id, {key_field} from Calls where {key_field} in ({listed}) limit {COQL_LIMIT}"


def client_log_query(calls: Sequence[CompletedCall], key_field: str) -> str:
    low = min(content.utc(c.start_time) for c in calls) - CLIENT_WINDOW
    high = max(content.utc(c.end_time) for c in calls) + CLIENT_WINDOW
    return (
        f"select {', '.join(CLIENT_FIELDS)} from Calls where (Call_Start_Time between"
        f" {coql_string(zoho_time(low))} and {coql_string(zoho_time(high))})"
        f" and {key_field} is null limit {COQL_LIMIT}"
    )


def client_log_matches(p: Pending, record: Mapping[str, object]) -> bool:
    """Whether a Calls record without our key is another client's log of this call, by what
    such clients write without naming the session (pure): the call type of the call's
    direction, a start in the call's start minute, and the caller's number (Zoho's telephony
    fields ``Caller_ID`` / ``Dialled_Number``, which PhoneBridge integrations fill) or the
    contact we matched (``Who_Id``, which every connector sets; the multi-module ``What_Id``
    of a lead is not read, as COQL is not documented to select it)."""
    call = p.call
    kind = record.get("Call_Type")
    wanted = ("Outbound",) if call.direction is Direction.OUTBOUND else ("Inbound", "Missed")
    if kind not in wanted or not near_start(call, parse_time(record.get("Call_Start_Time"))):
        return False
    numbers = [v for f in ("Caller_ID", "Dialled_Number") if isinstance(v := record.get(f), str)]
    if call.external_number and any(content.same_number(n, call.external_number) for n in numbers):
        return True
    ours = _ref(p.payload.get("Who_Id"))
    return ours is not None and ours == _ref(record.get("Who_Id"))


_description = text_field("Description")


def _ref(value: object) -> str | None:
    rid = value.get("id") if isinstance(value, dict) else None
    return str(rid) if rid else None


def phone_criteria(e164: str) -> str:
    """Search criteria: ``Phone`` or ``Mobile`` equal to one of the number's usual forms."""
    forms = content.phone_variants(e164)
    terms = [f"({field}:equals:{form})" for field in ("Phone", "Mobile") for form in forms]
    return "(" + "or".join(terms) + ")"


def _records(answer: Response) -> list[Mapping[str, object]]:
    """The ``data`` list of an answer (204 No Content: none)."""
    raw = answer.object().get("data")
    return [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []


def _name(record: Mapping[str, object]) -> str | None:
    full = record.get("Full_Name")
    if isinstance(full, str) and full:
        return full
    parts = [record.get("First_Name"), record.get("Last_Name")]
    return " ".join(p for p in parts if isinstance(p, str) and p) or None


def _owner_id(record: Mapping[str, object]) -> str | None:
    owner = record.get("Owner")
    oid = owner.get("id") if isinstance(owner, dict) else None
    return str(oid) if oid else None


def item_result(item: Mapping[str, object], key_field: str) -> WriteResult:
    """One entry of an insert answer -> the call's result (pure)."""
    details = item.get("details")
    details = details if isinstance(details, dict) else {}
    code = str(item.get("code", ""))
    if item.get("status") == "success" and details.get("id"):
        return Created(str(details["id"]))
    if code == "DUPLICATE_DATA" and details.get("api_name") == key_field:
        existing = details.get("duplicate_record")
        rid = existing.get("id") if isinstance(existing, dict) else details.get("id")
        if rid:
            return AlreadyExisted(str(rid), ours=True)  # our key refused the insert
    field = details.get("api_name")
    where = f" (field {field})" if field else ""
    message = item.get("message") or "refused"
    return PermanentFailure(f"{CRM} rejected the call log: {code} {message}{where}".strip())


# -- the writer ------------------------------------------------------------------------------


class ZohoToken(OAuthBearer):
    """Zoho's own scheme name for an OAuth access token."""

    async def apply(self, headers: dict[str, str], params: dict[str, str]) -> str | None:
        token = await self.client.access_token()
        headers["Authorization"] = f"Zoho-oauthtoken {token}"
        return token


class ZohoWriter(BaseUrlCalls, ChunkedWriterBase):
    """Writes Calls records into one Zoho CRM organisation."""

    chunk_size = BATCH_MAX

    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        self._opts = opts = options_of(settings, ZohoOptions, "ZohoWriter", "zoho")
        self._zone_of = content.zone_of(settings.contacts)  # per call: timezone = "user"
        self.recordings = settings.contacts.recordings
        self.oauth = OAuthClient.at(
            session, opts.accounts_url, "/oauth/v2/token", opts.oauth, timeout=settings.timeout
        )
        super().__init__(
            CRM,
            settings,
            session,
            ZohoToken(self.oauth),
            find=self._find,
            create=self._create_contact,
            list_users=self._list_users,
            owner_valid=lambda owner: owner.isdigit(),
        )

    def __repr__(self) -> str:
        return f"ZohoWriter(name={self.name!r}, accounts_url={self._opts.accounts_url!r})"

    async def _base_url(self) -> str | LookupFailure:
        """``/crm/v7`` on the API domain the token answer named."""
        failure = await ensure_token(CRM, self.oauth)
        if failure is not None:
            return failure
        domain = self.oauth.extras.get("api_domain")
        if not domain:
            return PermanentFailure(f"{CRM} token answer named no api_domain")
        return f"{domain.rstrip('/')}/crm/{API_VERSION}"

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        """Recording or voicemail added to the Calls record (``crm/zoho_enrich.py``)."""
        return await enrich_record(ZohoCall(self), e, ctx)

    async def _coql(self, query: str) -> list[Mapping[str, object]] | LookupFailure:
        answer = await self._call("POST", "/coql", body={"select_query": query})
        return answer if not isinstance(answer, Response) else _records(answer)

    # -- steps -------------------------------------------------------------------------------

    async def _write_chunk(self, chunk: list[Pending]) -> None:
        key_field = self._opts.key_field
        uncertain = [p for p in chunk if p.ctx.uncertain]
        # COQL takes at most COQL_IN_MAX values in one "in".
        for start in range(0, len(uncertain), COQL_IN_MAX):
            group = uncertain[start : start + COQL_IN_MAX]
            rows = await self._coql(key_query([p.call.key for p in group], key_field))
            if not isinstance(rows, list):
                batch.fail_open(group, rows)
                continue
            found = {str(r.get(key_field)): str(r.get("id")) for r in rows if r.get("id")}
            for p in group:
                if p.call.key in found:
                    p.result = AlreadyExisted(found[p.call.key], ours=True)
        records: list[tuple[str, Mapping[str, object]]] | None = None
        open_ = batch.still_open(chunk)
        if open_ and self._settings.contacts.detect_client_logs:
            rows = await self._coql(client_log_query([p.call for p in open_], key_field))
            if not isinstance(rows, list):
                batch.fail_open(open_, rows)
                return
            records = [(str(r["id"]), r) for r in rows if r.get("id")]
        ready = await prepare_unlogged(
            chunk, self.resolver, self._payload, records, _description, client_log_matches
        )
        if ready:
            await self._insert(ready)

    def _payload(self, call: CompletedCall, resolved: Resolution) -> dict[str, object]:
        return call_record(
            call,
            resolved.primary,
            resolved.owner_id,
            self._opts.key_field,
            self._zone_of(call),
            self.recordings,
        )

    async def _insert(self, ready: list[Pending]) -> None:
        answer = await self._call(
            "POST", "/Calls", body={"data": [p.payload for p in ready]}, accept=frozenset({400})
        )
        if not isinstance(answer, Response):
            batch.fail_open(ready, answer)
            return
        items = _records(answer)
        if len(items) != len(ready):
            # A request-level refusal (no per-record answers): it concerns every record.
            reason = self.http.reason(answer)
            failure = PermanentFailure(
                f"{CRM} rejected the request (HTTP {answer.status}): {reason}"
            )
            batch.fail_open(ready, failure)
            return
        for p, item in zip(ready, items, strict=True):
            p.result = item_result(item, self._opts.key_field)
            if isinstance(p.result, Created):  # the note later updates compare with
                p.result = Created(p.result.record_id, _description(p.payload))

    # -- lookups -----------------------------------------------------------------------------

    async def _search(self, module: str, number: str, kind: str) -> list[Contact] | LookupFailure:
        answer = await self._call(
            "GET",
            f"/{module}/search",
            params={"criteria": phone_criteria(number), "per_page": "10"},
        )
        if not isinstance(answer, Response):
            return answer
        found: list[Contact] = []
        for record in _records(answer):
            phones = [v for f in ("Phone", "Mobile") if isinstance(v := record.get(f), str)]
            if record.get("id") and any(content.same_number(p, number) for p in phones):
                found.append(
                    Contact(
                        str(record["id"]),
                        _name(record),
                        kind,
                        None,
                        _owner_id(record),
                        parse_time(record.get("Created_Time")),
                        parse_time(record.get("Modified_Time")),
                    )
                )
        return found

    async def _find(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        contacts = await self._search("Contacts", number, "contact")
        if not isinstance(contacts, list):
            return contacts
        if contacts or not self._opts.search_leads:
            return tuple(contacts)
        leads = await self._search("Leads", number, "lead")
        return tuple(leads) if isinstance(leads, list) else leads

    async def _create_contact(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        record = contact_record(call, number, owner_id)
        answer = await self._call("POST", "/Contacts", body={"data": [record]})
        if not isinstance(answer, Response):
            return answer
        items = _records(answer)
        result = item_result(items[0], "") if items else RetryLater(f"{CRM}: no answer")
        if isinstance(result, Created):
            return Contact(result.record_id, str(record["Last_Name"]), "contact", None, owner_id)
        if isinstance(result, RetryLater | PermanentFailure):
            return result
        return RetryLater(f"{CRM} contact create answered without an id")

    async def _list_users(self) -> dict[str, str] | LookupFailure:
        users: dict[str, str] = {}
        for page in range(1, 21):
            answer = await self._call(
                "GET",
                "/users",
                params={"type": "ActiveUsers", "page": str(page), "per_page": "200"},
            )
            if not isinstance(answer, Response):
                return answer
            listed = answer.object().get("users")
            for user in listed if isinstance(listed, list) else []:
                if isinstance(user, dict) and isinstance(user.get("email"), str) and user.get("id"):
                    users[user["email"].lower()] = str(user["id"])
            info = answer.object().get("info")
            if not (isinstance(info, dict) and info.get("more_records")):
                break
        return users


def _build(settings: WriterSettings, session: aiohttp.ClientSession) -> ZohoWriter:
    return ZohoWriter(settings, session)


PLUGIN: Final = WriterPlugin("zoho", CRM, parse_options, _build)
