"""Supervision: crashed tasks restart with growing jittered delays; fatal errors stop."""

from __future__ import annotations

import random

import pytest

from sscl_daemon import metrics
from sscl_daemon.backoff import backoff_delay
from sscl_daemon.daemon.supervise import Backoff, FatalError, supervise


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"crash {self.calls}")


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def test_backoff_doubles_within_bounds() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(1, 12)]
    assert all(1.0 <= d <= 60.0 for d in delays)
    assert delays[0] == 1.0  # the first step is clamped up to the initial delay
    assert 4.0 <= delays[3] <= 8.0  # step 8, jitter keeps the upper half
    assert delays[-1] == 60.0
    assert backoff_delay(10_000, 1.0, 60.0, rng) <= 60.0


def test_backoff_is_jittered() -> None:
    rng = random.Random(3)
    assert len({backoff_delay(6, 1.0, 900.0, rng) for _ in range(20)}) > 10


async def test_crashed_task_is_restarted_with_backoff() -> None:
    task, sleeps = Flaky(failures=3), Sleeps()
    before = metrics.TASK_RESTARTS.labels(task="flaky")._value.get()
    await supervise(
        "flaky",
        task,
        backoff=Backoff(initial=0.5, maximum=30.0),
        rng=random.Random(1),
        sleep=sleeps,
    )
    assert task.calls == 4
    assert len(sleeps.delays) == 3
    assert sleeps.delays[0] == 0.5
    assert 0.5 <= sleeps.delays[1] <= 1.0
    assert 1.0 <= sleeps.delays[2] <= 2.0
    assert metrics.TASK_RESTARTS.labels(task="flaky")._value.get() == before + 3


async def test_a_healthy_run_resets_the_backoff() -> None:
    task, sleeps = Flaky(failures=4), Sleeps()
    await supervise(
        "reset",
        task,
        backoff=Backoff(initial=1.0, maximum=100.0, healthy_after=0.0),
        rng=random.Random(1),
        sleep=sleeps,
    )
    assert sleeps.delays == [1.0, 1.0, 1.0, 1.0]


class BadCredentials(Exception):
    pass


async def test_fatal_error_is_not_retried() -> None:
    calls = 0

    async def task() -> None:
        nonlocal calls
        calls += 1
        raise BadCredentials("invalid_grant: the JWT was rejected")

    sleeps = Sleeps()
    with pytest.raises(FatalError, match="rc: invalid_grant"):
        await supervise("rc", task, fatal=(BadCredentials,), sleep=sleeps)
    assert calls == 1
    assert sleeps.delays == []
