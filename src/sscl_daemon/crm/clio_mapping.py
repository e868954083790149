"""Clio phone communications as API v4 takes them (``crm/clio.py`` -> here): the pure mapping of
a ``CompletedCall`` to a communication, what App Connect's Clio connector writes by default
(recognised as the call's log), and reading Clio's ``{"data": ...}`` answers.
``crm/clio.py`` says what is written and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from zoneinfo import ZoneInfo

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.config import RecordingsMode
from sscl_daemon.crm import content
from sscl_daemon.crm.contacts import Contact, parse_time
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.plugin_parts import near_start

SUBJECT_MAX: Final = 255


def communication(
    call: CompletedCall,
    contact: Contact | None,
    user_id: int,
    matter_id: int | None,
    tz: ZoneInfo | None = None,
    recordings: RecordingsMode | None = None,
) -> dict[str, object]:
    """The ``data`` of a ``POST /communications.json`` (pure); the note's times in ``tz``,
    its recording lines as ``recordings`` says."""
    name = contact.name if contact else None
    user = [{"id": user_id, "type": "User"}]
    other = [{"id": int(contact.id), "type": "Contact"}] if contact else []
    outbound = call.direction is Direction.OUTBOUND
    data: dict[str, object] = {
        "type": "PhoneCommunication",
        "subject": content.subject(call, name)[:SUBJECT_MAX],
        "body": content.note_text(call, name, tz=tz, recordings=recordings),
        "received_at": content.iso_utc(call.start_time),
        "senders": user if outbound else other,
        "receivers": other if outbound else user,
    }
    if matter_id is not None:
        data["matter"] = {"id": matter_id}
    return data


def app_connect_communication(
    call: CompletedCall, record: Mapping[str, object], of_contact: bool
) -> bool:
    """Whether a phone communication (of the call's contact when ``of_contact``) is App
    Connect's log of this call as its Clio connector writes it by default (pure): subject
    ``[Call] Inbound Call from <name> [<number>]`` / ``[Call] Outbound Call to ...`` and
    ``received_at`` the call's start. Without a contact to list by, the subject's number
    must be the call's."""
    subject = record.get("subject")
    if call.direction is Direction.INTERNAL or not isinstance(subject, str):
        return False
    word = "to" if call.direction is Direction.OUTBOUND else "from"
    if not subject.startswith(f"[Call] {call.direction.value.capitalize()} Call {word} "):
        return False
    if not near_start(call, parse_time(record.get("received_at"))):
        return False
    if of_contact:
        return True
    number = subject.rsplit("[", 1)[-1].rstrip("]") if subject.endswith("]") else ""
    return bool(call.external_number) and content.same_number(number, call.external_number or "")


def data_of(answer: Response) -> object:
    return answer.object().get("data")


def int_of(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
