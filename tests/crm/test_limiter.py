"""The per-writer limiter: concurrency, token bucket and pauses from CRM headers."""

from __future__ import annotations

import asyncio

import pytest

from sscl_daemon.crm.limiter import DAILY_EXHAUSTED_PAUSE, Limiter, pause_from_headers


@pytest.mark.parametrize(
    ("headers", "pause"),
    [
        (
            {"x-ratelimit-limit": "40", "x-ratelimit-remaining": "39", "x-ratelimit-reset": "2"},
            None,
        ),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2"}, 2.0),
        ({"RateLimit-Remaining": "0"}, 1.0),
        (
            {
                "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
            10.0,
        ),
        ({"X-HubSpot-RateLimit-Daily-Remaining": "0"}, DAILY_EXHAUSTED_PAUSE),
        ({"x-daily-requests-left": "0"}, DAILY_EXHAUSTED_PAUSE),
        ({"x-daily-ratelimit-token-remaining": "0"}, DAILY_EXHAUSTED_PAUSE),
        ({"x-daily-ratelimit-token-remaining": "5120"}, None),
        ({"Sforce-Limit-Info": "api-usage=25/5000"}, None),
        ({"Sforce-Limit-Info": "api-usage=5000/5000"}, DAILY_EXHAUSTED_PAUSE),
        ({"x-ratelimit-remaining": "garbage"}, None),
    ],
)
def test_pause_from_headers(headers: dict[str, str], pause: float | None) -> None:
    assert pause_from_headers(headers) == pause


async def test_concurrency_is_bounded() -> None:
    limiter = Limiter(rate=1000, concurrency=2)
    active = 0
    peak = 0
    release = asyncio.Event()
    two_in = asyncio.Event()

    async def job() -> None:
        nonlocal active, peak
        async with limiter.slot():
            active += 1
            peak = max(peak, active)
            if active == 2:
                two_in.set()
            await release.wait()
            active -= 1

    tasks = [asyncio.create_task(job()) for _ in range(5)]
    async with asyncio.timeout(5):
        await two_in.wait()
    # Give the three waiting tasks every chance to (wrongly) get in.
    for _ in range(10):
        await asyncio.sleep(0)
    assert active == 2
    release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(*tasks)
    assert peak == 2


def test_observe_and_pause_with_clock() -> None:
    now = [100.0]
    limiter = Limiter(rate=10, concurrency=1, clock=lambda: now[0])
    assert limiter.blocked_for() == 0
    limiter.observe({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"})
    assert limiter.blocked_for() == pytest.approx(2.0)
    limiter.pause(30)
    assert limiter.blocked_for() == pytest.approx(30.0)
    now[0] = 140.0
    assert limiter.blocked_for() == 0


def test_bad_settings_rejected() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        Limiter(rate=0, concurrency=1)
