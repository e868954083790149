"""Typed telephony-session notifications, decoded straight from the raw WebSocket bytes.

First step of the call core: ``ringcentral/`` hands over the raw text of a
``ServerNotification`` frame (or a stored/replayed notification) and
:func:`decode_event` turns it into a :class:`Notification` the tracker
applies. Accepted shapes:

* the WebSocket frame ``[header, envelope]`` (``header.type`` must be
  ``ServerNotification`` when present),
* the bare envelope ``{"uuid", "event", "timestamp", "subscriptionId",
  "ownerId", "body"}`` (identical to webhook payloads),
* a bare ``body`` (``{"telephonySessionId", "sequence", "parties", ...}``),
  as some capture tools store it.

Tolerance follows what RingCentral documents and what real captures show
(sources: developer guide "Telephony Session Notifications" and the
account-telephony-sessions event filter reference,
https://developers.ringcentral.com/guide/voice/telephony-session-notifications,
https://developers.ringcentral.com/guide/notifications/event-filters/account-telephony-sessions;
research notes ``rc-protocol.md`` B2-B5): unknown fields are ignored;
status codes, reasons and origin types outside the known lists map to an
``UNKNOWN`` member while the raw string is kept; voicemail is spelled
``VoiceMail`` in the API spec and ``Voicemail``/``VMScreening`` in the guide,
so codes are matched case-insensitively; numeric ids (old payloads, the
call-log API) are normalised to strings. Anything that cannot be decoded
raises :class:`EventDecodeError` carrying the raw payload, so the daemon can
dead-letter it: that is the only exception a decoder raises, whatever the
input (JSON nested deeper than the interpreter's recursion limit included).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec

from sscl_daemon.errors import SsclError


class EventDecodeError(SsclError, ValueError):
    """A notification could not be decoded; ``raw`` is the payload exactly as received."""

    def __init__(self, reason: str, raw: bytes | str) -> None:
        self.reason = reason
        self.raw = raw
        super().__init__(f"cannot decode telephony notification: {reason}")


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


def _folded(enum_type: type[enum.StrEnum]) -> dict[str, enum.StrEnum]:
    return {member.value.lower(): member for member in enum_type}


_STATUS: dict[str, StatusCode] = {m.value: m for m in StatusCode}
_STATUS_FOLDED: dict[str, StatusCode] = {
    **_folded(StatusCode),  # type: ignore[dict-item]
    "voicemail": StatusCode.VOICEMAIL,
    "vmscreening": StatusCode.VOICEMAIL_SCREENING,
    "voicemailscreening": StatusCode.VOICEMAIL_SCREENING,
}
_REASON: dict[str, Reason] = {m.value: m for m in Reason}
_REASON_FOLDED: dict[str, Reason] = _folded(Reason)  # type: ignore[assignment]
_ORIGIN_FOLDED: dict[str, OriginType] = _folded(OriginType)  # type: ignore[assignment]


def parse_status(code: str | None) -> StatusCode:
    if not code:
        return StatusCode.UNKNOWN
    found = _STATUS.get(code)
    if found is None:
        found = _STATUS_FOLDED.get(code.lower(), StatusCode.UNKNOWN)
    return found


def parse_reason(reason: str | None) -> Reason:
    if not reason:
        return Reason.NONE
    found = _REASON.get(reason)
    if found is None:
        found = _REASON_FOLDED.get(reason.lower(), Reason.UNKNOWN)
    return found


def parse_origin(kind: str | None) -> OriginType:
    if not kind:
        return OriginType.UNKNOWN
    return _ORIGIN_FOLDED.get(kind.lower(), OriginType.UNKNOWN)


# ---- bounds at the edge ----
#
# Every field is bounded when it is decoded, so nothing past this module meets an
# unbounded string, list or number (hostile or corrupt input: a 3,000-character id used
# to exceed the outbox's unique-index row size and block every commit). RingCentral's ids
# are short ASCII tokens (a telephony session id "s-a0d7...Z" is ~40 characters, a party
# id ~45, extension and account ids are numeric); the bounds leave room for growth. The
# limits are msgspec constraints, checked by the decoder itself (10-15 % of the decode).

# The per-session sequence: RingCentral numbers a session's events from 2, in the tens or
# hundreds; the tracker keeps a bitset as wide as the highest one it accepts.
MAX_SEQUENCE = (1 << 16) - 1
# The sequence number of a session's first event (2 in every capture, research B5).
FIRST_SEQUENCE = 2
MAX_ID_LENGTH = 128
# Names, numbers, codes, descriptions: anything shown in a CRM, never an index key.
MAX_TEXT_LENGTH = 1024
# One party per notification is what RingCentral sends; a few more are tolerated.
MAX_LIST_LENGTH = 64
# eventTime against the time the notification was received (see check_event_time): a
# recovery replays notifications up to 180 s old and deliveries lag by seconds, so a day
# behind is generous; ahead allows for the two clocks disagreeing (keep the host NTP-synced).
MAX_EVENT_TIME_BEHIND = timedelta(hours=24)
MAX_EVENT_TIME_AHEAD = timedelta(minutes=5)

Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]
# The two ids every notification must carry (a session and its party) cannot be empty.
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LENGTH)]
SequenceNumber = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQUENCE)]


# The wire structs are plain (non-frozen, gc-free) for decode speed: they are
# read once by the tracker and never shared or mutated after decoding.


class PhoneInfo(msgspec.Struct, rename="camel", gc=False):
    """``from`` / ``to`` of a party. RC-to-RC calls carry short extension numbers here."""

    phone_number: Text | None = None
    name: Text | None = None
    extension_id: Id | None = None
    extension_number: Text | None = None
    device_id: Id | None = None


class PeerId(msgspec.Struct, rename="camel", gc=False):
    """Where a ``Gone`` party went (warm transfer, conference, pick-up)."""

    telephony_session_id: Id | None = None
    session_id: Id | None = None
    party_id: Id | None = None


class Status(msgspec.Struct, rename="camel", gc=False):
    code: Text | None = None
    reason: Text | None = None
    description: Text | None = None
    rcc: bool = False
    peer_id: PeerId | None = None

    @property
    def kind(self) -> StatusCode:
        return parse_status(self.code)

    @property
    def why(self) -> Reason:
        return parse_reason(self.reason)


class Recording(msgspec.Struct, gc=False):
    id: Id
    active: bool = False


class Park(msgspec.Struct, gc=False):
    id: Id | None = None


class UiCallValue(msgspec.Struct, gc=False):
    type: Text | None = None
    value: Text | None = None


class UiCallInfo(msgspec.Struct, gc=False):
    """Queue deliveries: ``primary`` is the queue name, ``additional`` the caller id name."""

    primary: UiCallValue | None = None
    additional: UiCallValue | None = None


class Party(msgspec.Struct, rename="camel", gc=False):
    id: Key
    account_id: Id | None = None
    extension_id: Id | None = None
    direction: Text | None = None
    from_: PhoneInfo | None = msgspec.field(default=None, name="from")
    to: PhoneInfo | None = None
    status: Status | None = None
    missed_call: bool = False
    stand_alone: bool = False
    muted: bool = False
    park: Park | None = None
    recordings: Annotated[list[Recording], msgspec.Meta(max_length=MAX_LIST_LENGTH)] | None = None
    queue_call: bool = False
    ui_call_info: UiCallInfo | None = None
    conference_role: Text | None = None
    ring_out_role: Text | None = None
    ring_me_role: Text | None = None

    @property
    def outbound(self) -> bool:
        """True when this party originated its leg (the PSTN caller of an inbound call)."""
        return is_outbound(self.direction)


def is_outbound(direction: str | None) -> bool:
    """``direction`` of a party says it originated its leg (matched case-insensitively)."""
    return direction == "Outbound" or (direction is not None and direction.lower() == "outbound")


class Origin(msgspec.Struct, gc=False):
    type: Text | None = None

    @property
    def kind(self) -> OriginType:
        return parse_origin(self.type)


class SessionBody(msgspec.Struct, rename="camel", gc=False):
    """The notification body; an ``eventTime`` without offset is taken as UTC."""

    telephony_session_id: Key
    sequence: SequenceNumber
    event_time: datetime
    session_id: Id | None = None
    server_id: Id | None = None
    origin: Origin | None = None
    parties: Annotated[list[Party], msgspec.Meta(max_length=MAX_LIST_LENGTH)] = msgspec.field(
        default_factory=list
    )
    # Only 2018-era payloads carry these at body level.
    account_id: Id | None = None
    extension_id: Id | None = None


class Notification(msgspec.Struct, rename="camel", gc=False):
    """The notification envelope (``uuid`` is the dedupe key for re-deliveries)."""

    body: SessionBody
    uuid: Id | None = None
    event: Text | None = None
    timestamp: datetime | None = None
    subscription_id: Id | None = None
    owner_id: Id | None = None


# ---- the tracker's view ----
#
# Two views of one notification are decoded straight from the raw bytes:
#
# * Notification (above) is the full typed model: everything RingCentral sends
#   that the project has a use for (replay, dead letters, introspection, the
#   envelope timestamp, roles, flags). decode_event() returns it.
# * TrackedNotification (below) holds only the fields Tracker.apply() reads, with
#   the same names and types. It is what decode_tracked() returns on the per-event
#   hot path: every field left out is a string, datetime or struct msgspec does not
#   allocate and free again, about a tenth of the decode cost at 150,000 events/s.
#
# decode_tracked() falls back to decode_event() for anything its fast path does not
# take (numeric ids, bare bodies, frames that are not notifications, bad input), so
# both accept the same payloads and raise the same EventDecodeError. The one
# difference is on purpose: a field the tracker never reads is not validated.


class TrackedParty(msgspec.Struct, rename="camel", gc=False):
    """The party fields the tracker folds into its state (see :class:`Party`)."""

    id: Key
    account_id: Id | None = None
    extension_id: Id | None = None
    direction: Text | None = None
    from_: PhoneInfo | None = msgspec.field(default=None, name="from")
    to: PhoneInfo | None = None
    status: Status | None = None
    recordings: Annotated[list[Recording], msgspec.Meta(max_length=MAX_LIST_LENGTH)] | None = None
    queue_call: bool = False
    ui_call_info: UiCallInfo | None = None


class TrackedBody(msgspec.Struct, rename="camel", gc=False):
    """The body fields the tracker reads (see :class:`SessionBody`)."""

    telephony_session_id: Key
    sequence: SequenceNumber
    event_time: datetime
    session_id: Id | None = None
    origin: Origin | None = None
    parties: Annotated[list[TrackedParty], msgspec.Meta(max_length=MAX_LIST_LENGTH)] = (
        msgspec.field(default_factory=list)
    )
    account_id: Id | None = None


class TrackedNotification(msgspec.Struct, rename="camel", gc=False):
    """The envelope fields the tracker reads (see :class:`Notification`)."""

    body: TrackedBody
    uuid: Id | None = None
    event: Text | None = None


class _Bare(msgspec.Struct, gc=False):
    """Just enough of a bare JSON object to tell an envelope from a bare body."""

    body: dict[str, object] | None = None
    uuid: str | None = None


class _WsHeader(msgspec.Struct, gc=False):
    type: str | None = None


_frame_decoder = msgspec.json.Decoder(tuple[_WsHeader, Notification])
_header_decoder = msgspec.json.Decoder(list[_WsHeader | msgspec.Raw])
_envelope_decoder = msgspec.json.Decoder(Notification)
_bare_decoder = msgspec.json.Decoder(_Bare)
_body_decoder = msgspec.json.Decoder(SessionBody)
_tracked_frame_decoder = msgspec.json.Decoder(tuple[_WsHeader, TrackedNotification])
_tracked_envelope_decoder = msgspec.json.Decoder(TrackedNotification)
_WHITESPACE = b" \t\r\n"


def _first_byte(raw: bytes | str) -> int:
    data = raw.encode() if isinstance(raw, str) else raw
    if data[:1] in (b"[", b"{"):
        return data[0]
    stripped = data[:64].lstrip(_WHITESPACE)
    return stripped[0] if stripped else 0


_ID_KEYS = frozenset(
    {"id", "accountId", "extensionId", "sessionId", "ownerId", "deviceId", "partyId"}
)


def _ids_as_text(value: object) -> object:
    """Numbers under id keys turned into strings (old payloads and the call-log API)."""
    if isinstance(value, dict):
        return {
            k: str(v) if k in _ID_KEYS and type(v) is int else _ids_as_text(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_ids_as_text(v) for v in value]
    return value


# msgspec (and _ids_as_text) recurse once per nesting level and raise RecursionError past
# the interpreter's limit: a payload nested that deep is bad input like any other.
_TOO_DEEP = "JSON nested too deeply"
# PostgreSQL's text and jsonb refuse the NUL character, so it must never reach a call's key
# or payload. A JSON string can only carry it escaped; a search of the raw bytes (far
# cheaper than a pattern on every string field) finds it wherever it is. Notifications
# hardly ever hold a backslash, so a one-byte scan decides almost every time: ``92 in raw``
# (the byte's value, a plain memchr) costs ~20 ns on a 1 KB frame, a search for the
# one-byte string b"\\" about ten times as much in Python 3.11.
_HAS_NUL = "a string holds the NUL character (\\u0000)"
_BACKSLASH = 0x5C


def _has_nul(raw: bytes | str) -> bool:
    if isinstance(raw, bytes):
        return _BACKSLASH in raw and b"\\u0000" in raw
    return "\\" in raw and "\\u0000" in raw


def check_event_time(
    event: Notification | TrackedNotification, raw: bytes | str, received_at: datetime
) -> None:
    """Refuse a notification whose ``eventTime`` is far from when it was received.

    The second half of the edge check (:func:`decode_tracked` bounds every field): the
    daemon calls it with the receive time before the tracker sees the event, so the
    tracker's clock and the checkpoint only ever move on a plausible time (an eventTime of
    9999 or 1970 would otherwise carry the checkpoint there). Raises
    :class:`EventDecodeError`, so the notification is dead-lettered with the reason.
    """
    when = event.body.event_time
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=UTC)
    ahead = when - received_at
    if ahead > MAX_EVENT_TIME_AHEAD:
        reason = f"eventTime {when.isoformat()} is {ahead} ahead of its receipt"
    elif -ahead > MAX_EVENT_TIME_BEHIND:
        reason = f"eventTime {when.isoformat()} is {-ahead} behind its receipt"
    else:
        return
    raise EventDecodeError(f"{reason} at {received_at.isoformat()} (untrusted time)", raw)


def decode_event(raw: bytes | str) -> Notification:
    """Decode one notification; raise :class:`EventDecodeError` if it cannot be used.

    The fast path decodes straight into the typed structs; a payload whose
    ids are JSON numbers is rewritten with string ids and decoded again.
    """
    if _has_nul(raw):
        raise EventDecodeError(_HAS_NUL, raw)
    try:
        return _decode_event(raw)
    except RecursionError:
        raise EventDecodeError(_TOO_DEEP, raw) from None


def _decode_event(raw: bytes | str) -> Notification:
    if type(raw) is bytes and raw[:1] == b"[":
        # Fast path: a well-formed ServerNotification frame, as the gateway sends it.
        try:
            header, notification = _frame_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            if header.type is None or header.type == "ServerNotification":
                return notification
    try:
        return _decode(raw)
    except EventDecodeError as exc:
        if "got `int`" not in exc.reason:
            raise
    try:
        fixed = msgspec.json.encode(_ids_as_text(msgspec.json.decode(raw)))
        return _decode(fixed)
    except msgspec.DecodeError as exc:
        raise EventDecodeError(str(exc), raw) from None
    except EventDecodeError as exc:
        raise EventDecodeError(exc.reason, raw) from None


def decode_tracked(raw: bytes | str) -> TrackedNotification | Notification:
    """Decode one notification for :meth:`Tracker.apply` (the hot path; see above).

    A ``[header, envelope]`` frame or a bare envelope decodes into the lean
    :class:`TrackedNotification`; anything else goes through
    :func:`decode_event` and raises :class:`EventDecodeError` the same way.
    """
    # The frame as the gateway sends it (bytes, no backslash) is tested first, inline:
    # this runs 150,000 times a second, and every other input takes the general path.
    if type(raw) is bytes and raw[:1] == b"[" and _BACKSLASH not in raw:
        try:
            header, tracked = _tracked_frame_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return decode_event(raw)
        except RecursionError:
            raise EventDecodeError(_TOO_DEEP, raw) from None
        if header.type is None or header.type == "ServerNotification":
            return tracked
        return decode_event(raw)
    if _has_nul(raw):
        raise EventDecodeError(_HAS_NUL, raw)
    first = raw[:1]
    try:
        if first == b"[" or first == "[":
            header, tracked = _tracked_frame_decoder.decode(raw)
            if header.type is None or header.type == "ServerNotification":
                return tracked
        elif first == b"{" or first == "{":
            return _tracked_envelope_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    except RecursionError:
        raise EventDecodeError(_TOO_DEEP, raw) from None
    return decode_event(raw)


def _decode(raw: bytes | str) -> Notification:
    try:
        first = _first_byte(raw)
        if first == 0x5B:  # "[": the WebSocket frame
            header, notification = _frame_decoder.decode(raw)
            if header.type is not None and header.type != "ServerNotification":
                raise EventDecodeError(f"WebSocket frame of type {header.type!r}", raw)
            return notification
        if first != 0x7B:  # not "{" either
            raise EventDecodeError("not a JSON object or [header, body] array", raw)
        bare = _bare_decoder.decode(raw)
        if bare.body is None and bare.uuid is None:
            return Notification(body=_body_decoder.decode(raw))
        return _envelope_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise EventDecodeError(_frame_kind(raw) or str(exc), raw) from None


def _frame_kind(raw: bytes | str) -> str | None:
    """Why a WebSocket frame that is not a notification was refused, if that is the cause."""
    try:
        header = _header_decoder.decode(raw)[0]
    except (msgspec.DecodeError, msgspec.ValidationError, IndexError):
        return None
    if not isinstance(header, _WsHeader) or header.type in (None, "ServerNotification"):
        return None
    return f"WebSocket frame of type {header.type!r}, not a ServerNotification"
