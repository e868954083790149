"""Gaps: failed recovery closed by the reconciler, restarts inside and after the window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.ringcentral.harness import Calls, Pipeline, client, simulator, wait_for

from sscl_daemon.calls.model import CallSource
from sscl_daemon.ringcentral.subscription import GapReason, RecoveryPoint
from sscl_daemon.store import Store

ACCOUNT = "acme"
WRITERS = ("crm",)


class Gate:
    """Holds the subscription's reconnect until the test opens it."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.open.wait()


async def test_failed_recovery_gap_is_closed_by_the_reconciler(store: Store) -> None:
    gate = Gate()
    async with simulator() as sim, client(sim) as made, Pipeline(sim, made, gate=gate) as pipe:
        await pipe.streaming()
        calls = Calls(sim)
        before = calls.place(5)
        await pipe.logged(calls.expected(before))
        # the connection dies; while it is down calls happen; the recovery is then refused
        gate.open.clear()
        await sim.drop_websocket(abrupt=True)
        await wait_for(lambda: not sim.gateway.connections, "the drop")
        during = calls.place(8)
        await sim.wait_idle()
        sim.refuse_recovery()
        gate.open.set()
        await wait_for(lambda: len(pipe.gaps) == 1, "a gap")
        after = calls.place(4)
        await pipe.logged(calls.expected(after))
        await sim.wait_idle()

        [gap] = pipe.gaps
        assert gap.reason is GapReason.RECOVERY_FAILED
        assert gap.start < gap.end
        live = pipe.keys()
        assert not set(live) & calls.expected(during), "those events were lost"
        resolution = await pipe.reconciler().close_gap(gap)
        reconciled = [call.key for call in resolution.batch.calls]
        assert {call.source for call in resolution.batch.calls} == {CallSource.CALL_LOG}
        assert calls.expected(during) <= set(reconciled)

        # both paths go to the outbox; the overlap (calls in the window's margins) is one row
        await store.commit_batch(ACCOUNT, pipe.calls, WRITERS, None)
        await store.commit_batch(ACCOUNT, list(resolution.batch.calls), WRITERS, None)
        rows = await store.outbox_rows(ACCOUNT)
        assert sorted(row.call_key for row in rows) == sorted(calls.expected())
        assert len(live) == len(set(live))


async def test_restart_inside_the_window_resumes_with_the_persisted_token() -> None:
    async with simulator() as sim:
        calls = Calls(sim)
        async with client(sim) as made, Pipeline(sim, made) as first:
            await first.streaming()
            early = calls.place(3)
            await first.logged(calls.expected(early))
            await first.stop()
            point = first.points[-1]
            refresh = made.tokens[-1].refresh_token
        # the daemon is down: calls happen
        down = calls.place(5)
        await sim.wait_idle()
        stored = RecoveryPoint.from_stored(
            point.token, point.expires_at, point.oauth_session, point.recovery_timeout
        )
        async with (
            client(sim, refresh_token=refresh) as made2,
            Pipeline(sim, made2, recovery=stored) as second,
        ):
            await second.logged(calls.expected(down))
            assert second.subscription.stats.recoveries == 1
            assert second.gaps == []
            assert made2.auth.logins == 0, "the stored refresh token kept the OAuth session"
            assert made2.auth.session_id == point.oauth_session
            assert sorted(second.keys()) == sorted(calls.expected(down))


async def test_restart_after_the_window_reports_the_gap_since_last_seen() -> None:
    async with simulator() as sim, client(sim) as made:
        last_seen = datetime.now(UTC) - timedelta(seconds=5)
        expired = RecoveryPoint("A" * 32, 5, last_seen, recovery_timeout=1.0)
        async with Pipeline(sim, made, recovery=expired) as pipe:
            await wait_for(lambda: len(pipe.gaps) == 1, "a gap")
            [gap] = pipe.gaps
            assert gap.reason is GapReason.RECOVERY_WINDOW_PASSED
            assert gap.start == last_seen
            assert pipe.subscription.stats.recoveries == 0


async def test_restart_in_another_oauth_session_fails_recovery_and_reports_a_gap() -> None:
    async with simulator() as sim:
        async with client(sim) as made, Pipeline(sim, made) as first:
            await first.streaming()
            await first.stop()
            point = first.points[-1]
        async with client(sim) as made2, Pipeline(sim, made2, recovery=point) as second:
            await wait_for(lambda: len(second.gaps) == 1, "a gap")
            [gap] = second.gaps
            assert gap.reason is GapReason.RECOVERY_FAILED
            assert gap.detail == "WSG-1003"
            assert gap.start == point.last_seen


async def test_recovery_replay_cut_short_by_its_buffer_is_a_gap(store: Store) -> None:
    gate = Gate()
    async with (
        simulator(recovery_buffer_size=5) as sim,
        client(sim) as made,
        Pipeline(sim, made, gate=gate) as pipe,
    ):
        await pipe.streaming()
        calls = Calls(sim)
        await pipe.logged(calls.expected(calls.place(2)))
        gate.open.clear()
        await sim.drop_websocket(abrupt=False)
        await wait_for(lambda: not sim.gateway.connections, "the drop")
        during = calls.place(4)  # dozens of notifications, the gateway keeps the last 5
        await sim.wait_idle()
        gate.open.set()
        await wait_for(lambda: len(pipe.gaps) == 1, "a gap")
        [gap] = pipe.gaps
        assert gap.reason is GapReason.REPLAY_INCOMPLETE
        assert pipe.subscription.stats.recoveries == 1
        resolution = await pipe.reconciler().close_gap(gap)
        await store.commit_batch(ACCOUNT, pipe.calls, WRITERS, None)
        await store.commit_batch(ACCOUNT, list(resolution.batch.calls), WRITERS, None)
        rows = await store.outbox_rows(ACCOUNT)
        assert calls.expected(during) <= {row.call_key for row in rows}
