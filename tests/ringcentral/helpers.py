"""Shared test helpers for the RingCentral client tests: a fake clock and settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from sscl_daemon.config import RingCentralSettings, Secret
from sscl_daemon.ringcentral.ratelimit import Budget, GroupLimiter, RateGroup
from sscl_daemon.ringcentral.retry import RetryPolicy

SERVER = "https://platform.example.test"
CLIENT_SECRET = "client-secret-value-1234"
JWT = "eyJhbGciOiJSUzI1NiJ9.jwt-assertion-value.signature"


def settings(server: str = SERVER, **changes: float) -> RingCentralSettings:
    return RingCentralSettings(
        server=server,
        client_id="client-id",
        client_secret=Secret(CLIENT_SECRET),
        jwt=Secret(JWT),
        request_timeout=5.0,
        **changes,  # type: ignore[arg-type]
    )


@dataclass
class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def roomy_limiter(clock: FakeClock) -> GroupLimiter:
    """Budgets far above what a test sends, on the fake clock."""
    budgets = {group: Budget(10_000, 60.0) for group in RateGroup}
    return GroupLimiter(budgets, clock=clock, sleep=clock.sleep)


def fast_retry(clock: FakeClock, attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, initial=0.01, maximum=0.05, sleep=clock.sleep)
