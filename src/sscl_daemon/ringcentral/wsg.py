"""The RingCentral WebSocket gateway protocol, sans-I/O: framing and one connection's logic.

`subscription.py` owns the socket, the clock and reconnects; it feeds every received text
frame to `GatewayConnection.receive` and sends whatever comes back. This module decides what
the frames mean (research/rc-protocol.md A3-A9): wait for `ConnectionDetails`; on a fresh
connection or a failed recovery create the subscription (one `ClientRequest`); on a
successful recovery keep the old one; pass `ServerNotification`s of our subscription on as
raw envelope bytes (the call core decodes them); keep the `wsc` recovery token with the
highest sequence; turn gateway `Error` frames (WSG-902 idle, WSG-903 absolute timeout,
WSG-400 bad token) into a reconnect.
"""

from __future__ import annotations

import enum
import itertools
import secrets
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from sscl_daemon.errors import SsclError

T = TypeVar("T")

SUBSCRIPTION_PATH = "/restapi/v1.0/subscription"
TELEPHONY_FILTER = "/restapi/v1.0/account/~/telephony/sessions"
# The gateway numbers a WS session's frames one by one from 1, as a JavaScript number.
MAX_SEQUENCE = 2**53 - 1
# One connection's frames arrive in order, so the newest is only a step or so ahead of the
# highest seen; a frame claiming to be further ahead is not believed (a hostile or corrupt
# sequence, such as 10**15, would otherwise make the next recovery look complete).
MAX_SEQUENCE_STEP = 1000


class MessageType(enum.StrEnum):
    CLIENT_REQUEST = "ClientRequest"
    SERVER_NOTIFICATION = "ServerNotification"
    CONNECTION_DETAILS = "ConnectionDetails"
    HEARTBEAT = "Heartbeat"
    ERROR = "Error"


class ProtocolError(SsclError):
    """A frame that is not the gateway's `[header, body?]` JSON array."""


class Wsc(msgspec.Struct, frozen=True):
    """The WebSocket session context: what a reconnect presents to recover (`?wsc=`)."""

    token: str
    sequence: int = 0

    def __repr__(self) -> str:
        return f"Wsc(sequence={self.sequence})"


class Header(msgspec.Struct, kw_only=True):
    type: str
    messageId: str = ""
    status: int = 0
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    wsc: Wsc | None = None


class ConnectionDetails(msgspec.Struct, kw_only=True):
    recoveryState: str | None = None
    recoveryErrorCode: str | None = None
    recoveryTimeout: float = 180.0
    recoveryBufferSize: int = 100
    idleTimeout: float = 1800.0
    absoluteTimeout: float = 86400.0


class GatewayError(msgspec.Struct, kw_only=True):
    errorCode: str = ""
    message: str = ""


class _Envelope(msgspec.Struct, kw_only=True):
    uuid: str = ""
    subscriptionId: str | None = None


class _SubscriptionInfo(msgspec.Struct, kw_only=True):
    id: str = ""


_FRAME = msgspec.json.Decoder(list[msgspec.Raw])
_HEADER = msgspec.json.Decoder(Header)
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True)
class Frame:
    header: Header
    body: msgspec.Raw | None


def parse_frame(data: str | bytes) -> Frame:
    """Decode one text frame; raises `ProtocolError` for anything else."""
    try:
        parts = _FRAME.decode(data)
        if not parts:
            raise ProtocolError("empty gateway frame")
        header = _HEADER.decode(parts[0])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(f"unreadable gateway frame: {exc}") from None
    except RecursionError:
        # msgspec recurses per nesting level: a frame nested past the limit is just unreadable.
        raise ProtocolError("unreadable gateway frame: JSON nested too deeply") from None
    return Frame(header, parts[1] if len(parts) > 1 else None)


def encode_request(message_id: str, method: str, path: str, body: object = None) -> str:
    header = {"type": MessageType.CLIENT_REQUEST.value, "messageId": message_id}
    header |= {"method": method, "path": path}
    frame: list[object] = [header] if body is None else [header, body]
    return _ENCODER.encode(frame).decode()


def encode_heartbeat(message_id: str) -> str:
    return _ENCODER.encode(
        [{"type": MessageType.HEARTBEAT.value, "messageId": message_id}]
    ).decode()


def subscription_body(filters: tuple[str, ...]) -> dict[str, object]:
    return {"eventFilters": list(filters), "deliveryMode": {"transportType": "WebSocket"}}


class Phase(enum.Enum):
    AWAITING_DETAILS = "awaiting-details"
    SUBSCRIBING = "subscribing"
    ACTIVE = "active"
    CLOSING = "closing"


# --- what the connection asks its shell to do ---------------------------------------------


@dataclass(frozen=True)
class Send:
    text: str


@dataclass(frozen=True)
class Deliver:
    """A notification of our subscription: the raw webhook envelope and its uuid."""

    envelope: bytes
    uuid: str


@dataclass(frozen=True)
class Recovered:
    """The gateway restored the session: missed notifications are being replayed."""


@dataclass(frozen=True)
class ReplayIncomplete:
    """The recovery replay skipped `missing` notifications (its buffer overflowed)."""

    missing: int


@dataclass(frozen=True)
class Subscribed:
    """A new subscription is active; `lost` when notifications before it may be missing."""

    subscription_id: str
    lost: bool
    recovery_error: str | None


@dataclass(frozen=True)
class Reconnect:
    """This connection is finished; `recoverable` False when its `wsc` must not be reused.

    `healthy` False when it never got going (the subscription was refused): the next
    attempt backs off instead of following at once, which a platform answering 503 to
    every subscription would turn into a tight reconnect loop.
    """

    reason: str
    recoverable: bool = True
    retry_after: float | None = None
    healthy: bool = True


Action = Send | Deliver | Recovered | ReplayIncomplete | Subscribed | Reconnect


class GatewayConnection:
    """The protocol state of one WebSocket connection."""

    def __init__(
        self,
        filters: tuple[str, ...] = (TELEPHONY_FILTER,),
        *,
        recovering: bool,
        subscription_id: str | None = None,
        wsc: Wsc | None = None,
        last_notification: int | None = None,
    ) -> None:
        self.filters = filters
        self.recovering = recovering
        self.subscription_id = subscription_id
        self.wsc = wsc
        self.details: ConnectionDetails | None = None
        self.phase = Phase.AWAITING_DETAILS
        self.ignored = 0
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(4)
        self._subscribe_id: str | None = None
        self._recovery_error: str | None = None
        # `wsc.sequence` of the newest notification of this WS session seen so far.
        self.last_notification = last_notification if recovering else None
        self._replay: tuple[int, int] | None = None
        # Frames whose `wsc.sequence` was out of range or implausibly far ahead.
        self.untrusted_sequences = 0

    def next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    def heartbeat(self) -> Send:
        return Send(encode_heartbeat(self.next_id()))

    def receive(self, data: str | bytes) -> list[Action]:
        """Everything one incoming frame means."""
        try:
            frame = parse_frame(data)
        except ProtocolError:
            # e.g. a multipart batch answer: not ours to read, and not worth a reconnect.
            self.ignored += 1
            return []
        header = frame.header
        if header.wsc is not None and not self._plausible(header.wsc, header.type):
            self.untrusted_sequences += 1
            header.wsc = None
        self._track(header.wsc, header.type)
        kind = header.type
        if kind == MessageType.CONNECTION_DETAILS:
            return self._on_details(frame)
        if kind == MessageType.SERVER_NOTIFICATION:
            return self._on_notification(frame)
        if kind == MessageType.CLIENT_REQUEST:
            return self._on_response(frame)
        if kind == MessageType.ERROR:
            return self._on_error(frame)
        return []

    # -- frames ------------------------------------------------------------------------------

    def _plausible(self, wsc: Wsc, kind: str) -> bool:
        """Whether a frame's sequence may be believed (else its `wsc` is disregarded).

        The first frame of a connection (`ConnectionDetails`) sets where the numbering
        stands, wherever that is; later frames of the same WS session may not leap ahead.
        """
        if not 0 <= wsc.sequence <= MAX_SEQUENCE:
            return False
        if kind == MessageType.CONNECTION_DETAILS or self.wsc is None:
            return True
        if wsc.token != self.wsc.token:
            return True
        return wsc.sequence <= self.wsc.sequence + MAX_SEQUENCE_STEP

    def _track(self, wsc: Wsc | None, kind: str) -> None:
        if wsc is None:
            return
        # A ConnectionDetails after a recovery attempt names the session to use from now on,
        # whatever its sequence; otherwise the highest sequence wins (research A3).
        if (
            kind == MessageType.CONNECTION_DETAILS
            or self.wsc is None
            or wsc.token != self.wsc.token
            or wsc.sequence > self.wsc.sequence
        ):
            self.wsc = wsc

    def _on_details(self, frame: Frame) -> list[Action]:
        details = _decode_body(frame.body, ConnectionDetails) or ConnectionDetails()
        first = self.details is None
        self.details = details
        if not first or self.phase is not Phase.AWAITING_DETAILS:
            return []
        if self.recovering and details.recoveryState == "Successful":
            self.phase = Phase.ACTIVE
            wsc = frame.header.wsc
            if wsc is not None and self.last_notification is not None:
                if wsc.sequence <= self.last_notification + 1:
                    # Nothing was sent while away: this frame is the next one. Counting it as
                    # seen keeps it from looking missed when the connection ends before a
                    # notification (the next ConnectionDetails would be two ahead).
                    self.last_notification = max(self.last_notification, wsc.sequence)
                else:
                    # Frames of a WS session are numbered one by one; the ones missed while
                    # away are those between our last notification and this ConnectionDetails.
                    self._replay = (self.last_notification, wsc.sequence)
            return [Recovered()]
        # A new WS session numbers its frames afresh.
        self.last_notification = None
        return self._subscribe(details.recoveryErrorCode)

    def _subscribe(self, recovery_error: str | None) -> list[Action]:
        self.phase = Phase.SUBSCRIBING
        self._recovery_error = recovery_error
        self._subscribe_id = self.next_id()
        body = subscription_body(self.filters)
        return [Send(encode_request(self._subscribe_id, "POST", SUBSCRIPTION_PATH, body))]

    def _on_response(self, frame: Frame) -> list[Action]:
        header = frame.header
        if self._subscribe_id is None or header.messageId != self._subscribe_id:
            return []
        self._subscribe_id = None
        if not 200 <= header.status < 300:
            error = _decode_body(frame.body, GatewayError) or GatewayError()
            retry = header.headers.get("Retry-After")
            self.phase = Phase.CLOSING
            return [
                Reconnect(
                    f"subscription refused: {header.status} {error.errorCode}".strip(),
                    retry_after=float(retry) if retry and retry.isdigit() else None,
                    healthy=False,
                )
            ]
        info = _decode_body(frame.body, _SubscriptionInfo) or _SubscriptionInfo()
        sub_id = info.id or header.headers.get("WSG-SubscriptionId", "")
        self.subscription_id = sub_id
        self.phase = Phase.ACTIVE
        return [Subscribed(sub_id, lost=True, recovery_error=self._recovery_error)]

    def _on_notification(self, frame: Frame) -> list[Action]:
        if frame.body is None:
            self.ignored += 1
            return []
        raw = bytes(frame.body)
        envelope = _decode_body(frame.body, _Envelope)
        if envelope is None:
            self.ignored += 1
            return []
        sub_id = envelope.subscriptionId
        if self.subscription_id is None and self.phase is Phase.ACTIVE and sub_id:
            # Recovered after a restart: the subscription is the old one, learn its id.
            self.subscription_id = sub_id
        if sub_id and self.subscription_id and sub_id != self.subscription_id:
            # A replaced subscription's stragglers: its events belong to no stream of ours.
            self.ignored += 1
            return []
        actions: list[Action] = []
        wsc = frame.header.wsc
        if wsc is not None:
            if self._replay is not None:
                actions.extend(self._check_replay(wsc.sequence))
            if self.last_notification is None or wsc.sequence > self.last_notification:
                self.last_notification = wsc.sequence
        actions.append(Deliver(raw, envelope.uuid or frame.header.messageId))
        return actions

    def _check_replay(self, first: int) -> list[Action]:
        """The first notification after a recovery: was the replay complete?

        The gateway replays at most `recoveryBufferSize` notifications, the newest ones
        (research A8): a replay that starts later than the one after our last is short.
        """
        assert self._replay is not None
        last, details = self._replay
        self._replay = None
        if details <= last + 1 or first <= last + 1:
            return []
        missing = min(first, details) - last - 1
        return [ReplayIncomplete(missing)]

    def _on_error(self, frame: Frame) -> list[Action]:
        error = _decode_body(frame.body, GatewayError) or GatewayError()
        self.phase = Phase.CLOSING
        # WSG-400: the wsc we presented is malformed; it will never recover anything.
        recoverable = error.errorCode != "WSG-400"
        return [Reconnect(f"gateway error {error.errorCode or 'unknown'}", recoverable)]


def _decode_body(body: msgspec.Raw | None, kind: type[T]) -> T | None:
    if body is None:
        return None
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
