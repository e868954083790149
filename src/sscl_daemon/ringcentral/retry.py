"""Retry policy for every HTTP call to RingCentral (token endpoint and REST API).

`auth.py` and `rest.py` raise `Retryable` for what is worth another try (5xx, 429, connection
errors, timeouts); `with_retries` runs the attempt under tenacity with jittered exponential
backoff, except when the server named the wait itself (`Retry-After`): then the caller's
`GroupLimiter` holds the next attempt back for exactly that long. All waits go through an injectable `sleep` so tests run in milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from sscl_daemon.errors import SsclError
from sscl_daemon.ringcentral.ratelimit import Sleep

T = TypeVar("T")


class Retryable(SsclError):
    """A failed attempt that may succeed later; `delay` is the server's own wait, if given."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class RetriesExhausted(SsclError):
    """Every attempt failed with a transient error; the last one is the message."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial: float = 0.5
    maximum: float = 30.0
    sleep: Sleep = asyncio.sleep


async def with_retries(policy: RetryPolicy, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` until it returns, retrying `Retryable` failures under `policy`."""
    backoff = wait_random_exponential(multiplier=policy.initial, max=policy.maximum)

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, Retryable) and error.delay is not None:
            # The server named the wait: the caller has closed the rate group for that long
            # (so concurrent requests wait too) and the next attempt waits in the limiter.
            return 0.0
        return float(backoff(state))

    async def sleep(seconds: float) -> None:
        if seconds > 0:
            await policy.sleep(seconds)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=retry_if_exception_type(Retryable),
        sleep=sleep,
        reraise=True,
    )
    try:
        async for trial in retrying:
            with trial:
                return await attempt()
    except Retryable as exc:
        raise RetriesExhausted(f"gave up after {policy.max_attempts} attempts: {exc}") from None
    raise AssertionError("unreachable: tenacity either returns or raises")
