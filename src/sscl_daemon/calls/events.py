"""Typed telephony-session notifications, decoded straight from the raw WebSocket bytes.

First step of the call core: ``ringcentral/`` hands over the raw text of a
``ServerNotification`` frame (or a stored/replayed notification) and
:func:`decode_event` turns it into a :class:`Notification` the tracker
applies, or :func:`decode_tracked` (the per-event hot path) into the lean
:class:`TrackedNotification` (the two views: :mod:`~sscl_daemon.calls.wire`;
the status codes and reasons: :mod:`~sscl_daemon.calls.codes`; both are
importable from here too). Accepted shapes:

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

:func:`decode_tracked` falls back to :func:`decode_event` for anything its fast path
does not take (numeric ids, bare bodies, frames that are not notifications, bad
input), so both accept the same payloads and raise the same :class:`EventDecodeError`.
The one difference is on purpose: a field the tracker never reads is not validated.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

# Public names of the decoded notification, importable from here as before the split:
# the vocabulary lives in codes, the structs and their bounds in wire.
from sscl_daemon.calls.codes import Reason, StatusCode, parse_reason, parse_status
from sscl_daemon.calls.wire import (
    MAX_ID_LENGTH,
    MAX_LIST_LENGTH,
    MAX_SEQUENCE,
    MAX_TEXT_LENGTH,
    Notification,
    SessionBody,
    TrackedNotification,
)
from sscl_daemon.errors import SsclError

__all__ = [
    "MAX_EVENT_TIME_AHEAD",
    "MAX_EVENT_TIME_BEHIND",
    "MAX_ID_LENGTH",
    "MAX_LIST_LENGTH",
    "MAX_SEQUENCE",
    "MAX_TEXT_LENGTH",
    "EventDecodeError",
    "Notification",
    "Reason",
    "StatusCode",
    "TrackedNotification",
    "check_event_time",
    "decode_event",
    "decode_tracked",
    "parse_reason",
    "parse_status",
]

# eventTime against the time the notification was received (see check_event_time): a
# recovery replays notifications up to 180 s old and deliveries lag by seconds, so a day
# behind is generous; ahead allows for the two clocks disagreeing (keep the host NTP-synced).
MAX_EVENT_TIME_BEHIND = timedelta(hours=24)
MAX_EVENT_TIME_AHEAD = timedelta(minutes=5)


class EventDecodeError(SsclError, ValueError):
    """A notification could not be decoded; ``raw`` is the payload exactly as received."""

    def __init__(self, reason: str, raw: bytes | str) -> None:
        self.reason = reason
        self.raw = raw
        super().__init__(f"cannot decode telephony notification: {reason}")


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
