"""Microsoft Dynamics 365 / Dataverse writer: a ``CompletedCall`` becomes a completed ``phonecall``
activity (dispatch -> here -> the environment's Web API).

Authentication: Microsoft Entra ID client credentials for an *application user* of the
environment -- ``POST {authority}/{tenant_id}/oauth2/v2.0/token`` with ``grant_type=
client_credentials`` and ``scope={environment_url}/.default``. There is no refresh token:
a token is fetched again when it expires or the API answers 401.

Requests (Web API v9.2, OData 4.0, JSON; the OData, ``$batch`` and token plumbing is in
``crm/dataverse.py``):

* ``POST /api/data/v9.2/$batch`` -- every call of a batch is one *change set* of two
  operations, applied atomically: ``PATCH phonecalls(<activityid>)`` with ``If-None-Match:
  *`` (create only) carrying the call, then ``PATCH phonecalls(<activityid>)`` setting
  ``statecode`` 1 (Completed) and ``statuscode`` 2 (Made) or 4 (Received) -- a phone call
  cannot be created completed, and a completed one is read-only, so everything is written
  before it is closed. ``Prefer: odata.continue-on-error`` lets the other change sets go on
  when one fails; each call gets the answer of its own change set.
* ``GET /contacts?$filter=telephone1 eq ... or mobilephone eq ... or telephone2 eq ...`` per
  uncached number (numbers are stored as typed: the usual forms are asked for and checked
  again here), then ``GET /leads`` when no contact matches (``search_leads``); ``POST
  /contacts`` for ``no_contact = create``; ``GET /systemusers`` (enabled users'
  ``internalemailaddress``) once per cache TTL for owners by e-mail.
* ``GET /phonecalls?$filter=createdon ge ... and createdon le ...`` once per batch for logs a
  user's own client made (not with ``detect_client_logs = false``): one whose description
  names the call's RingCentral session, or, since no public client writes the session by
  default (App Connect has no Dynamics connector; RingCentral for Microsoft Dynamics is
  closed source), one with the call's fingerprint (:func:`client_log_matches`: direction,
  start minute, and the caller's number or the regarding contact/lead we matched).

Phone call columns: ``subject``, ``description`` (the note, at most 2,000 characters: the
marker lines are kept), ``phonenumber``, ``directioncode`` (true = outgoing),
``actualstart``/``actualend``, ``actualdurationminutes`` (talk time, whole minutes rounded
up; none for a call the caller left in the user's voicemail, a missed call),
``leftvoicemail`` (only an outgoing call that reached voicemail: the user left one),
``regardingobjectid_contact``/``_lead`` (the matched record), the
``phonecall_activity_parties`` (from = 1, to = 2: the user and the contact/lead) and
``ownerid`` (the mapped user).

Exactly once, without a lookup: the ``activityid`` of a call is a UUID derived from our key
(:func:`activity_id`, UUID 5), so a repeated create of the same call is refused by Dataverse
with 412 Precondition Failed, read as ``AlreadyExisted``; since create and close are one
change set, an existing record is always a completed one.

Limits: service protection per user and 5-minute window answers 429 with ``Retry-After``;
answers carry ``x-ms-ratelimit-burst-remaining-xrm-requests`` and
``x-ms-ratelimit-time-remaining-xrm-requests``.

After the create, recordings and voicemail (audio and transcription) are added
(``crm/dynamics_enrich.py``): each file a note of the phone call, the section in its
description unless a person changed it, else in a note.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final
from zoneinfo import ZoneInfo

import aiohttp

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.config import RecordingsMode, Secret, WriterSettings
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
from sscl_daemon.crm.batch import Pending
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution, parse_time
from sscl_daemon.crm.dataverse import (
    ODATA_HEADERS,
    ClientCredentials,
    PartAnswer,
    batch_body,
    odata_string,
    odata_time,
    parse_batch,
)
from sscl_daemon.crm.dynamics_enrich import DynamicsPhoneCall, upload_max_of
from sscl_daemon.crm.enrich import Enrichment, EnrichResult
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.plugin_enrich import enrich_record
from sscl_daemon.crm.plugin_parts import (
    near_start,
    options_of,
    prepare_unlogged,
    reached_voicemail,
    talk_seconds,
    text_field,
)
from sscl_daemon.crm.wiring import ChunkedWriterBase, nested_error_message

CRM: Final = "Dynamics 365"
API: Final = "/api/data/v9.2"
BATCH_MAX: Final = 100
DESCRIPTION_MAX: Final = 2000
SUBJECT_MAX: Final = 200
CLIENT_WINDOW: Final = timedelta(hours=1)
DEFAULT_AUTHORITY: Final = "https://login.microsoftonline.com"
# Namespace of the activity ids derived from our keys (fixed: changing it would log calls
# again under new ids).
KEY_NAMESPACE: Final = uuid.UUID("7b0f4a52-4f0e-5c1d-9a57-2d1c8f3e6a10")
STATE_COMPLETED: Final = 1
STATUS_MADE: Final = 2
STATUS_RECEIVED: Final = 4
# What the client-log query reads of each phone call (session line and fingerprint).
CLIENT_COLUMNS: Final = (
    "activityid,description,directioncode,actualstart,phonenumber,_regardingobjectid_value"
)


@dataclass(frozen=True)
class DynamicsOptions:
    environment_url: str
    tenant_id: str
    client_id: str
    client_secret: Secret
    authority_url: str = DEFAULT_AUTHORITY
    # Look for a lead when no contact has the number.
    search_leads: bool = True


def parse_options(reader: OptionReader) -> DynamicsOptions | None:
    environment = reader.url("environment_url", "")
    if not environment:
        reader.problem("environment_url", "is required (https://yourorg.crm.dynamics.com)")
    tenant = reader.string("tenant_id", "")
    if not tenant:
        reader.problem("tenant_id", "is required (the directory (tenant) id of the app)")
    client_id = reader.string("client_id", "")
    if not client_id:
        reader.problem("client_id", "is required (the application (client) id)")
    secret = reader.secret("client_secret", required=True)
    authority = reader.url("authority_url", DEFAULT_AUTHORITY)
    leads = reader.boolean("search_leads", True)
    if not (environment and tenant and client_id) or secret is None:
        return None
    return DynamicsOptions(environment, tenant, client_id, secret, authority, leads)


# -- pure mapping ----------------------------------------------------------------------------


def activity_id(key: str) -> str:
    """The phone call's ``activityid``: derived from our key, the same on every attempt."""
    return str(uuid.uuid5(KEY_NAMESPACE, key))


def outgoing(call: CompletedCall) -> bool:
    """``directioncode``: only calls the user placed to the outside world are outgoing."""
    return call.direction is Direction.OUTBOUND


def description(
    call: CompletedCall,
    name: str | None,
    tz: ZoneInfo | None = None,
    recordings: RecordingsMode | None = None,
) -> str:
    """The note within 2,000 characters: facts are dropped from the end, never the markers."""
    lines = content.note_lines(call, name, tz=tz, recordings=recordings)
    markers = [
        n
        for n in lines
        if n.label in (content.SESSION_LABEL, content.CALL_SESSION_LABEL, content.KEY_LABEL)
    ]
    facts = [n for n in lines if n not in markers]
    while True:
        text = "\n".join(f"{n.label}: {n.value}" for n in [*facts, *markers])
        if len(text) <= DESCRIPTION_MAX or not facts:
            return text[-DESCRIPTION_MAX:]
        facts.pop()


def _bind(kind: str) -> str:
    return "contacts" if kind == "contact" else "leads"


def phonecall(
    call: CompletedCall,
    contact: Contact | None,
    owner_id: str | None,
    tz: ZoneInfo | None = None,
    recordings: RecordingsMode | None = None,
) -> dict[str, object]:
    """The create body of one phone call (pure); the note's times in ``tz``."""
    name = contact.name if contact else None
    out = outgoing(call)
    body: dict[str, object] = {
        "activityid": activity_id(call.key),
        "subject": content.subject(call, name)[:SUBJECT_MAX],
        "description": description(call, name, tz, recordings),
        "directioncode": out,
        "actualstart": odata_time(call.start_time),
        "actualend": odata_time(call.end_time),
        # A call the caller left in the user's voicemail is a missed call: no talk time, and
        # not "left voice mail", which is the user's outcome of an outgoing call.
        "actualdurationminutes": content.minutes(talk_seconds(call)),
        "leftvoicemail": reached_voicemail(call),
    }
    number = call.external_number or call.internal_number
    if number:
        body["phonenumber"] = number[:200]
    parties: list[dict[str, object]] = []
    user_mask, other_mask = (1, 2) if out else (2, 1)
    if owner_id:
        body["ownerid@odata.bind"] = f"/systemusers({owner_id})"
        parties.append(
            {
                "partyid_systemuser@odata.bind": f"/systemusers({owner_id})",
                "participationtypemask": user_mask,
            }
        )
    if contact is not None:
        table = _bind(contact.kind)
        body[f"regardingobjectid_{contact.kind}@odata.bind"] = f"/{table}({contact.id})"
        parties.append(
            {
                f"partyid_{contact.kind}@odata.bind": f"/{table}({contact.id})",
                "participationtypemask": other_mask,
            }
        )
    if parties:
        body["phonecall_activity_parties"] = parties
    return body


def close_body(call: CompletedCall) -> dict[str, object]:
    return {
        "statecode": STATE_COMPLETED,
        "statuscode": STATUS_MADE if outgoing(call) else STATUS_RECEIVED,
    }


def phone_filter(e164: str, columns: Sequence[str]) -> str:
    forms = content.phone_variants(e164)
    return " or ".join(f"{c} eq {odata_string(f)}" for c in columns for f in forms)


_description = text_field("description")


def client_log_matches(p: Pending, row: Mapping[str, object]) -> bool:
    """Whether a phone call without our key is another client's log of this call, by what a
    telephony client writes without naming the session (pure): the call's direction, an
    ``actualstart`` in the call's start minute, and the caller's number in ``phonenumber``
    or the contact or lead we matched as the regarding record."""
    call, start = p.call, parse_time(row.get("actualstart"))
    if row.get("directioncode") is not outgoing(call) or not near_start(call, start):
        return False
    number = row.get("phonenumber")
    external = call.external_number
    if isinstance(number, str) and external and content.same_number(number, external):
        return True
    regarding = row.get("_regardingobjectid_value")
    ours = [v for k, v in p.payload.items() if k.startswith("regardingobjectid_")]
    return bool(regarding) and any(str(v).endswith(f"({regarding})") for v in ours)


def change_set_result(call: CompletedCall, answers: Sequence[PartAnswer]) -> WriteResult:
    """The result of one call's change set (pure)."""
    if answers and all(200 <= a.status < 300 for a in answers):
        return Created(activity_id(call.key))
    failed = next((a for a in answers if not 200 <= a.status < 300), None)
    if failed is None:
        return RetryLater(f"{CRM}: the batch answer has no part for {call.key}")
    if failed.status == 412:
        return AlreadyExisted(activity_id(call.key))
    message = nested_error_message(failed.body, str(failed.body or ""))
    if failed.status == 429 or failed.status >= 500:
        return RetryLater(f"{CRM} unavailable (HTTP {failed.status}): {message}")
    return PermanentFailure(f"{CRM} rejected the phone call (HTTP {failed.status}): {message}")


# -- the writer ------------------------------------------------------------------------------


def _guid(answer: Response, column: str) -> str | None:
    """The id of a created row: the body's column, else the ``OData-EntityId`` header."""
    value = answer.object().get(column)
    if isinstance(value, str) and value:
        return value
    entity = answer.headers.get("odata-entityid", "")
    if entity.endswith(")") and "(" in entity:
        return entity.rsplit("(", 1)[1][:-1]
    return None


class DynamicsWriter(ChunkedWriterBase):
    """Writes completed phone calls into one Dataverse environment."""

    chunk_size = BATCH_MAX

    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        self._opts = opts = options_of(settings, DynamicsOptions, "DynamicsWriter", "dynamics")
        self._zone_of = content.zone_of(settings.contacts)  # per call: timezone = "user"
        self._base = opts.environment_url.rstrip("/") + API
        self.recordings = settings.contacts.recordings
        self._upload_max: int | None = None  # the organisation's, read on the first upload
        self.credentials = ClientCredentials(
            session,
            authority_url=opts.authority_url,
            tenant_id=opts.tenant_id,
            client_id=opts.client_id,
            client_secret=opts.client_secret.reveal(),
            resource=opts.environment_url,
            timeout=settings.timeout,
        )
        super().__init__(
            CRM,
            settings,
            session,
            self.credentials,
            find=self._find,
            create=self._create_contact,
            list_users=self._list_users,
            owner_valid=_is_guid,
            message=nested_error_message,
        )

    def __repr__(self) -> str:
        return f"DynamicsWriter(name={self.name!r}, environment_url={self._opts.environment_url!r})"

    async def _get(self, path: str, params: Mapping[str, str]) -> Response | LookupFailure:
        return await self.http.request(
            "GET", self._base + path, params=params, headers=ODATA_HEADERS
        )

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        """The audio in notes of the phone call, the section in its description or a note
        (``crm/dynamics_enrich.py``)."""
        return await enrich_record(DynamicsPhoneCall(self.http, self._base, self._max), e, ctx)

    async def _max(self) -> int | LookupFailure:
        if self._upload_max is None:
            answer = await self._get("/organizations", {"$select": "maxuploadfilesize"})
            if not isinstance(answer, Response):
                return answer
            self._upload_max = upload_max_of(answer)
        return self._upload_max

    # -- steps -------------------------------------------------------------------------------

    async def _write_chunk(self, chunk: list[Pending]) -> None:
        records: list[tuple[str, Mapping[str, object]]] | None = None
        if self._settings.contacts.detect_client_logs:
            found = await self._client_logs([p.call for p in chunk])
            if not isinstance(found, list):
                batch.fail_open(chunk, found)
                return
            records = found
        ready = await prepare_unlogged(
            chunk,
            self.resolver,
            self._payload,
            records,
            _description,
            client_log_matches,
            own_id=lambda call: activity_id(call.key),
        )
        if ready:
            await self._send(ready)

    def _payload(self, call: CompletedCall, resolved: Resolution) -> dict[str, object]:
        return phonecall(
            call, resolved.primary, resolved.owner_id, self._zone_of(call), self.recordings
        )

    async def _send(self, ready: list[Pending]) -> None:
        boundary = uuid.uuid4().hex
        changesets = []
        for p in ready:
            path = f"/phonecalls({activity_id(p.call.key)})"
            create = {k: v for k, v in p.payload.items() if k != "activityid"}
            changesets.append(
                [
                    ("PATCH", path, {"If-None-Match": "*"}, create),
                    ("PATCH", path, {"If-Match": "*"}, close_body(p.call)),
                ]
            )
        answer = await self.http.request(
            "POST",
            f"{self._base}/$batch",
            data=batch_body(self._base, changesets, boundary),
            headers={
                **ODATA_HEADERS,
                "Content-Type": f"multipart/mixed; boundary=batch_{boundary}",
                "Prefer": "odata.continue-on-error",
            },
        )
        if not isinstance(answer, Response):
            batch.fail_open(ready, answer)
            return
        parts = parse_batch(answer.headers.get("content-type", ""), answer.text.encode())
        for i, p in enumerate(ready):
            p.result = change_set_result(p.call, parts[i] if i < len(parts) else [])
            if isinstance(p.result, Created):  # what later updates compare with
                p.result = Created(p.result.record_id, _description(p.payload))

    # -- lookups -----------------------------------------------------------------------------

    async def _client_logs(
        self, calls: Sequence[CompletedCall]
    ) -> list[tuple[str, Mapping[str, object]]] | LookupFailure:
        low = min(content.utc(c.start_time) for c in calls) - CLIENT_WINDOW
        high = max(content.utc(c.end_time) for c in calls) + CLIENT_WINDOW
        answer = await self._get(
            "/phonecalls",
            {
                "$select": CLIENT_COLUMNS,
                "$filter": f"createdon ge {odata_time(low)} and createdon le {odata_time(high)}",
                "$top": "500",
            },
        )
        if not isinstance(answer, Response):
            return answer
        rows = answer.object().get("value")
        return [
            (str(r.get("activityid")), r)
            for r in (rows if isinstance(rows, list) else [])
            if isinstance(r, dict) and r.get("activityid")
        ]

    async def _search(self, table: str, kind: str, number: str) -> list[Contact] | LookupFailure:
        columns = ("telephone1", "mobilephone", "telephone2")
        answer = await self._get(
            f"/{table}",
            {
                "$select": f"{kind}id,fullname,{','.join(columns)},_ownerid_value,createdon,modifiedon",
                "$filter": phone_filter(number, columns),
                "$top": "10",
            },
        )
        if not isinstance(answer, Response):
            return answer
        rows = answer.object().get("value")
        found = []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or not row.get(f"{kind}id"):
                continue
            if any(
                isinstance(v := row.get(c), str) and content.same_number(v, number) for c in columns
            ):
                name = row.get("fullname")
                owner = row.get("_ownerid_value")
                found.append(
                    Contact(
                        str(row[f"{kind}id"]),
                        name if isinstance(name, str) else None,
                        kind,
                        None,
                        str(owner) if owner else None,
                        parse_time(row.get("createdon")),
                        parse_time(row.get("modifiedon")),
                    )
                )
        return found

    async def _find(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        contacts = await self._search("contacts", "contact", number)
        if not isinstance(contacts, list):
            return contacts
        if contacts or not self._opts.search_leads:
            return tuple(contacts)
        leads = await self._search("leads", "lead", number)
        return tuple(leads) if isinstance(leads, list) else leads

    async def _create_contact(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        name = call.external_name or number
        body: dict[str, object] = {"lastname": name, "telephone1": number}
        if owner_id:
            body["ownerid@odata.bind"] = f"/systemusers({owner_id})"
        answer = await self.http.request(
            "POST",
            f"{self._base}/contacts",
            json_body=body,
            headers={**ODATA_HEADERS, "Prefer": "return=representation"},
        )
        if not isinstance(answer, Response):
            return answer
        cid = _guid(answer, "contactid")
        if cid is None:
            return RetryLater(f"{CRM} contact create answered without an id")
        return Contact(cid, name, "contact", None, owner_id)

    async def _list_users(self) -> dict[str, str] | LookupFailure:
        users: dict[str, str] = {}
        url: str | None = f"{self._base}/systemusers"
        params: Mapping[str, str] | None = {
            "$select": "systemuserid,internalemailaddress",
            "$filter": "isdisabled eq false",
        }
        for _ in range(20):
            if url is None:
                break
            answer = await self.http.request("GET", url, params=params, headers=ODATA_HEADERS)
            if not isinstance(answer, Response):
                return answer
            rows = answer.object().get("value")
            for row in rows if isinstance(rows, list) else []:
                mail = row.get("internalemailaddress") if isinstance(row, dict) else None
                if isinstance(mail, str) and mail and row.get("systemuserid"):
                    users[mail.lower()] = str(row["systemuserid"])
            nxt = answer.object().get("@odata.nextLink")
            url, params = (nxt, None) if isinstance(nxt, str) else (None, None)
        return users


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _build(settings: WriterSettings, session: aiohttp.ClientSession) -> DynamicsWriter:
    return DynamicsWriter(settings, session)


PLUGIN: Final = WriterPlugin("dynamics", CRM, parse_options, _build)
