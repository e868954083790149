"""The reconciler against the simulator: windows, throttling, sessions whose end was missed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.ringcentral.harness import Calls, Pipeline, client, simulator, wait_for

from sscl_daemon.calls.policy import SkipReason
from sscl_daemon.ringcentral.ratelimit import RateGroup
from sscl_daemon.ringcentral.subscription import Gap, GapReason
from sscl_daemon.simulator.scenarios import CallKind


async def test_gap_window_gives_every_call_and_the_policy_reasons() -> None:
    async with simulator() as sim, client(sim) as made, Pipeline(sim, made) as pipe:
        start = datetime.now(UTC)
        calls = Calls(sim, seed=9)
        placed = calls.place(10) + calls.place(2, CallKind.INTERNAL)
        await sim.wait_idle()
        # the call log is Heavy: a 429 closes the group for Retry-After, then it goes on
        sim.fail_rest("/restapi/v1.0/account/~/call-log", 429, count=1, retry_after_s=1)
        gap = Gap(start, datetime.now(UTC), GapReason.NO_RECOVERY_TOKEN)
        resolution = await pipe.reconciler().close_gap(gap)
        batch = resolution.batch
        assert sorted(c.key for c in batch.calls) == sorted(calls.expected(placed))
        assert batch.errors == ()
        assert {d.reason for d in batch.skipped} == {SkipReason.INTERNAL_CALL}
        assert made.limiter.waited[RateGroup.HEAVY] >= 0.9


async def test_sessions_whose_end_was_missed_are_resolved() -> None:
    async with simulator() as sim, client(sim) as made, Pipeline(sim, made) as pipe:
        calls = Calls(sim, seed=4)
        [long_call] = calls.place(1, CallKind.INBOUND_ANSWERED)
        tsid = long_call.telephony_session_ids[0]
        reconciler = pipe.reconciler()
        await wait_for(lambda: tsid in sim.engine.live, "the call to start")
        # while the call goes on the session exists: nothing to do yet
        live = await reconciler.resolve_sessions([tsid])
        assert live.active == (tsid,)
        assert live.batch.calls == ()
        await sim.wait_idle()
        ended = await reconciler.resolve_sessions([tsid, "s-unknown"])
        assert ended.ended == (tsid,)
        assert ended.unresolved == ("s-unknown",)
        assert [c.key for c in ended.batch.calls] == sorted(calls.expected())


async def test_close_gap_also_resolves_in_flight_sessions_older_than_the_window() -> None:
    async with simulator() as sim, client(sim) as made, Pipeline(sim, made) as pipe:
        calls = Calls(sim, seed=5)
        calls.place(2, CallKind.OUTBOUND_ANSWERED)
        await sim.wait_idle()
        in_flight = [c.telephony_session_ids[0] for c in calls.placed]
        later = datetime.now(UTC) + timedelta(minutes=5)
        gap = Gap(later, later, GapReason.RECOVERY_FAILED)
        reconciler = pipe.reconciler()
        # the window lies after the calls: only the in-flight lookup can find them
        reconciler._now = lambda: later + timedelta(seconds=1)  # type: ignore[method-assign]
        resolution = await reconciler.close_gap(gap, in_flight)
        assert sorted(c.key for c in resolution.batch.calls) == sorted(calls.expected())
        assert resolution.ended == tuple(in_flight)
