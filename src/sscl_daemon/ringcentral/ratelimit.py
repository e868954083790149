"""Client-side request budgets for RingCentral's throttling groups, and retry timing.

Used by `auth.py` (token and wstoken calls, group Auth) and `rest.py` (every API call). The
platform counts requests per user+app and group over a sliding window and, once a budget is
exceeded, answers 429 for a penalty period that restarts with every request made during it
(research/rc-protocol.md C6). So the client (1) keeps its own requests under the documented
budgets with a sliding window like the platform's (a leaky bucket such as `aiolimiter` lets a
burst plus its refill through within one window, which the platform punishes), (2) stops a
whole group when a response says no budget is left, and (3) after a 429/503 keeps the group
closed for the `Retry-After` it was given, sending nothing in between.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# research C6: "if Retry-After is absent wait at least 30 s"; the JS SDK waits 60 s.
DEFAULT_RETRY_AFTER = 60.0

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class RateGroup(enum.StrEnum):
    """Throttling group of an operation (research C6, from the spec's x-throttling-group)."""

    LIGHT = "Light"
    MEDIUM = "Medium"
    HEAVY = "Heavy"
    AUTH = "Auth"

    @classmethod
    def parse(cls, value: str | None) -> RateGroup | None:
        for member in cls:
            if value and member.value.lower() == value.lower():
                return member
        return None


@dataclass(frozen=True)
class Budget:
    """`requests` per `window` seconds."""

    requests: int
    window: float = 60.0


# research C6 [doc: rate-limits.md]: default per-user budgets.
DEFAULT_BUDGETS: Mapping[RateGroup, Budget] = {
    RateGroup.LIGHT: Budget(50),
    RateGroup.MEDIUM: Budget(40),
    RateGroup.HEAVY: Budget(10),
    RateGroup.AUTH: Budget(5),
}


def retry_after_seconds(
    headers: Mapping[str, str], default: float = DEFAULT_RETRY_AFTER, now: float | None = None
) -> float:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date), else `default`."""
    raw = headers.get("Retry-After")
    if raw is None:
        return default
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return default
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def throttle_delay(status: int, headers: Mapping[str, str]) -> float | None:
    """How long a 429/503 answer closes its group; None: back off as after any 5xx.

    A 429 is a penalty that restarts with every request sent during it, so without a
    `Retry-After` the group still waits `DEFAULT_RETRY_AFTER`. A 503 without one is an
    outage of unknown length: a fixed minute per answer kept the WebSocket down for minutes
    after short outages, where jittered exponential backoff finds the end within seconds.
    """
    if status == 429:
        return retry_after_seconds(headers, DEFAULT_RETRY_AFTER)
    if status == 503 and headers.get("Retry-After") is not None:
        return retry_after_seconds(headers)
    return None


class GroupLimiter:
    """Keeps each throttling group under its budget and closed while the platform says so."""

    def __init__(
        self,
        budgets: Mapping[RateGroup, Budget] = DEFAULT_BUDGETS,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._budgets = dict(budgets)
        self._hits: dict[RateGroup, deque[float]] = {group: deque() for group in budgets}
        self._closed_until: dict[RateGroup, float] = {}
        self._clock = clock
        self._sleep = sleep
        self.waited: dict[RateGroup, float] = dict.fromkeys(RateGroup, 0.0)

    async def acquire(self, group: RateGroup) -> None:
        """Wait until a request of `group` may be sent, and count it."""
        budget = self._budgets.get(group)
        hits = self._hits.get(group)
        while True:
            now = self._clock()
            wait = self._closed_until.get(group, 0.0) - now
            if wait <= 0 and budget is not None and hits is not None:
                while hits and hits[0] <= now - budget.window:
                    hits.popleft()
                if len(hits) < budget.requests:
                    hits.append(now)
                    return
                wait = hits[0] + budget.window - now
            elif wait <= 0:
                return
            self.waited[group] += wait
            await self._sleep(wait)

    def close_for(self, group: RateGroup, seconds: float) -> None:
        """Send nothing of `group` for `seconds` (a 429's Retry-After, an exhausted window)."""
        until = self._clock() + seconds
        if until > self._closed_until.get(group, 0.0):
            self._closed_until[group] = until

    def observe(self, group: RateGroup, headers: Mapping[str, str]) -> None:
        """Learn from the `X-Rate-Limit-*` headers of a response."""
        remaining = headers.get("X-Rate-Limit-Remaining")
        window = headers.get("X-Rate-Limit-Window")
        if remaining is None or window is None:
            return
        try:
            left, seconds = int(remaining), float(window)
        except ValueError:
            return
        if left <= 0:
            # The window is sliding and the oldest hit's age is unknown: waiting a whole
            # window is the only wait that cannot run into the penalty.
            self.close_for(group, seconds)
