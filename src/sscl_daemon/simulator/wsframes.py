"""Frame shapes of the RingCentral WebSocket gateway (encoding only; no sockets here).

Used by `gateway.py`. Every frame is a text frame holding a JSON array `[header, body?]`
(research/rc-protocol.md A3); header fields and the ConnectionDetails body follow A3/A4, the
Error body follows A9, SubscriptionInfo follows A5. Encoding uses msgspec because the gateway
must push tens of thousands of notifications per second.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

ENCODER = msgspec.json.Encoder()
DECODER = msgspec.json.Decoder()

_request_ids = itertools.count(1)
_REQUEST_PREFIX = secrets.token_hex(4)


def request_id() -> str:
    """A unique `RCRequestId`-like value (cheap: a random prefix and a counter)."""
    return f"{_REQUEST_PREFIX}-{next(_request_ids):012d}"


def iso_ms(moment: datetime) -> str:
    """`2024-01-01T10:00:00.123Z` — the form notifications and records use."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def iso_plus0000(moment: datetime) -> str:
    """`2020-09-07T21:50:02.737+0000` — the form ConnectionDetails uses (research A4)."""
    return iso_ms(moment)[:-1] + "+0000"


def seconds(value: float) -> int | float:
    """Whole seconds as an int (as the platform sends), fractions kept for fast tests."""
    return int(value) if float(value).is_integer() else value


def encode(header: Mapping[str, object], body: object = None, *, has_body: bool = False) -> bytes:
    if body is None and not has_body:
        return ENCODER.encode([header])
    return ENCODER.encode([header, body])


def wsc(token: str, sequence: int) -> dict[str, object]:
    return {"token": token, "sequence": sequence}


@dataclass(frozen=True)
class GatewayLimits:
    """The numbers the ConnectionDetails body announces."""

    recovery_timeout_s: float
    recovery_buffer_size: int
    idle_timeout_s: float
    absolute_timeout_s: float
    max_active_requests: int
    max_connections_per_session: int


def connection_details(
    limits: GatewayLimits,
    token: str,
    sequence: int,
    created: datetime,
    recovery_state: str | None = None,
    recovery_error_code: str | None = None,
) -> bytes:
    header = {
        "type": "ConnectionDetails",
        "messageId": request_id(),
        "status": 200,
        "wsc": wsc(token, sequence),
        "headers": {"RCRequestId": request_id()},
    }
    body: dict[str, object] = {
        "creationTime": iso_plus0000(created),
        "maxConnectionsPerSession": limits.max_connections_per_session,
        "recoveryBufferSize": limits.recovery_buffer_size,
        "recoveryTimeout": seconds(limits.recovery_timeout_s),
        "idleTimeout": seconds(limits.idle_timeout_s),
        "absoluteTimeout": seconds(limits.absolute_timeout_s),
        "maxActiveRequests": limits.max_active_requests,
    }
    # no recoveryState at all on a fresh connection [obs: RWRT exp. 5]
    if recovery_state is not None:
        body["recoveryState"] = recovery_state
    if recovery_error_code is not None:
        body["recoveryErrorCode"] = recovery_error_code
    return encode(header, body)


def error_frame(code: str, message: str) -> bytes:
    header = {
        "type": "Error",
        "messageId": request_id(),
        "status": 400,
        "headers": {"RCRequestId": request_id()},
    }
    return encode(header, {"errorCode": code, "message": message})


def heartbeat_reply(message_id: str) -> bytes:
    # G-A10: same type and messageId, no body
    return encode({"type": "Heartbeat", "messageId": message_id})


def client_response(
    message_id: str, status: int, headers: Mapping[str, str], body: object
) -> bytes:
    header = {
        "type": "ClientRequest",
        "messageId": message_id,
        "status": status,
        "headers": dict(headers),
    }
    return encode(header, body)


def rest_error(code: str, message: str, **extra: str) -> dict[str, object]:
    """The REST error envelope (research C7)."""
    detail: dict[str, object] = {"errorCode": code, "message": message, **extra}
    return {"errorCode": code, "message": message, "errors": [detail]}


def subscription_info(
    sub_id: str,
    filters: list[str],
    created: datetime,
    disabled: list[dict[str, object]],
) -> dict[str, object]:
    # research A5: expiresIn ~ a day and ignored by clients of WS subscriptions
    expires_in = 86399
    info: dict[str, object] = {
        "uri": f"/restapi/v1.0/subscription/{sub_id}",
        "id": sub_id,
        "creationTime": iso_ms(created),
        "status": "Active",
        "eventFilters": filters,
        "expirationTime": iso_ms(created + timedelta(seconds=expires_in)),
        "expiresIn": expires_in,
        "deliveryMode": {"transportType": "WebSocket", "encryption": False},
    }
    if disabled:
        info["disabledFilters"] = disabled
    return info
