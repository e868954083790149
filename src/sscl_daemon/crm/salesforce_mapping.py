"""Salesforce's Task fields, SOQL/SOSL and answers, as pure functions (``crm/salesforce.py``
-> here).

What the Salesforce writer sends -- a call's Task fields, the dedupe query (split to fit a
GET URL), the contact search -- and how it reads Salesforce's answers (records, save
errors, ``DUPLICATE_VALUE``, ``REQUEST_LIMIT_EXCEEDED``). No I/O: ``crm/salesforce_api.py``
and the writer send these; the module docstring of ``crm/salesforce.py`` describes the
requests and the Task fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import quote

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.crm import content
from sscl_daemon.crm.base import RetryLater
from sscl_daemon.crm.contacts import Contact
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.limiter import pause_from_headers
from sscl_daemon.crm.templates import Style

CRM: Final = "Salesforce"
DEFAULT_STYLE: Final = Style()
# Room for the encoded SOQL in a GET URL, under Salesforce's 16,384-byte URI limit.
QUERY_URL_BUDGET: Final = 12_000
REQUEST_LIMIT_DELAY: Final = 60.0
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
        "ActivityDate": content.local_date(call.start_time, style.zone(call)),
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


def description_of(payload: Mapping[str, object]) -> str | None:
    """The note a Task payload carries (what later updates compare with)."""
    description = payload.get("Description")
    return description if isinstance(description, str) else None


def has_key(
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


def records_of(response: Response, name: str = "records") -> list[Mapping[str, object]]:
    """The records of a query (``records``) or search (``searchRecords``) answer."""
    raw = response.object().get(name)
    return [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []
