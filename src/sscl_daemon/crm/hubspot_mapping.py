"""HubSpot's request bodies and answers, as pure functions (``crm/hubspot.py`` -> here).

What the HubSpot writer sends -- a call engagement's ``properties`` and ``associations``,
the contact, client-log and key searches -- and how it reads HubSpot's answers (records,
pages, the error shape of a key conflict). No I/O: ``crm/hubspot_api.py`` and the writer
send these; the module docstring of ``crm/hubspot.py`` describes the requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.crm import content
from sscl_daemon.crm.contacts import Contact, parse_time
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.templates import Style

CRM: Final = "HubSpot"
KEY_PROPERTY: Final = "sscl_call_key"
DEFAULT_STYLE: Final = Style()
CALL_TO_CONTACT: Final = 194  # HUBSPOT_DEFINED association type id, call -> contact
CALL_TO_DEAL: Final = 206  # call -> deal
SEARCH_PAGE: Final = 200
CLIENT_WINDOW: Final = timedelta(hours=1)

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


def association(record_id: str, type_id: int) -> dict[str, object]:
    """One HUBSPOT_DEFINED association of a call with a record (``type_id``: its type)."""
    return {
        "to": {"id": record_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    }


def associations(contacts: Sequence[Contact]) -> list[dict[str, object]]:
    return [association(c.id, CALL_TO_CONTACT) for c in contacts]


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
        props = props_of(record)
        if props.get(key_property):
            continue
        if props.get("hs_call_external_id") in sessions:
            return rid
        texts.append((rid, props.get("hs_call_body")))
    found = content.first_match(call, texts)
    return found[0] if found else None


def contact_from(record: Mapping[str, object]) -> Contact:
    props = props_of(record)
    name = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p) or None
    return Contact(
        id=str(record.get("id", "")),
        name=name,
        owner_id=props.get("hubspot_owner_id") or None,
        created=parse_time(props.get("createdate") or record.get("createdAt")),
        updated=parse_time(props.get("lastmodifieddate") or record.get("updatedAt")),
    )


def props_of(record: Mapping[str, object]) -> dict[str, str]:
    """A record's string ``properties`` (HubSpot sends every value as a string or null)."""
    raw = record.get("properties")
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, str)}


def results_of(response: Response) -> list[Mapping[str, object]]:
    """The records of a search, batch or list answer."""
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


def body_of(payload: Mapping[str, object]) -> str | None:
    """The note a create input carries (what later updates compare with)."""
    props = payload.get("properties")
    body = props.get("hs_call_body") if isinstance(props, dict) else None
    return body if isinstance(body, str) else None


def next_after(answer: Response) -> str | None:
    """The cursor of the next page of a search or list answer, None on the last page."""
    paging = answer.object().get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return str(after) if after else None
