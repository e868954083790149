"""The vocabulary of a telephony notification: status codes, reasons, origin types.

Where it sits: the words the whole call core speaks. :mod:`~sscl_daemon.calls.wire`
decodes them as text (what RingCentral sends is kept as sent), and the tracker, the
session state and the leg rules read them as these enum members. The parsers map every
spelling to a member: exact spellings first (one dict lookup), then case-insensitively
(voicemail is ``VoiceMail`` in the API spec and ``Voicemail``/``VMScreening`` in the
guide), anything else to ``UNKNOWN`` (the caller keeps the raw text). Sources: the API
spec's ``CallStatusInfo`` and the research notes ``rc-protocol.md`` B2-B5.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar


class StatusCode(enum.StrEnum):
    """Party status codes (API spec ``CallStatusInfo.code`` plus the guide's spellings)."""

    SETUP = "Setup"
    PROCEEDING = "Proceeding"
    ANSWERED = "Answered"
    DISCONNECTED = "Disconnected"
    GONE = "Gone"
    PARKED = "Parked"
    HOLD = "Hold"
    VOICEMAIL = "VoiceMail"
    VOICEMAIL_SCREENING = "VoiceMailScreening"
    FAX_RECEIVE = "FaxReceive"
    TDS = "Tds"
    UNKNOWN = "Unknown"


class Reason(enum.StrEnum):
    """Status reasons from the API spec plus the ones observed outside it."""

    PICKUP = "Pickup"
    SUPERVISING = "Supervising"
    TAKE_OVER = "TakeOver"
    TIMEOUT = "Timeout"
    BLIND_TRANSFER = "BlindTransfer"
    RCC_TRANSFER = "RccTransfer"
    ATTENDED_TRANSFER = "AttendedTransfer"
    CALLER_INPUT_REDIRECT = "CallerInputRedirect"
    CALL_FLIP = "CallFlip"
    PARK_LOCATION = "ParkLocation"
    DTMF_TRANSFER = "DtmfTransfer"
    AGENT_ANSWERED = "AgentAnswered"
    AGENT_DROPPED = "AgentDropped"
    REJECTED = "Rejected"
    CANCELLED = "Cancelled"
    INTERNAL_ERROR = "InternalError"
    NO_ANSWER = "NoAnswer"
    TARGET_BUSY = "TargetBusy"
    INVALID_NUMBER = "InvalidNumber"
    INTERNATIONAL_DISABLED = "InternationalDisabled"
    DESTINATION_BLOCKED = "DestinationBlocked"
    NOT_ENOUGH_FUNDS = "NotEnoughFunds"
    NO_SUCH_USER = "NoSuchUser"
    CALL_PARK = "CallPark"
    CALL_REDIRECTED = "CallRedirected"
    CALL_REPLIED = "CallReplied"
    CALL_SWITCH = "CallSwitch"
    CALL_FINISHED = "CallFinished"
    CALL_DROPPED = "CallDropped"
    VOICEMAIL = "Voicemail"
    # Observed on Gone, not in the spec enum (community question 118078).
    CONFERENCE = "Conference"
    UNDEFINED = "Undefined"
    # No reason given (2020-style payloads, plain hang-ups).
    NONE = ""
    UNKNOWN = "Unknown"


class OriginType(enum.StrEnum):
    CALL = "Call"
    RING_OUT = "RingOut"
    RING_ME = "RingMe"
    CONFERENCE = "Conference"
    GREETINGS_RECORDING = "GreetingsRecording"
    VERIFICATION_CALL = "VerificationCall"
    ZOOM = "Zoom"
    CALL_OUT = "CallOut"
    TEST_CALL = "TestCall"
    UNKNOWN = "Unknown"


# The two groups of codes the call rules read (the tracker to know when a session can
# end, the leg derivation to find a party's end and its mailbox). Tuples, not sets:
# membership then compares by identity in C, while hashing an enum member runs Python code.
# A party that reached one of these is done.
ENDED = (StatusCode.DISCONNECTED, StatusCode.GONE)
# A party in a mailbox (spelled both ways, see parse_status).
IN_VOICEMAIL = (StatusCode.VOICEMAIL, StatusCode.VOICEMAIL_SCREENING)

E = TypeVar("E", bound=enum.StrEnum)


def _folded(enum_type: type[E]) -> dict[str, E]:
    return {member.value.lower(): member for member in enum_type}


# What each parser looks in: exact spellings, then lower-cased ones.
_STATUS: dict[str, StatusCode] = {m.value: m for m in StatusCode}
_STATUS_FOLDED: dict[str, StatusCode] = {
    **_folded(StatusCode),
    "voicemail": StatusCode.VOICEMAIL,
    "vmscreening": StatusCode.VOICEMAIL_SCREENING,
    "voicemailscreening": StatusCode.VOICEMAIL_SCREENING,
}
_REASON: dict[str, Reason] = {m.value: m for m in Reason}
_REASON_FOLDED: dict[str, Reason] = _folded(Reason)
_ORIGIN_FOLDED: dict[str, OriginType] = _folded(OriginType)


def _lookup(text: str, exact: Mapping[str, E], folded: Mapping[str, E], unknown: E) -> E:
    found = exact.get(text)
    return found if found is not None else folded.get(text.lower(), unknown)


def parse_status(code: str | None) -> StatusCode:
    if not code:
        return StatusCode.UNKNOWN
    return _lookup(code, _STATUS, _STATUS_FOLDED, StatusCode.UNKNOWN)


def parse_reason(reason: str | None) -> Reason:
    if not reason:
        return Reason.NONE
    return _lookup(reason, _REASON, _REASON_FOLDED, Reason.UNKNOWN)


def parse_origin(kind: str | None) -> OriginType:
    if not kind:
        return OriginType.UNKNOWN
    return _ORIGIN_FOLDED.get(kind.lower(), OriginType.UNKNOWN)
