"""Salesforce writer: a ``CompletedCall`` becomes a Task with the call fields (dispatch -> here -> Salesforce).

REST API under ``<instance_url>/services/data/<api_version>``, OAuth 2 refresh-token flow
against ``<login_url>/services/oauth2/token`` (its answer names the ``instance_url`` to use;
Salesforce sends no ``expires_in``, so a 401 ``INVALID_SESSION_ID`` triggers one refresh):

* ``POST /sobjects/Task`` (one call) or ``POST /composite/sobjects`` with ``allOrNone=false``
  (2..200 calls, one SaveResult per record, in order);
* ``GET /query?q=SELECT ... FROM Task ...`` once per write/batch (split when the SOQL would
  not fit a GET URL): our own earlier records and the logs a user's client made (see below).
  With ``detect_client_logs = false`` the query asks only for our keys, and only for calls
  an earlier attempt may have stored (``uncertain`` or a retry): the unique key field
  refuses any other repeat;
* ``GET /search?q=FIND {...} IN PHONE FIELDS RETURNING Contact(...)`` per uncached number;
  ``GET /query?q=SELECT Id, Email FROM User WHERE IsActive = true`` once per cache TTL;
* with a ``deals`` policy, per uncached contact, its ``OpportunityContactRole`` rows and then
  its opportunities (``IsClosed``, ``LastModifiedDate``): the chosen open one is the Task's
  ``WhatId``.

Limits: every answer's ``Sforce-Limit-Info: api-usage=<used>/<max>`` feeds the limiter. A 403
``REQUEST_LIMIT_EXCEEDED`` is read by :func:`request_limit` (the ``classify_first`` hook of
``crm/http.py``) as "retry later": after an hour when that header says the 24 h allowance
is spent, else after a minute (a concurrency limit); any other 403 is a permanent refusal.

Task fields: ``TaskSubtype='Call'``, ``Status='Completed'``, ``Priority='Normal'``,
``Subject``, ``Description`` (the note: queue/ring/hold/transfer details, recording links and
the marker lines), ``ActivityDate`` (the call's date in the writer's ``timezone``, UTC
without one: a date field has no zone, so a US evening call must not land on the next day;
Task has no standard start time),
``CallType`` (Inbound/Outbound/Internal), ``CallDurationInSeconds`` (talk time),
``CallDisposition`` (the outcome in words), ``CallObject`` (the RingCentral telephony session
id), ``WhoId`` (the contact: a Task takes one, so with several matches and the ``all``
policy the first is used), ``OwnerId`` and the external id field. Contacts are found by SOSL
over phone fields (Leads are not searched).

Exactly once. One-time setup: a custom Activity field, Text(255), *External ID* and *Unique*
(default ``SSCL_Call_Key__c``, configurable as ``external_id_field``), visible to the API
user. Every Task carries our key in it. Before creating, one SOQL query (strongly consistent,
no search index) looks for Tasks with our keys; a second create with the same key is refused
by Salesforce with ``DUPLICATE_VALUE`` naming the existing record. Both become
``AlreadyExisted``. We never upsert an existing Task (``PATCH .../Task/<field>/<key>`` would
overwrite what a user edited on the log since), we only create. Where an org does not let
the field be Unique, the query alone still keeps one daemon (one writer) from logging twice.

Logs made by a user's own client: the same query also returns Tasks without our key whose
``CallObject`` is the call's telephony session id or session id, or that are call Tasks
created within the call's time window; such a Task is the same call when its ``CallObject``
matches or its ``Description`` names the session (App Connect writes a "Session Id" line,
see ``crm/content.py``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import aiohttp
from cachetools import TTLCache

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.config import DealsPolicy, SalesforceOptions, WriterSettings
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
from sscl_daemon.crm.contacts import Contact, LookupFailure, parse_time
from sscl_daemon.crm.deals import Deal
from sscl_daemon.crm.enrich import Enrichment, EnrichResult, Updated
from sscl_daemon.crm.http import OAuthBearer, Response, ensure_token
from sscl_daemon.crm.limiter import pause_from_headers
from sscl_daemon.crm.oauth import OAuthClient
from sscl_daemon.crm.templates import Style
from sscl_daemon.crm.wiring import ChunkedWriterBase

if TYPE_CHECKING:
    from sscl_daemon.ringcentral.media import Audio

CRM: Final = "Salesforce"
DEFAULT_STYLE: Final = Style()
BATCH_MAX: Final = 200
QUERY_PAGES: Final = 10
# Room for the encoded SOQL in a GET URL, under Salesforce's 16,384-byte URI limit.
QUERY_URL_BUDGET: Final = 12_000
REQUEST_LIMIT_DELAY: Final = 60.0
# Task.Description is a long text area of 32,000 characters.
DESCRIPTION_MAX: Final = 32_000
WINDOW_BEFORE: Final = timedelta(minutes=5)
WINDOW_AFTER: Final = timedelta(hours=1)
_DUPLICATE_ID: Final = re.compile(r"record with id:\s*([A-Za-z0-9]{15,18})")

_CALL_TYPES: Final = {
    Direction.INBOUND: "Inbound",
    Direction.OUTBOUND: "Outbound",
    Direction.INTERNAL: "Internal",
}
_DISPOSITIONS: Final = {
    content.CallOutcome.ANSWERED: "Answered",
    content.CallOutcome.NO_ANSWER: "No answer",
    content.CallOutcome.VOICEMAIL: "Missed, voicemail left",
    content.CallOutcome.BUSY: "Busy",
    content.CallOutcome.REJECTED: "Rejected",
    content.CallOutcome.TRANSFERRED: "Answered, transferred",
    content.CallOutcome.ABANDONED: "Abandoned before answer",
    content.CallOutcome.INCOMPLETE: "Unknown (end not seen)",
}


# -- pure mapping ----------------------------------------------------------------------------


def soql_quote(value: str) -> str:
    """A SOQL string literal (backslash and single quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql_datetime(moment: datetime) -> str:
    return content.utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_fields(
    call: CompletedCall,
    key_field: str,
    contact: Contact | None = None,
    owner_id: str | None = None,
    style: Style = DEFAULT_STYLE,
) -> dict[str, object]:
    """The Task's fields for this call, in Salesforce's types (ints stay ints)."""
    name = contact.name if contact else None
    fields: dict[str, object] = {
        "Subject": style.subject(call, name)[:255],
        "Description": style.note_text(call, name),
        "TaskSubtype": "Call",
        "Status": "Completed",
        "Priority": "Normal",
        "ActivityDate": content.local_date(call.start_time, style.tz),
        "CallType": _CALL_TYPES[call.direction],
        "CallDurationInSeconds": content.talk_seconds(call),
        "CallDisposition": _DISPOSITIONS[content.outcome(call)],
        "CallObject": call.telephony_session_id,
        key_field: call.key,
    }
    if contact is not None:
        fields["WhoId"] = contact.id
    if owner_id:
        fields["OwnerId"] = owner_id
    return fields


def dedupe_query(calls: Sequence[CompletedCall], key_field: str, clients: bool = True) -> str:
    """One SOQL query for our own Tasks and (``clients``) client-made call Tasks of these calls."""
    keys = ", ".join(soql_quote(c.key) for c in calls)
    ours = (
        f"SELECT Id, CallObject, Description, {key_field} FROM Task WHERE {key_field} IN ({keys})"
    )
    if not clients:
        return ours
    sessions = sorted({s for c in calls for s in (c.telephony_session_id, c.session_id) if s})
    low = min(c.start_time for c in calls) - WINDOW_BEFORE
    high = max(c.end_time for c in calls) + WINDOW_AFTER
    return (
        f"{ours} OR CallObject IN ({', '.join(soql_quote(s) for s in sessions)})"
        f" OR (TaskSubtype = 'Call' AND {key_field} = null"
        f" AND CreatedDate >= {soql_datetime(low)} AND CreatedDate <= {soql_datetime(high)})"
    )


def dedupe_queries(
    calls: Sequence[CompletedCall], key_field: str, clients: bool = True
) -> list[str]:
    """:func:`dedupe_query` split so that each fits in a GET URL (Salesforce: 16 KiB)."""
    queries: list[str] = []
    group: list[CompletedCall] = []
    for call in calls:
        query = dedupe_query([*group, call], key_field, clients)
        if group and len(quote(query)) > QUERY_URL_BUDGET:
            queries.append(dedupe_query(group, key_field, clients))
            group = []
        group.append(call)
    if group:
        queries.append(dedupe_query(group, key_field, clients))
    return queries


def contact_search(e164: str) -> str:
    """SOSL over phone fields; digits only (SOSL reserves ``+``), national and international."""
    terms = [e164.lstrip("+")]
    national = content.national_digits(e164)
    if national and national not in terms:
        terms.append(national)
    returning = "Contact(Id, Name, OwnerId, CreatedDate, LastModifiedDate)"
    return f"FIND {{{' OR '.join(terms)}}} IN PHONE FIELDS RETURNING {returning}"


def existing_for(
    call: CompletedCall, records: Sequence[Mapping[str, object]], key_field: str
) -> str | None:
    """The id of a Task that already logs this call: ours by key, else a client's."""
    sessions = {call.telephony_session_id, call.session_id} - {None}
    texts: list[tuple[str, str | None]] = []
    for record in records:
        rid = str(record.get("Id", ""))
        key = record.get(key_field)
        if key == call.key:
            return rid
        if key:
            continue
        if record.get("CallObject") in sessions:
            return rid
        description = record.get("Description")
        texts.append((rid, description if isinstance(description, str) else None))
    found = content.first_match(call, texts)
    return found[0] if found else None


def _description(payload: Mapping[str, object]) -> str | None:
    """The note a Task payload carries (what later updates compare with)."""
    description = payload.get("Description")
    return description if isinstance(description, str) else None


def _has_key(
    records: Sequence[Mapping[str, object]], rid: str, key_field: str, call: CompletedCall
) -> bool:
    """Whether the Task ``rid`` among ``records`` carries this call's key (is ours)."""
    return any(r.get("Id") == rid and r.get(key_field) == call.key for r in records)


def duplicate_id(errors: object) -> str | None:
    """The existing record's id from a ``DUPLICATE_VALUE`` error list, if it names one."""
    for err in errors if isinstance(errors, list) else []:
        if not isinstance(err, dict):
            continue
        code = err.get("errorCode") or err.get("statusCode")
        if code == "DUPLICATE_VALUE":
            match = _DUPLICATE_ID.search(str(err.get("message", "")))
            return match.group(1) if match else ""
    return None


def save_errors(errors: object) -> str:
    """``CODE: message`` of each error in a SaveResult's ``errors`` list."""
    parts = [
        f"{err.get('statusCode') or err.get('errorCode')}: {err.get('message', '')}"
        for err in (errors if isinstance(errors, list) else [])
        if isinstance(err, dict)
    ]
    return "; ".join(parts) or "rejected"


def error_codes(body: object) -> set[str]:
    """The ``errorCode`` of each entry of a REST error answer (a JSON list)."""
    return {
        str(err["errorCode"])
        for err in (body if isinstance(body, list) else [])
        if isinstance(err, dict) and err.get("errorCode")
    }


def limit_delay(headers: Mapping[str, str]) -> float:
    """How long to hold back after ``REQUEST_LIMIT_EXCEEDED``, from ``Sforce-Limit-Info``.

    ``api-usage=<used>/<max>`` at or over the maximum: the rolling 24 h allowance is spent
    and frees up slowly, so an hour. Under it, the limit hit was another one (concurrent
    long-running requests), which clears within a minute."""
    return pause_from_headers(headers) or REQUEST_LIMIT_DELAY


def request_limit(answer: Response, message: str) -> RetryLater | None:
    """403 ``REQUEST_LIMIT_EXCEEDED`` is Salesforce's "slow down", not "forbidden" (pure)."""
    if answer.status != 403 or "REQUEST_LIMIT_EXCEEDED" not in error_codes(answer.body):
        return None
    return RetryLater(
        f"{CRM} API limit reached (REQUEST_LIMIT_EXCEEDED): {message}", limit_delay(answer.headers)
    )


def _records(response: Response, name: str = "records") -> list[Mapping[str, object]]:
    raw = response.object().get(name)
    return [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []


# -- the writer ------------------------------------------------------------------------------


class SalesforceWriter(ChunkedWriterBase):
    """Writes call Tasks to one Salesforce org with an OAuth connected-app user."""

    chunk_size = BATCH_MAX

    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        opts = settings.options
        if not isinstance(opts, SalesforceOptions):
            raise TypeError(
                f'writer {settings.name!r}: SalesforceWriter needs a writer with type = "salesforce"'
            )
        self._opts = opts
        self.key_field = opts.external_id_field
        self._style = Style.of(settings.contacts)
        # Contact id -> its opportunities, kept as long as contact lookups.
        self._opportunities: TTLCache[str, tuple[Deal, ...]] = TTLCache(
            maxsize=max(settings.contacts.cache_size, 1), ttl=settings.contacts.cache_ttl
        )
        self.recordings = settings.contacts.recordings
        self.oauth = OAuthClient(
            session,
            f"{opts.login_url.rstrip('/')}/services/oauth2/token",
            opts.oauth,
            timeout=settings.timeout,
        )
        super().__init__(
            CRM,
            settings,
            session,
            OAuthBearer(self.oauth),
            classify_first=request_limit,
            find=self._find_contacts,
            create=self._create_contact,
            list_users=self._list_users,
        )

    def __repr__(self) -> str:
        return (
            f"SalesforceWriter(name={self._settings.name!r}, instance={self._opts.instance_url!r})"
        )

    @property
    def api(self) -> str:
        instance = self.oauth.extras.get("instance_url") or self._opts.instance_url
        return f"{instance.rstrip('/')}/services/data/{self._opts.api_version}"

    # -- steps -------------------------------------------------------------------------------

    async def _write_chunk(self, chunk: list[Pending]) -> None:
        session = await ensure_token(CRM, self.oauth)
        if session is not None:
            batch.fail_open(chunk, session)
            return
        # Without client-log detection only calls an earlier attempt may have stored are looked
        # for (by key); the unique key field refuses any other repeat.
        detect = self._settings.contacts.detect_client_logs
        checked = [p.call for p in chunk if detect or p.ctx.uncertain or p.ctx.attempt > 1]
        existing: list[Mapping[str, object]] = []
        for soql in dedupe_queries(checked, self.key_field, clients=detect) if checked else []:
            found = await self._query(soql)
            if not isinstance(found, list):
                batch.fail_open(chunk, found)
                return
            existing.extend(found)
        for p in chunk:
            rid = existing_for(p.call, existing, self.key_field)
            if rid:
                p.result = AlreadyExisted(rid, ours=_has_key(existing, rid, self.key_field, p.call))
        ready = await batch.prepare(
            chunk,
            self.resolver,
            lambda call, resolved: task_fields(
                call, self.key_field, resolved.primary, resolved.owner_id, self._style
            ),
        )
        if self._settings.contacts.deals is not DealsPolicy.NONE:
            for p in ready:
                contact = p.payload.get("WhoId")
                deal = await self._opportunity(str(contact)) if contact else None
                if isinstance(deal, Deal):
                    p.payload["WhatId"] = deal.id
                elif deal is not None:
                    p.result = deal
            ready = batch.still_open(ready)
        await batch.send(ready, self._create_one, self._create_many)

    async def _opportunity(self, contact: str) -> Deal | LookupFailure | None:
        """The contact's open opportunity the ``deals`` policy picks (its roles, then the
        opportunities; cached per contact like contact lookups)."""
        cached = self._opportunities.get(contact)
        if cached is None:
            roles = await self._query(
                "SELECT OpportunityId FROM OpportunityContactRole WHERE ContactId = "
                + soql_quote(contact)
            )
            if not isinstance(roles, list):
                return roles
            ids = sorted({str(r["OpportunityId"]) for r in roles if r.get("OpportunityId")})
            cached = ()
            if ids:
                found = await self._query(
                    "SELECT Id, IsClosed, LastModifiedDate FROM Opportunity WHERE Id IN ("
                    + ", ".join(soql_quote(i) for i in ids)
                    + ")"
                )
                if not isinstance(found, list):
                    return found
                cached = tuple(
                    Deal(
                        str(o["Id"]),
                        o.get("IsClosed") is not True,
                        parse_time(o.get("LastModifiedDate")),
                    )
                    for o in found
                    if o.get("Id")
                )
            self._opportunities[contact] = cached
        return deals.choose(cached, self._settings.contacts.deals)

    async def _create_one(self, p: Pending) -> None:
        answer = await self._send(
            "POST", "/sobjects/Task", json_body=p.payload, accept=frozenset({400})
        )
        if not isinstance(answer, Response):
            p.result = answer
        elif answer.status == 400:
            p.result = await self._refused(p, answer.body, f"HTTP 400: {self.http.reason(answer)}")
        else:
            p.result = batch.created(CRM, answer.object().get("id"), _description(p.payload))

    async def _create_many(self, ready: list[Pending]) -> None:
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": "Task"}, **p.payload} for p in ready],
        }
        answer = await self._send("POST", "/composite/sobjects", json_body=body)
        if not isinstance(answer, Response):
            batch.fail_open(ready, answer)
            return
        saved = answer.body if isinstance(answer.body, list) else []
        for index, p in enumerate(ready):
            result = saved[index] if index < len(saved) else None
            if not isinstance(result, dict):
                p.result = RetryLater(f"{CRM}: composite answer lacks record {index}")
            elif result.get("success") and result.get("id"):
                p.result = Created(str(result["id"]), _description(p.payload))
            else:
                errors = result.get("errors")
                p.result = await self._refused(p, errors, save_errors(errors))

    async def _refused(self, p: Pending, errors: object, reason: str) -> WriteResult:
        """A refused create: our key already taken means the call is logged, else permanent."""
        duplicate = duplicate_id(errors)
        if duplicate:
            return AlreadyExisted(duplicate, ours=True)  # our unique key refused the create
        if duplicate == "":
            found = await self._query(dedupe_query([p.call], self.key_field, clients=False))
            if not isinstance(found, list):
                return found
            rid = existing_for(p.call, found, self.key_field)
            if rid:
                return AlreadyExisted(rid, ours=True)  # the query asked for our key only
        return PermanentFailure(f"{CRM} rejected the call log ({reason})")

    # -- updates after the create (crm/enrich.py) --------------------------------------------

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        """Files linked to the Task (ContentVersion with FirstPublishLocationId); the section
        appended to the Description if nobody edited it, else a note linked to the Task."""
        session = await ensure_token(CRM, self.oauth)
        if session is not None:
            return session
        task_path = f"/sobjects/Task/{quote(e.record_id, safe='')}"
        task = await self._send(
            "GET", task_path, params={"fields": "Description"}, accept=frozenset({404})
        )
        if not isinstance(task, Response):
            return task
        if task.status == 404:
            return PermanentFailure(f"{CRM} Task {e.record_id} no longer exists")
        description = task.object().get("Description")
        current = description if isinstance(description, str) else None
        for audio in e.audio:
            failure = await self._attach(e.record_id, audio, ctx)
            if failure is not None:
                return failure
        section = enrich.section_text(e)
        if section and enrich.added(current, section):
            return Updated(f"{e.kind} added to the Task", current)
        if section and enrich.same_note(current, e.written):
            written = f"{current}\n{section}"[:DESCRIPTION_MAX]
            patched = await self._send("PATCH", task_path, json_body={"Description": written})
            if not isinstance(patched, Response):
                return patched
            return Updated(f"{e.kind} added to the Task", written)
        if section:
            failure = await self._note_beside(e, ctx)
            if failure is not None:
                return failure
            return Updated(f"{e.kind} added beside the edited Task description", None)
        return Updated(f"{e.kind} attached to the Task", e.written)

    async def _attach(self, task_id: str, audio: Audio, ctx: WriteContext) -> LookupFailure | None:
        """Upload ``audio`` as a file of the Task, unless an earlier attempt did."""
        if ctx.uncertain or ctx.attempt > 1:
            found = await self._query(
                "SELECT Id FROM ContentVersion WHERE FirstPublishLocationId = "
                f"{soql_quote(task_id)} AND PathOnClient = {soql_quote(audio.filename)}"
            )
            if not isinstance(found, list):
                return found
            if found:
                return None
        entity = json.dumps(
            {
                "Title": audio.filename.rsplit(".", 1)[0],
                "PathOnClient": audio.filename,
                "FirstPublishLocationId": task_id,
            }
        )

        def form() -> aiohttp.FormData:
            audio.file.seek(0)
            data = aiohttp.FormData()
            data.add_field("entity_content", entity, content_type="application/json")
            data.add_field(
                "VersionData", audio.file, filename=audio.filename, content_type=audio.content_type
            )
            return data

        answer = await self.http.request("POST", f"{self.api}/sobjects/ContentVersion", data=form)
        return answer if not isinstance(answer, Response) else None

    async def _note_beside(self, e: Enrichment, ctx: WriteContext) -> LookupFailure | None:
        """A ContentNote with the section, shared with the Task; its title names the update,
        so a retry finds it among the Task's documents."""
        title = f"{e.kind.value.capitalize()} of the call {e.call.key}"[:255]
        if ctx.uncertain or ctx.attempt > 1:
            links = await self._query(
                "SELECT ContentDocumentId FROM ContentDocumentLink WHERE LinkedEntityId = "
                + soql_quote(e.record_id)
            )
            if not isinstance(links, list):
                return links
            ids = [str(r["ContentDocumentId"]) for r in links if r.get("ContentDocumentId")]
            if ids:
                notes = await self._query(
                    "SELECT Id FROM ContentNote WHERE Title = "
                    + soql_quote(title)
                    + " AND Id IN ("
                    + ", ".join(soql_quote(i) for i in ids)
                    + ")"
                )
                if not isinstance(notes, list):
                    return notes
                if notes:
                    return None
        body = base64.b64encode(enrich.section_html(e).encode()).decode()
        note = await self._send(
            "POST", "/sobjects/ContentNote", json_body={"Title": title, "Content": body}
        )
        if not isinstance(note, Response):
            return note
        note_id = note.object().get("id")
        if not note_id:
            return RetryLater(f"{CRM} note create answered without an id", uncertain=True)
        link = await self._send(
            "POST",
            "/sobjects/ContentDocumentLink",
            json_body={
                "ContentDocumentId": note_id,
                "LinkedEntityId": e.record_id,
                "ShareType": "V",
            },
        )
        return link if not isinstance(link, Response) else None

    # -- requests ----------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        accept: frozenset[int] = frozenset(),
    ) -> Response | LookupFailure:
        """One REST request under the instance's API root."""
        return await self.http.request(
            method, f"{self.api}{path}", params=params, json_body=json_body, accept=accept
        )

    async def _query(self, soql: str) -> list[Mapping[str, object]] | LookupFailure:
        records: list[Mapping[str, object]] = []
        answer = await self._send("GET", "/query", params={"q": soql})
        for _ in range(QUERY_PAGES):
            if not isinstance(answer, Response):
                return answer
            records.extend(_records(answer))
            next_url = answer.object().get("nextRecordsUrl")
            if answer.object().get("done", True) or not isinstance(next_url, str):
                break
            # nextRecordsUrl is absolute from the host: /services/data/vXX.X/query/01g...-2000
            answer = await self._send("GET", next_url.split(f"/{self._opts.api_version}", 1)[-1])
        return records

    async def _find_contacts(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        answer = await self._send("GET", "/search", params={"q": contact_search(number)})
        if not isinstance(answer, Response):
            return answer
        return tuple(
            Contact(
                id=str(r["Id"]),
                name=str(r["Name"]) if r.get("Name") else None,
                owner_id=str(r["OwnerId"]) if r.get("OwnerId") else None,
                created=parse_time(r.get("CreatedDate")),
                updated=parse_time(r.get("LastModifiedDate")),
            )
            for r in _records(answer, "searchRecords")
            if r.get("Id")
        )

    async def _create_contact(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        # LastName is the one field a Contact requires.
        name = call.external_name or number
        answer = await self._send(
            "POST", "/sobjects/Contact", json_body={"LastName": name, "Phone": number}
        )
        if not isinstance(answer, Response):
            return answer
        return Contact(id=str(answer.object().get("id", "")), name=name)

    async def _list_users(self) -> dict[str, str] | LookupFailure:
        users = await self._query("SELECT Id, Email FROM User WHERE IsActive = true")
        if not isinstance(users, list):
            return users
        return {
            str(u["Email"]).lower(): str(u["Id"])
            for u in users
            if isinstance(u.get("Email"), str) and u.get("Id")
        }
