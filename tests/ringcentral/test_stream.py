"""The subscription against the simulator: streaming, token expiry, 429, drops, recovery."""

from __future__ import annotations

import asyncio
import json
import time

from tests.ringcentral.harness import Calls, Pipeline, client, simulator, wait_for

from sscl_daemon.ringcentral.ratelimit import RateGroup
from sscl_daemon.ringcentral.subscription import (
    ConnectionState,
    GapReason,
    RawNotification,
    RecoveryPoint,
    StateChange,
)
from sscl_daemon.ringcentral.watchdog import Watchdog
from sscl_daemon.simulator.profiles import RateGroup as SimRateGroup
from sscl_daemon.simulator.profiles import RateLimit
from sscl_daemon.simulator.scenarios import CallKind


class Gate:
    """Holds the subscription's reconnect until the test opens it."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    async def __call__(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self.open.wait()


def _stored(point: RecoveryPoint) -> RecoveryPoint:
    """The point as a restarted daemon reads it back from the store."""
    return RecoveryPoint.from_stored(
        point.token,
        point.expires_at,
        point.oauth_session,
        point.recovery_timeout,
        sequence=point.sequence,
    )


async def test_restart_recovery_with_the_stored_sequence_tells_complete_from_short() -> None:
    # three logins and ws tokens within a minute: more than the Auth group's 5/min
    roomy = {group: RateLimit(1000) for group in SimRateGroup}
    async with simulator(recovery_buffer_size=5, rate_limits=roomy) as sim:
        calls = Calls(sim)
        async with client(sim) as made, Pipeline(sim, made) as first:
            await first.streaming()
            await first.logged(calls.expected(calls.place(2)))
            await first.stop()
            quiet = first.points[-1]
            refresh = made.tokens[-1].refresh_token
        assert quiet.sequence > 0
        # down, nothing happens: the replay is complete, no gap
        async with (
            client(sim, refresh_token=refresh) as made2,
            Pipeline(sim, made2, recovery=_stored(quiet)) as second,
        ):
            await second.streaming()
            assert second.subscription.stats.recoveries == 1
            await second.logged(calls.expected(calls.place(1)))
            await second.stop()
            point = second.points[-1]
            refresh = made2.tokens[-1].refresh_token
        assert second.gaps == []
        # down while calls happen: dozens of notifications, the gateway keeps the last 5
        calls.place(4)
        await sim.wait_idle()
        async with (
            client(sim, refresh_token=refresh) as made3,
            Pipeline(sim, made3, recovery=_stored(point)) as third,
        ):
            await wait_for(lambda: len(third.gaps) == 1, "a gap")
            [gap] = third.gaps
            assert gap.reason is GapReason.REPLAY_INCOMPLETE
            assert gap.start == point.last_seen
            assert third.subscription.stats.recoveries == 1


async def test_a_huge_sequence_does_not_hide_an_incomplete_replay() -> None:
    gate = Gate()
    async with (
        simulator(recovery_buffer_size=5) as sim,
        client(sim) as made,
        Pipeline(sim, made, gate=gate) as pipe,
    ):
        await pipe.streaming()
        calls = Calls(sim)
        await pipe.logged(calls.expected(calls.place(2)))
        point = pipe.subscription.recovery_point
        subscription = sim.gateway.current_subscription()
        assert point is not None
        assert point.token is not None
        assert subscription is not None
        seen = pipe.notifications
        hostile = [
            {
                "type": "ServerNotification",
                "messageId": "hostile-1",
                "status": 200,
                "wsc": {"token": point.token, "sequence": 10**15},
            },
            {"uuid": "hostile-1", "subscriptionId": subscription.id, "body": {}},
        ]
        sim.push_raw_frame(json.dumps(hostile))
        await wait_for(lambda: pipe.notifications > seen, "the hostile frame")
        gate.open.clear()
        await sim.drop_websocket(abrupt=True)
        await wait_for(lambda: not sim.gateway.connections, "the drop")
        calls.place(4)
        await sim.wait_idle()
        gate.open.set()
        await wait_for(lambda: len(pipe.gaps) == 1, "a gap")
        [gap] = pipe.gaps
        assert gap.reason is GapReason.REPLAY_INCOMPLETE
        assert pipe.subscription.stats.recoveries == 1
        assert (pipe.subscription.recovery_point or point).sequence < 10**6


async def test_calls_stream_live_and_complete_once() -> None:
    async with simulator() as sim, client(sim) as made, Pipeline(sim, made) as pipe:
        await pipe.streaming()
        calls = Calls(sim)
        calls.place(12)
        await pipe.logged(calls.expected())
        await sim.wait_idle()
        assert sorted(pipe.keys()) == sorted(calls.expected())
        assert pipe.gaps == []
        assert pipe.bad_events == 0
        assert pipe.states[0] is ConnectionState.SUBSCRIBED
        assert pipe.points, "the recovery token was handed to the persistence callback"
        assert pipe.points[-1].oauth_session == made.auth.session_id


async def test_token_expiry_mid_stream_refreshes_and_recovers() -> None:
    async with simulator() as sim, client(sim) as made, Pipeline(sim, made) as pipe:
        await pipe.streaming()
        calls = Calls(sim)
        first = calls.place(4)
        await pipe.logged(calls.expected(first))
        # every access and ws token dies; the next connection needs a refresh (not a login)
        sim.expire_tokens()
        await sim.drop_websocket(abrupt=False)
        second = calls.place(6)
        await pipe.logged(calls.expected())
        assert made.auth.logins == 1
        assert made.auth.refreshes >= 1
        assert pipe.subscription.stats.recoveries == 1
        assert pipe.gaps == []
        assert sorted(pipe.keys()) == sorted(calls.expected(first + second))


async def test_wstoken_429_waits_for_retry_after() -> None:
    async with simulator() as sim, client(sim) as made, Pipeline(sim, made) as pipe:
        await pipe.streaming()
        sim.fail_rest("/restapi/oauth/wstoken", 429, count=1, retry_after_s=1)
        # the cached ws token dies too: the refused handshake makes the client ask for one
        sim.gateway.expire_ws_tokens()
        await sim.drop_websocket(abrupt=True)
        await wait_for(lambda: pipe.subscription.stats.recoveries == 1, "a recovery")
        # the Auth group was closed for the full Retry-After before the next wstoken request
        assert made.limiter.waited[RateGroup.AUTH] >= 0.9
        calls = Calls(sim)
        calls.place(3)
        await pipe.logged(calls.expected())
        assert pipe.gaps == []


async def test_clean_and_abrupt_drops_lose_nothing_and_repeat_nothing() -> None:
    async with (
        simulator(recovery_replay_overlap=3) as sim,
        client(sim) as made,
        Pipeline(sim, made) as pipe,
    ):
        await pipe.streaming()
        calls = Calls(sim)
        stats = pipe.subscription.stats
        for round_, abrupt in enumerate((False, True, False, True)):
            seen = pipe.notifications
            calls.place(5)
            await wait_for(lambda: pipe.notifications > seen, "traffic")  # noqa: B023
            assert await sim.drop_websocket(abrupt=abrupt) == 1
            await wait_for(lambda: stats.recoveries == round_ + 1, "a recovery")  # noqa: B023
        await pipe.logged(calls.expected())
        await sim.wait_idle()
        keys = pipe.keys()
        assert sorted(keys) == sorted(calls.expected()), "every call once, no duplicate"
        assert stats.recoveries == 4
        assert pipe.gaps == []
        assert pipe.tracker.counters().duplicates >= 1, "the replay overlap was de-duplicated"


async def test_silent_connection_is_detected_and_replaced() -> None:
    async with simulator() as sim, client(sim) as made, Pipeline(sim, made) as pipe:
        await pipe.streaming()
        assert sim.silence_websocket() == 1
        calls = Calls(sim)
        calls.place(4, CallKind.INBOUND_ANSWERED)
        await pipe.logged(calls.expected())
        stats = pipe.subscription.stats
        assert stats.dead_connections == 1
        assert stats.heartbeats >= 1
        assert stats.recoveries == 1
        assert pipe.gaps == []


async def test_idle_timeout_error_frame_reconnects_with_recovery() -> None:
    async with (
        simulator(idle_timeout_s=0.5) as sim,
        client(sim, heartbeat_interval=5.0, dead_connection_timeout=10.0) as made,
        Pipeline(sim, made) as pipe,
    ):
        await pipe.streaming()
        await wait_for(lambda: pipe.subscription.stats.recoveries >= 1, "WSG-902 and a recovery")
        calls = Calls(sim)
        calls.place(3)
        await pipe.logged(calls.expected())
        assert pipe.gaps == []


async def test_stream_yields_items_as_an_async_iterator() -> None:
    async with simulator() as sim, client(sim) as made:
        subscription = Pipeline(sim, made).subscription
        calls = Calls(sim)
        notifications = 0
        async for item in subscription.stream():
            if isinstance(item, StateChange) and item.state is ConnectionState.SUBSCRIBED:
                calls.place(1, CallKind.OUTBOUND_ANSWERED)
            if isinstance(item, RawNotification):
                notifications += 1
                if notifications == 3:
                    break
        assert subscription.stats.notifications >= 3


async def test_strict_platform_single_use_ws_tokens_and_replay_overlap() -> None:
    # strict: a ws token works once (a reused one is closed with 4401), replays overlap
    async with simulator(strict=True) as sim, client(sim) as made, Pipeline(sim, made) as pipe:
        await pipe.streaming()
        calls = Calls(sim)
        stats = pipe.subscription.stats
        for round_, abrupt in enumerate((True, False)):
            seen = pipe.notifications
            calls.place(4)
            await wait_for(lambda: pipe.notifications > seen, "traffic")  # noqa: B023
            assert await sim.drop_websocket(abrupt=abrupt) == 1
            await wait_for(lambda: stats.recoveries == round_ + 1, "a recovery")  # noqa: B023
        await pipe.logged(calls.expected())
        await sim.wait_idle()
        assert sorted(pipe.keys()) == sorted(calls.expected())
        assert pipe.gaps == []
        assert stats.connections >= 5, "each reused token was refused, then a new one worked"


async def test_a_stopped_process_is_not_mistaken_for_a_silent_peer() -> None:
    beats: list[float] = []
    aborts: list[float] = []
    watchdog = Watchdog(0.2, 0.5, lambda: beats.append(1), lambda: aborts.append(1))
    try:
        # The loop does not run, as under SIGSTOP, for longer than the dead timeout: frames
        # the peer sent meanwhile wait in the socket, and must be read, not thrown away.
        time.sleep(1.8)  # noqa: ASYNC251 - blocking the loop on purpose
        await wait_for(lambda: bool(beats), "the heartbeat probe")
        assert aborts == []
        assert watchdog.pauses == 1
        assert not watchdog.silent
        # a peer that then stays silent is still found dead
        await wait_for(lambda: bool(aborts), "the silent connection's end", limit=5.0)
        assert watchdog.silent
    finally:
        watchdog.cancel()


async def test_a_refused_subscription_backs_off_before_the_next_connection() -> None:
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(delay)

    async with simulator() as sim, client(sim) as made:
        sim.fail_rest("/restapi/v1.0/subscription", 503, count=3)
        async with Pipeline(sim, made, gate=sleep) as pipe:
            await pipe.streaming()
        # three refusals, three growing jittered waits (reconnect_initial_delay 0.05 s)
        assert len(waits) == 3
        assert all(wait > 0 for wait in waits)
        assert waits[2] > waits[0]


async def test_an_unanswered_heartbeat_ends_the_connection_before_the_dead_timeout() -> None:
    beats: list[float] = []
    aborts: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    watchdog = Watchdog(
        0.2, 60.0, lambda: beats.append(1), lambda: aborts.append(loop.time()), answer_within=0.3
    )
    try:
        await wait_for(lambda: bool(aborts), "the silent connection's end", limit=10.0)
        assert beats, "a heartbeat was sent first"
        assert watchdog.silent
        # a heartbeat at 0.2 s, no answer by 0.5 s: far from the 60 s dead timeout
        assert aborts[0] - started < 5.0
    finally:
        watchdog.cancel()
