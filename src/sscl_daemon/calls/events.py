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
dead-letter it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import msgspec


class EventDecodeError(ValueError):
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


def _text(value: str | int | None) -> str | None:
    return value if value is None or type(value) is str else str(value)


# The wire structs are plain (non-frozen, gc-free) for decode speed: they are
# read once by the tracker and never shared or mutated after decoding.


class PhoneInfo(msgspec.Struct, rename="camel", gc=False):
    """``from`` / ``to`` of a party. RC-to-RC calls carry short extension numbers here."""

    phone_number: str | None = None
    name: str | None = None
    extension_id: str | int | None = None
    extension_number: str | None = None
    device_id: str | int | None = None

    def __post_init__(self) -> None:
        if self.extension_id is not None and type(self.extension_id) is not str:
            self.extension_id = str(self.extension_id)


class PeerId(msgspec.Struct, rename="camel", gc=False):
    """Where a ``Gone`` party went (warm transfer, conference, pick-up)."""

    telephony_session_id: str | None = None
    session_id: str | int | None = None
    party_id: str | None = None


class Status(msgspec.Struct, rename="camel", gc=False):
    code: str | None = None
    reason: str | None = None
    description: str | None = None
    rcc: bool = False
    peer_id: PeerId | None = None

    @property
    def kind(self) -> StatusCode:
        return parse_status(self.code)

    @property
    def why(self) -> Reason:
        return parse_reason(self.reason)


class Recording(msgspec.Struct, gc=False):
    id: str | int
    active: bool = False


class Park(msgspec.Struct, gc=False):
    id: str | int | None = None


class UiCallValue(msgspec.Struct, gc=False):
    type: str | None = None
    value: str | None = None


class UiCallInfo(msgspec.Struct, gc=False):
    """Queue deliveries: ``primary`` is the queue name, ``additional`` the caller id name."""

    primary: UiCallValue | None = None
    additional: UiCallValue | None = None


class Party(msgspec.Struct, rename="camel", gc=False):
    id: str
    account_id: str | int | None = None
    extension_id: str | int | None = None
    direction: str | None = None
    from_: PhoneInfo | None = msgspec.field(default=None, name="from")
    to: PhoneInfo | None = None
    status: Status | None = None
    missed_call: bool = False
    stand_alone: bool = False
    muted: bool = False
    park: Park | None = None
    recordings: list[Recording] | None = None
    queue_call: bool = False
    ui_call_info: UiCallInfo | None = None
    conference_role: str | None = None
    ring_out_role: str | None = None
    ring_me_role: str | None = None

    def __post_init__(self) -> None:
        if self.extension_id is not None and type(self.extension_id) is not str:
            self.extension_id = str(self.extension_id)
        if self.account_id is not None and type(self.account_id) is not str:
            self.account_id = str(self.account_id)

    @property
    def outbound(self) -> bool:
        """True when this party originated its leg (the PSTN caller of an inbound call)."""
        return self.direction is not None and self.direction.lower() == "outbound"


class Origin(msgspec.Struct, gc=False):
    type: str | None = None

    @property
    def kind(self) -> OriginType:
        return parse_origin(self.type)


class SessionBody(msgspec.Struct, rename="camel", gc=False):
    telephony_session_id: str
    sequence: int
    event_time: datetime
    session_id: str | int | None = None
    server_id: str | None = None
    origin: Origin | None = None
    parties: list[Party] = msgspec.field(default_factory=list)
    # Only 2018-era payloads carry these at body level.
    account_id: str | int | None = None
    extension_id: str | int | None = None

    def __post_init__(self) -> None:
        if self.event_time.tzinfo is None:
            self.event_time = self.event_time.replace(tzinfo=UTC)
        if self.session_id is not None and type(self.session_id) is not str:
            self.session_id = str(self.session_id)
        if self.account_id is not None and type(self.account_id) is not str:
            self.account_id = str(self.account_id)


class Notification(msgspec.Struct, rename="camel", gc=False):
    """The notification envelope (``uuid`` is the dedupe key for re-deliveries)."""

    body: SessionBody
    uuid: str | None = None
    event: str | None = None
    timestamp: datetime | None = None
    subscription_id: str | None = None
    owner_id: str | int | None = None


class _Envelope(msgspec.Struct, rename="camel", gc=False):
    body: SessionBody | None = None
    uuid: str | None = None
    event: str | None = None
    timestamp: datetime | None = None
    subscription_id: str | None = None
    owner_id: str | int | None = None


class _WsHeader(msgspec.Struct, gc=False):
    type: str | None = None


_frame_decoder = msgspec.json.Decoder(tuple[_WsHeader, _Envelope])
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_body_decoder = msgspec.json.Decoder(SessionBody)


def _first_char(raw: bytes | str) -> str:
    head = raw[:64] if isinstance(raw, str) else raw[:64].decode("latin-1")
    stripped = head.lstrip()
    return stripped[:1]


def decode_event(raw: bytes | str) -> Notification:
    """Decode one notification; raise :class:`EventDecodeError` if it cannot be used."""
    try:
        first = _first_char(raw)
        if first == "[":
            header, envelope = _frame_decoder.decode(raw)
            if header.type is not None and header.type != "ServerNotification":
                raise EventDecodeError(f"WebSocket frame of type {header.type!r}", raw)
        elif first == "{":
            envelope = _envelope_decoder.decode(raw)
            if envelope.body is None and envelope.uuid is None and envelope.event is None:
                return Notification(body=_body_decoder.decode(raw))
        else:
            raise EventDecodeError("not a JSON object or [header, body] array", raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise EventDecodeError(str(exc), raw) from None
    if envelope.body is None:
        raise EventDecodeError("the notification has no body", raw)
    return Notification(
        body=envelope.body,
        uuid=envelope.uuid,
        event=envelope.event,
        timestamp=envelope.timestamp,
        subscription_id=envelope.subscription_id,
        owner_id=_text(envelope.owner_id),
    )
