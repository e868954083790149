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

import aiohttp

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import Secret, WriterSettings
from sscl_daemon.crm import batch, content
from sscl_daemon.crm.base import (
    Created,
    OptionReader,
    RetryLater,
    WriteContext,
    WriterPlugin,
)
from sscl_daemon.crm.batch import Pending
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution, parse_time
from sscl_daemon.crm.dataverse import (
    ODATA_HEADERS,
    ClientCredentials,
    batch_body,
    odata_time,
    parse_batch,
)
from sscl_daemon.crm.dynamics_enrich import DynamicsPhoneCall, upload_max_of
from sscl_daemon.crm.dynamics_mapping import (
    CRM,
    DESCRIPTION_MAX,
    KEY_NAMESPACE,
    STATE_COMPLETED,
    STATUS_MADE,
    STATUS_RECEIVED,
    SUBJECT_MAX,
    _description,
    activity_id,
    change_set_result,
    client_log_matches,
    close_body,
    description,
    outgoing,
    phone_filter,
    phonecall,
)
from sscl_daemon.crm.enrich import Enrichment, EnrichResult
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.plugin_enrich import enrich_record
from sscl_daemon.crm.plugin_parts import (
    options_of,
    prepare_unlogged,
)
from sscl_daemon.crm.wiring import ChunkedWriterBase, nested_error_message

# The mapping lives in crm/dynamics_mapping.py; its names are this writer's too.
__all__ = [
    "CRM",
    "DESCRIPTION_MAX",
    "KEY_NAMESPACE",
    "PLUGIN",
    "STATE_COMPLETED",
    "STATUS_MADE",
    "STATUS_RECEIVED",
    "SUBJECT_MAX",
    "DynamicsOptions",
    "DynamicsWriter",
    "activity_id",
    "change_set_result",
    "client_log_matches",
    "close_body",
    "description",
    "outgoing",
    "parse_options",
    "phone_filter",
    "phonecall",
]

API: Final = "/api/data/v9.2"
BATCH_MAX: Final = 100
CLIENT_WINDOW: Final = timedelta(hours=1)
DEFAULT_AUTHORITY: Final = "https://login.microsoftonline.com"
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
