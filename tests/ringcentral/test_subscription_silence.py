"""A busy WebSocket that falls silent is replaced while a recovery still replays it all.

The gateway replays at most `recoveryBufferSize` notifications after a recovery (research
A8). The chaos soak (issue 19) found a silent connection of a busy account noticed only
after the heartbeat schedule's minute: every notification but the last 100 of that minute
was lost, and each of those calls came from the call log instead of live. The watchdog now
probes a busy stream with a WebSocket ping once its quiet outlasts a share of the time the
buffer takes to fill (`ringcentral/watchdog.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.ringcentral.harness import Calls, Client, Pipeline, client, simulator, wait_for

from sscl_daemon.ringcentral.subscription import Item, RawNotification
from sscl_daemon.ringcentral.watchdog import Watchdog
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.scenarios import CallKind

# The daemon's defaults (config/schema.py): a heartbeat after a minute without a frame.
HEARTBEAT = 60.0
DEAD_AFTER = 120.0
# Seconds a pipeline holds notifications back: longer than a probe and its answer.
HELD_BACK = 6.0


@contextlib.asynccontextmanager
async def steady(sim: Simulator, calls: Calls, every: float) -> AsyncIterator[None]:
    """A call placed every ``every`` seconds while the block runs."""

    async def place() -> None:
        while True:
            calls.place(1, CallKind.INBOUND_ANSWERED)
            await asyncio.sleep(every)

    task = asyncio.create_task(place())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_busy_stream_that_falls_silent_is_replaced_before_the_replay_buffer_fills() -> None:
    async with (
        simulator() as sim,
        client(sim, heartbeat_interval=HEARTBEAT, dead_connection_timeout=DEAD_AFTER) as made,
        Pipeline(sim, made) as pipe,
    ):
        await pipe.streaming()
        calls = Calls(sim)
        stats = pipe.subscription.stats
        async with steady(sim, calls, every=0.3):
            await wait_for(lambda: pipe.notifications > 40, "a busy stream")
            assert sim.silence_websocket() == 1
            # well before the minute of the heartbeat schedule
            await wait_for(lambda: stats.dead_connections == 1, "the silent connection's end")
            await wait_for(lambda: stats.recoveries == 1, "the recovery")
        await pipe.logged(calls.expected())
        assert stats.probes >= 1
        assert stats.heartbeats == 0
        # the replay held everything the silence kept back: nothing for the call log
        assert pipe.gaps == []


async def test_a_stalled_platform_keeps_the_socket_and_its_held_back_frames() -> None:
    # A recovery would replay only 20 of the frames the pause holds back.
    async with (
        simulator(recovery_buffer_size=20) as sim,
        client(sim, heartbeat_interval=HEARTBEAT, dead_connection_timeout=DEAD_AFTER) as made,
        Pipeline(sim, made) as pipe,
    ):
        await pipe.streaming()
        calls = Calls(sim)
        stats = pipe.subscription.stats
        async with steady(sim, calls, every=0.3):
            await wait_for(lambda: pipe.notifications > 40, "a busy stream")
            # Nothing answers (frames, pongs, REST) for 8 s; the frames wait, then come.
            sim.pause(8.0)
            await wait_for(lambda: stats.stalls >= 1, "the platform found stalled")
        await pipe.logged(calls.expected())
        assert stats.probes >= 1
        assert stats.dead_connections == 0
        assert stats.recoveries == 0
        assert pipe.gaps == []


class HeldBack(Pipeline):
    """A pipeline that stops taking notifications while ``open`` is clear, as the daemon's
    does when the store cannot commit (its queue is bounded): the frames wait unread."""

    def __init__(self, sim: Simulator, made: Client) -> None:
        super().__init__(sim, made)
        self.open = asyncio.Event()
        self.open.set()

    async def handle(self, item: Item) -> None:
        if isinstance(item, RawNotification):
            await self.open.wait()
        await super().handle(item)


async def test_a_stream_held_back_by_its_own_pipeline_is_not_silence() -> None:
    # A recovery would replay only 20 of the frames waiting unread.
    async with (
        simulator(recovery_buffer_size=20) as sim,
        client(sim, heartbeat_interval=HEARTBEAT, dead_connection_timeout=DEAD_AFTER) as made,
        HeldBack(sim, made) as pipe,
    ):
        await pipe.streaming()
        calls = Calls(sim)
        stats = pipe.subscription.stats
        async with steady(sim, calls, every=0.3):
            await wait_for(lambda: pipe.notifications > 40, "a busy stream")
            pipe.open.clear()
            # held back for longer than a probe and its answer take
            asyncio.get_running_loop().call_later(HELD_BACK, pipe.open.set)
            await wait_for(pipe.open.is_set, "the pipeline taking notifications again", 15.0)
        await pipe.logged(calls.expected())
        assert stats.dead_connections == 0
        assert stats.recoveries == 0
        assert pipe.gaps == []


async def test_a_busy_stream_probe_without_a_pong_is_silence() -> None:
    probes: list[float] = []
    aborts: list[float] = []
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(
        HEARTBEAT,
        DEAD_AFTER,
        lambda: None,
        lambda: aborts.append(loop.time()),
        probe=lambda: probes.append(loop.time()),
    )
    try:
        for _ in range(50):  # a frame every 10 ms: a busy stream
            watchdog.saw_frame()
            watchdog.reading()
            await asyncio.sleep(0.01)
        quiet_from = watchdog.last_frame
        quiet = watchdog.probe_after()
        assert quiet is not None
        assert quiet < HEARTBEAT
        await wait_for(lambda: bool(aborts), "the silent connection's end", limit=15.0)
        assert watchdog.silent
        assert len(probes) == 1
        assert probes[0] - quiet_from >= quiet
        assert aborts[0] - probes[0] >= watchdog.probe_answer()
    finally:
        watchdog.cancel()


async def test_an_answered_probe_slows_the_pace_back_to_the_heartbeat_schedule() -> None:
    watchdog: Watchdog | None = None
    probes: list[float] = []
    aborts: list[float] = []

    def answered() -> None:
        probes.append(1)
        assert watchdog is not None
        watchdog.answered()  # the pong: the peer is there, only quiet

    heartbeat = 5.0  # short, so that the pace passes it within a few probes
    watchdog = Watchdog(
        heartbeat, DEAD_AFTER, lambda: None, lambda: aborts.append(1), probe=answered
    )
    try:
        for _ in range(50):
            watchdog.saw_frame()
            watchdog.reading()
            await asyncio.sleep(0.01)
        assert watchdog.probe_after() is not None
        await wait_for(lambda: watchdog.probe_after() is None, "the heartbeat schedule", limit=20.0)
        assert probes
        assert aborts == []
        assert not watchdog.silent
    finally:
        watchdog.cancel()


async def test_a_quiet_account_is_not_probed() -> None:
    watchdog = Watchdog(HEARTBEAT, DEAD_AFTER, lambda: None, lambda: None, probe=lambda: None)
    try:
        assert watchdog.probe_after() is None  # no frame yet: nothing to judge by
        watchdog.pace = 3.0  # an event every few seconds: a buffer lasts minutes
        assert watchdog.probe_after() is None
    finally:
        watchdog.cancel()


async def test_the_platform_decides_what_an_unanswered_probe_means() -> None:
    asked: list[float] = []
    aborts: list[float] = []
    loop = asyncio.get_running_loop()
    watchdog = Watchdog(
        HEARTBEAT,
        DEAD_AFTER,
        lambda: None,
        lambda: aborts.append(loop.time()),
        probe=lambda: None,
        verify=lambda: asked.append(loop.time()),
    )
    try:
        for _ in range(50):
            watchdog.saw_frame()
            watchdog.reading()
            await asyncio.sleep(0.01)
        busy = watchdog.probe_after()
        await wait_for(lambda: bool(asked), "the platform asked", limit=15.0)
        # nothing answers at all: a stall, the socket is kept and probed less often
        watchdog.verdict(platform_answers=False)
        assert aborts == []
        assert not watchdog.silent
        later = watchdog.probe_after()
        assert busy is not None
        assert later is None or later > busy
        # the next unanswered probe while the platform answers: silence
        await wait_for(lambda: len(asked) == 2, "the platform asked again", limit=30.0)
        watchdog.verdict(platform_answers=True)
        assert watchdog.silent
        assert len(aborts) == 1
    finally:
        watchdog.cancel()
