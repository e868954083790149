"""Dynamics 365 phone calls as the Web API takes them (``crm/dynamics.py`` -> here): the pure
mapping of a ``CompletedCall`` to a phone call's columns, its activity id derived from our key,
the fingerprint of another client's log, and a ``$batch`` change set's answer read back as the
call's result. ``crm/dynamics.py`` says what is written and why.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Final
from zoneinfo import ZoneInfo

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.config import RecordingsMode
from sscl_daemon.crm import content
from sscl_daemon.crm.base import AlreadyExisted, Created, PermanentFailure, RetryLater, WriteResult
from sscl_daemon.crm.batch import Pending
from sscl_daemon.crm.contacts import Contact, parse_time
from sscl_daemon.crm.dataverse import PartAnswer, odata_string, odata_time
from sscl_daemon.crm.plugin_parts import near_start, reached_voicemail, talk_seconds, text_field
from sscl_daemon.crm.wiring import nested_error_message

CRM: Final = "Dynamics 365"
DESCRIPTION_MAX: Final = 2000
SUBJECT_MAX: Final = 200
# Namespace of the activity ids derived from our keys (fixed: changing it would log calls
# again under new ids).
KEY_NAMESPACE: Final = uuid.UUID("7b0f4a52-4f0e-5c1d-9a57-2d1c8f3e6a10")
STATE_COMPLETED: Final = 1
STATUS_MADE: Final = 2
STATUS_RECEIVED: Final = 4


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
        # If-None-Match refused the create: the activity id made of our key exists.
        return AlreadyExisted(activity_id(call.key), ours=True)
    message = nested_error_message(failed.body, str(failed.body or ""))
    if failed.status == 429 or failed.status >= 500:
        return RetryLater(f"{CRM} unavailable (HTTP {failed.status}): {message}")
    return PermanentFailure(f"{CRM} rejected the phone call (HTTP {failed.status}): {message}")
