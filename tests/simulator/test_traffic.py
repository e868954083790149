"""Load generator: rate, concurrency cap, determinism, independence from the window cut."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, SimCall
from sscl_daemon.simulator.traffic import Traffic

ORG = Organisation.build(7)
T0 = datetime(2026, 5, 4, 8, 0, 0, tzinfo=UTC)


def _traffic(rate: float, seed: int = 1, max_concurrent: int | None = None) -> Traffic:
    return Traffic(CallFactory(ORG, 2, time_scale=0.05), rate, seed, max_concurrent)


def _windows(traffic: Traffic, seconds: int, step_s: float) -> list[SimCall]:
    calls: list[SimCall] = []
    t = T0
    end = T0 + timedelta(seconds=seconds)
    while t < end:
        t1 = min(end, t + timedelta(seconds=step_s))
        calls.extend(traffic.calls_between(t, t1))
        t = t1
    return calls


@pytest.mark.parametrize("rate", [0.5, 4.0, 40.0])
def test_rate_is_respected(rate: float) -> None:
    seconds = 120
    calls = _traffic(rate).calls_between(T0, T0 + timedelta(seconds=seconds))
    mean = rate * seconds
    assert abs(len(calls) - mean) <= 4 * math.sqrt(mean), (len(calls), mean)
    starts = [c.start for c in calls]
    assert starts == sorted(starts)
    assert all(T0 <= s < T0 + timedelta(seconds=seconds) for s in starts)


def test_same_seed_same_stream_and_window_cut_does_not_matter() -> None:
    whole = _traffic(6.0).calls_between(T0, T0 + timedelta(seconds=30))
    cut = _windows(_traffic(6.0), 30, 0.37)
    assert whole == cut
    assert [
        c.start for c in _traffic(6.0, seed=2).calls_between(T0, T0 + timedelta(seconds=30))
    ] != [c.start for c in whole]


def test_concurrency_cap_is_respected() -> None:
    limit = 5
    traffic = _traffic(3.0, max_concurrent=limit)
    calls = _windows(traffic, 120, 1.0)
    assert calls
    assert traffic.turned_away > 0
    spans = [(c.start, c.start + timedelta(milliseconds=c.end_offset_ms)) for c in calls]
    for start, _ in spans:
        going = sum(1 for s, e in spans if s <= start < e)
        assert going <= limit
    assert max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans) == limit


def test_window_after_a_gap_skips_and_going_back_is_refused() -> None:
    traffic = _traffic(5.0)
    traffic.calls_between(T0, T0 + timedelta(seconds=2))
    later = traffic.calls_between(T0 + timedelta(seconds=10), T0 + timedelta(seconds=12))
    assert all(c.start >= T0 + timedelta(seconds=10) for c in later)
    with pytest.raises(ValueError, match="consecutive windows"):
        traffic.calls_between(T0, T0 + timedelta(seconds=1))


@pytest.mark.parametrize(("rate", "cap"), [(0.0, None), (-1.0, None), (1.0, 0)])
def test_bad_knobs_are_named(rate: float, cap: int | None) -> None:
    with pytest.raises(ValueError, match=r"calls_per_second|max_concurrent"):
        _traffic(rate, max_concurrent=cap)
