"""Pipedrive call logs as pure data (the Pipedrive writer's mapping, crm/pipedrive.py):
the ``POST /v1/callLogs`` body of a call, its outcome and times, and what App Connect writes
for a call with its default settings (so the writer recognises that log)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.crm import content
from sscl_daemon.crm.contacts import Contact
from sscl_daemon.crm.templates import Style

DEFAULT_STYLE: Final = Style()
# App Connect's due time is the call-log record's start in whole minutes.
APP_CONNECT_SLACK: Final = timedelta(minutes=1)

_OUTCOMES: Final = {
    content.CallOutcome.ANSWERED: "connected",
    content.CallOutcome.TRANSFERRED: "connected",
    content.CallOutcome.NO_ANSWER: "no_answer",
    content.CallOutcome.REJECTED: "no_answer",
    content.CallOutcome.ABANDONED: "no_answer",
    # The caller reached the user's voicemail: a missed call for the user ("left_voicemail"
    # is the rep's outcome of an outbound call); the note says a voicemail was left.
    content.CallOutcome.VOICEMAIL: "no_answer",
    content.CallOutcome.BUSY: "busy",
}


def pipedrive_outcome(call: CompletedCall) -> str:
    neutral = content.outcome(call)
    if neutral is content.CallOutcome.INCOMPLETE:
        return "connected" if content.was_connected(call) else "no_answer"
    return _OUTCOMES[neutral]


def pipedrive_time(moment: datetime) -> str:
    return content.utc(moment).strftime("%Y-%m-%d %H:%M:%S")


def int_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def call_log_body(
    call: CompletedCall,
    person: Contact | None,
    owner_id: int | None,
    style: Style = DEFAULT_STYLE,
) -> dict[str, object]:
    """The ``POST /v1/callLogs`` body (pure)."""
    # The user's side: the number the call reached (inbound) or was placed from, else the
    # extension; an internal call's other side is the other extension.
    ours = call.own_number or call.extension_number or ""
    theirs = call.external_number or call.internal_number or ""
    inbound = call.direction is Direction.INBOUND
    from_number, to_number = (theirs, ours) if inbound else (ours, theirs)
    name = person.name if person else None
    body: dict[str, object] = {
        "subject": style.subject(call, name),
        "duration": str(content.talk_seconds(call)),
        "outcome": pipedrive_outcome(call),
        "to_phone_number": to_number or "unknown",
        "start_time": pipedrive_time(call.start_time),
        "end_time": pipedrive_time(call.end_time),
        "note": style.note_html(call, name),
    }
    if from_number:
        body["from_phone_number"] = from_number
    if owner_id is not None:
        body["user_id"] = owner_id
    if person is not None:
        person_id = int_id(person.id)
        if person_id is not None:
            body["person_id"] = person_id
        org_id = int_id(person.org_id)
        if org_id is not None:
            body["org_id"] = org_id
    return body


def app_connect_activity(call: CompletedCall, activity: Mapping[str, object]) -> bool:
    """Whether a Pipedrive activity (of the call's person) is App Connect's log of this call
    as its connector writes it with default settings (see the module docstring; pure)."""
    kind, subject = activity.get("type"), activity.get("subject")
    if not (activity.get("done") is True and isinstance(kind, str) and "call" in kind.lower()):
        return False
    if call.direction is Direction.INTERNAL or not isinstance(subject, str):
        return False
    word = "to" if call.direction is Direction.OUTBOUND else "from"
    if not subject.startswith(f"{call.direction.value.capitalize()} Call {word} "):
        return False
    due = f"{activity.get('due_date')}T{activity.get('due_time')}"
    try:
        when = datetime.fromisoformat(due).replace(tzinfo=UTC)
    except ValueError:
        return False
    start = content.utc(call.start_time).replace(second=0, microsecond=0)
    return abs(when - start) <= APP_CONNECT_SLACK
