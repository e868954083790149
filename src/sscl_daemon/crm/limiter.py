"""Per-writer throttle: bounded concurrency plus a token bucket, steered by the CRM's headers.

Each writer owns one :class:`Limiter` built from its ``concurrency`` and ``rate_limit``
settings and holds a slot around every HTTP request (``async with limiter.slot()``, or
``await acquire()`` / ``release()``). After every answer the writer passes the response
headers to :meth:`Limiter.observe`; when the CRM says its window is used up (remaining 0
with a reset time) or answers 429, the limiter stops handing out slots until the reset. A
pause longer than ``max_wait`` is not waited out here: :meth:`blocked_for` tells the
caller, which answers ``RetryLater`` so the dispatcher reschedules instead of a task
sleeping (writers never sleep on their own).

Headers understood (names are case-insensitive):

* Pipedrive: ``x-ratelimit-remaining`` + ``x-ratelimit-reset`` (seconds until the 2 s
  window resets), ``x-daily-requests-left`` (api_token POST/PUT allowance) and, seen on
  accounts with token-based budgets, ``x-daily-ratelimit-token-remaining``;
* HubSpot: ``X-HubSpot-RateLimit-Remaining`` + ``X-HubSpot-RateLimit-Interval-Milliseconds``,
  ``X-HubSpot-RateLimit-Daily-Remaining``;
* generic ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` and IETF ``RateLimit-Remaining``
  / ``RateLimit-Reset`` (seconds);
* Salesforce ``Sforce-Limit-Info: api-usage=<used>/<max>`` (a 24 h allowance).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter

# A daily allowance that runs out pauses until the CRM's day turns; we do not know when that
# is for every CRM, so an hour keeps retries rare without losing a day.
DAILY_EXHAUSTED_PAUSE = 3600.0


def _number(headers: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return float(raw.strip())
        except ValueError:
            continue
    return None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def pause_from_headers(headers: Mapping[str, str]) -> float | None:
    """Seconds to hold requests back according to the CRM's rate-limit headers, or None."""
    h = _lower(headers)
    remaining = _number(h, "x-ratelimit-remaining", "ratelimit-remaining")
    if remaining is not None and remaining <= 0:
        reset = _number(h, "x-ratelimit-reset", "ratelimit-reset")
        # Some APIs send an epoch instead of a duration; treat large values as one.
        if reset is not None and reset > 10**9:
            reset = max(reset - time.time(), 0.0)
        return reset if reset is not None else 1.0
    hs_remaining = _number(h, "x-hubspot-ratelimit-remaining")
    if hs_remaining is not None and hs_remaining <= 0:
        interval_ms = _number(h, "x-hubspot-ratelimit-interval-milliseconds")
        return (interval_ms or 10_000.0) / 1000.0
    daily = _number(
        h,
        "x-hubspot-ratelimit-daily-remaining",
        "x-daily-requests-left",
        "x-daily-ratelimit-token-remaining",
    )
    if daily is not None and daily <= 0:
        return DAILY_EXHAUSTED_PAUSE
    sf = h.get("sforce-limit-info", "")
    if sf.startswith("api-usage="):
        used, _, limit = sf.removeprefix("api-usage=").partition("/")
        try:
            if int(limit) > 0 and int(used) >= int(limit):
                return DAILY_EXHAUSTED_PAUSE
        except ValueError:
            return None
    return None


class Limiter:
    """Concurrency + requests-per-second budget for one writer, paused by CRM signals."""

    def __init__(
        self,
        rate: float,
        concurrency: int,
        *,
        max_wait: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or concurrency < 1:
            raise ValueError(
                f"limiter needs rate > 0 and concurrency >= 1, got {rate}, {concurrency}"
            )
        # A bucket of at least one token per period keeps fractional rates (0.5/s) working.
        burst = max(1.0, rate)
        self._bucket = AsyncLimiter(burst, burst / rate)
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._paused_until = 0.0
        self.max_wait = max_wait
        self.rate = rate
        self.concurrency = concurrency

    def blocked_for(self) -> float:
        """Seconds until the CRM's window reopens (0 when requests may go now)."""
        return max(self._paused_until - self._clock(), 0.0)

    def pause(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (a 429, or an exhausted window)."""
        self._paused_until = max(self._paused_until, self._clock() + max(seconds, 0.0))

    def observe(self, headers: Mapping[str, str]) -> None:
        """Feed the rate-limit headers of an answer."""
        pause = pause_from_headers(headers)
        if pause:
            self.pause(pause)

    async def acquire(self) -> None:
        """Wait for a concurrency slot, a bucket token and the end of any short pause."""
        await self._slots.acquire()
        try:
            wait = self.blocked_for()
            if 0 < wait <= self.max_wait:
                await asyncio.sleep(wait)
            await self._bucket.acquire()
        except BaseException:
            self._slots.release()
            raise

    def release(self) -> None:
        self._slots.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
