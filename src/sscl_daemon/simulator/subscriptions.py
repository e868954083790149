"""Subscriptions of the simulated WebSocket gateway: event filters and which notification matches.

Pure logic used by `gateway.py`. Filters follow research/rc-protocol.md B1: the account-level
`/restapi/v1.0/account/{id|~}/telephony/sessions` and the extension-level
`/restapi/v1.0/account/{id|~}/extension/{id|~}/telephony/sessions`, with the singular query
parameters `direction`, `statusCode`, `missedCall`. The server expands `~` to real ids in the
returned filters (A5). Other event types are accepted into `disabledFilters` (the simulator
never emits them); a subscription with no usable filter gets 400 SUB-508 (A5 error list).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs

import msgspec

from sscl_daemon.simulator.wsframes import subscription_info

_TELEPHONY = re.compile(
    r"^/restapi/v1\.0/account/(?P<acct>~|\d+)(?:/extension/(?P<ext>~|\d+))?/telephony/sessions"
    r"(?:\?(?P<query>.*))?$"
)


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """One telephony event ready for delivery: its concrete event path and its pre-encoded body.

    The filter fields come from the single party the body carries (research B5).
    """

    event: str
    extension_id: str | None
    body: msgspec.Raw
    direction: str | None = None
    status_code: str | None = None
    missed_call: bool | None = None


class SubscriptionError(Exception):
    """A refused subscription request: HTTP status and REST error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class EventFilter:
    text: str
    extension_id: str | None
    direction: str | None = None
    status_code: str | None = None
    missed_call: bool | None = None

    def matches(self, note: OutgoingEvent) -> bool:
        if self.extension_id is not None and note.extension_id != self.extension_id:
            return False
        if self.direction is not None and note.direction != self.direction:
            return False
        if self.status_code is not None and note.status_code != self.status_code:
            return False
        return self.missed_call is None or note.missed_call == self.missed_call


def parse_filter(raw: str, account_id: str, owner_extension_id: str) -> EventFilter | None:
    """The filter, None for a well-formed filter of another event type; raises on bad ones."""
    match = _TELEPHONY.match(raw)
    if match is None:
        if raw.startswith("/restapi/v1.0/"):
            return None
        raise SubscriptionError(400, "SUB-508", f"Event filter [{raw}] is invalid")
    acct = match["acct"]
    if acct not in ("~", account_id):
        raise SubscriptionError(403, "SUB-406", f"Event filter [{raw}] belongs to another account")
    ext = match["ext"]
    if ext == "~":
        ext = owner_extension_id
    query = {k: v[-1] for k, v in parse_qs(match["query"] or "").items()}
    missed = query.get("missedCall")
    text = f"/restapi/v1.0/account/{account_id}"
    if ext is not None:
        text += f"/extension/{ext}"
    text += "/telephony/sessions"
    if match["query"]:
        text += "?" + match["query"]
    return EventFilter(
        text=text,
        extension_id=ext,
        direction=query.get("direction"),
        status_code=query.get("statusCode"),
        missed_call=None if missed is None else missed.lower() == "true",
    )


@dataclass
class GatewaySubscription:
    id: str
    filters: tuple[EventFilter, ...]
    created: datetime
    disabled: list[dict[str, object]] = field(default_factory=list)

    def matches(self, note: OutgoingEvent) -> bool:
        return any(f.matches(note) for f in self.filters)

    def info(self) -> dict[str, object]:
        return subscription_info(
            self.id, [f.text for f in self.filters], self.created, self.disabled
        )


def build_subscription(
    body: object,
    account_id: str,
    owner_extension_id: str,
    created: datetime,
    sub_id: str | None = None,
) -> GatewaySubscription:
    """A create/update request body validated into a subscription (raises SubscriptionError)."""
    if not isinstance(body, dict):
        raise SubscriptionError(400, "CMN-101", "Request body must be a JSON object")
    raw_filters = body.get("eventFilters")
    if not isinstance(raw_filters, list) or not raw_filters:
        raise SubscriptionError(400, "CMN-101", "Parameter [eventFilters] value is invalid")
    mode = body.get("deliveryMode")
    transport = mode.get("transportType") if isinstance(mode, dict) else None
    if transport != "WebSocket":
        raise SubscriptionError(
            400,
            "CMN-101",
            "Parameter [deliveryMode.transportType] must be WebSocket on this connection",
        )
    filters: list[EventFilter] = []
    disabled: list[dict[str, object]] = []
    for raw in raw_filters:
        if not isinstance(raw, str):
            raise SubscriptionError(400, "SUB-508", f"Event filter [{raw!r}] is invalid")
        parsed = parse_filter(raw, account_id, owner_extension_id)
        if parsed is None:
            disabled.append(
                {"filter": raw, "reason": "Event filter is not supported by the simulator"}
            )
        else:
            filters.append(parsed)
    if not filters:
        raise SubscriptionError(400, "SUB-508", "None of the event filters is supported")
    return GatewaySubscription(sub_id or secrets.token_hex(16), tuple(filters), created, disabled)
