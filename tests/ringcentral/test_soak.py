"""Soak: simulated traffic with a fault every few seconds; logged calls == generated calls.

Drives the simulator, the real subscription, the tracker, the reconciler and a real Postgres
outbox the way the daemon does: live calls are committed as the tracker completes them; every
gap is closed from the call log, and sessions a gap cut (`Suspects`) are taken from the call
log instead of the tracker. At the end the outbox must hold exactly the ground truth's keys.

The CI form runs about a minute. The long form (10 minutes, a fault every 20 s on average):

    SSCL_SOAK_SECONDS=600 SSCL_SOAK_FAULT_EVERY=20 .venv/bin/pytest tests/ringcentral/test_soak.py -m slow
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from tests.ringcentral.harness import Calls, Client, Pipeline, client, eventually, simulator

from sscl_daemon.calls.events import EventDecodeError, decode_event
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.ringcentral.reconcile import Suspects
from sscl_daemon.ringcentral.subscription import Gap, Item, Notification
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.store import Store

SECONDS = float(os.environ.get("SSCL_SOAK_SECONDS", "50"))
FAULT_EVERY = float(os.environ.get("SSCL_SOAK_FAULT_EVERY", "4"))
CALLS_PER_SECOND = float(os.environ.get("SSCL_SOAK_CALLS_PER_SECOND", "1.5"))
ACCOUNT = "soak"
WRITERS = ("crm",)


class Daemonish(Pipeline):
    """The daemon's handling of items, gaps and suspect sessions, on a real store."""

    def __init__(self, sim: Simulator, made: Client, store: Store) -> None:
        super().__init__(sim, made)
        self.store = store
        # sessions stay in flight until the call log settles them, never timed out here
        self.tracker = Tracker(None, TrackerOptions(completion_grace_s=0.3), self.policy)
        self.suspects = Suspects(window=120.0)
        self.committed: list[CompletedCall] = []
        self.reconciled: list[CompletedCall] = []
        self._work: set[asyncio.Task[None]] = set()
        self.errors: list[BaseException] = []

    async def commit(self, calls: list[CompletedCall]) -> None:
        if calls:
            self.committed.extend(calls)
            await self.store.commit_batch(ACCOUNT, calls, WRITERS, None)

    async def handle(self, item: Item) -> None:
        if isinstance(item, Notification):
            self.notifications += 1
            try:
                event = decode_event(item.envelope)
            except EventDecodeError:
                self.bad_events += 1
                return
            body = event.body
            self.suspects.observe(body.telephony_session_id, body.sequence, item.received_at)
            await self.commit(self.suspects.keep(self.tracker.apply(event)))
        elif isinstance(item, Gap):
            self.gaps.append(item)
            in_flight = [t for t in self.suspects.seen() if t in self.tracker]
            self.suspects.on_gap(item, in_flight)
            self._spawn(self._close(item, in_flight))
        else:
            await super().handle(item)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._work.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._work.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]

    async def _close(self, gap: Gap, in_flight: list[str]) -> None:
        resolution = await self.reconciler().close_gap(gap, in_flight)
        calls = list(resolution.batch.calls)
        self.reconciled.extend(calls)
        self.suspects.resolved(resolution.ended)
        self.suspects.resolved(c.telephony_session_id for c in calls)
        await self.commit(calls)

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            await self.commit(self.suspects.keep(self.tracker.expire(datetime.now(UTC))))

    async def _settle_suspects(self) -> None:
        reconciler = self.reconciler()
        while True:
            await asyncio.sleep(0.5)
            due, since = self.suspects.due(lambda tsid: tsid in self.tracker)
            if not due:
                continue
            resolution = await reconciler.resolve_sessions(due, since=since)
            calls = list(resolution.batch.calls)
            self.reconciled.extend(calls)
            self.suspects.resolved(resolution.ended)
            await self.commit(calls)

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.subscription.run(self.handle))
            group.create_task(self._expire())
            group.create_task(self._settle_suspects())

    async def stop(self) -> None:
        for task in list(self._work):
            task.cancel()
        await super().stop()


Fault = Callable[[Simulator], Awaitable[str]]


async def drop_clean(sim: Simulator) -> str:
    await sim.drop_websocket(abrupt=False)
    return "drop-clean"


async def drop_abrupt(sim: Simulator) -> str:
    await sim.drop_websocket(abrupt=True)
    return "drop-abrupt"


async def refused_recovery(sim: Simulator) -> str:
    sim.refuse_recovery()
    await sim.drop_websocket(abrupt=True)
    return "recovery-refused"


async def silence(sim: Simulator) -> str:
    sim.silence_websocket()
    return "silence"


async def duplicates(sim: Simulator) -> str:
    sim.duplicate_notifications(5)
    return "duplicates"


async def reorder(sim: Simulator) -> str:
    sim.reorder_notifications(5)
    return "reorder"


async def delay(sim: Simulator) -> str:
    sim.delay_notifications(0.5, count=3)
    return "delay"


async def expire_tokens(sim: Simulator) -> str:
    sim.expire_tokens()
    return "expire-tokens"


async def throttle(sim: Simulator) -> str:
    sim.fail_rest("/restapi/", 429, count=1, retry_after_s=1)
    return "429"


async def server_error(sim: Simulator) -> str:
    sim.fail_rest("/restapi/v1.0/", 503, count=1, retry_after_s=1)
    return "503"


async def pause(sim: Simulator) -> str:
    sim.pause(0.5)
    return "pause"


FAULTS: tuple[Fault, ...] = (
    drop_clean, drop_abrupt, refused_recovery, silence, duplicates, reorder, delay,
    expire_tokens, throttle, server_error, pause,
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 180)
async def test_soak_logged_calls_equal_generated_calls(store: Store) -> None:
    rng = random.Random(20260324)
    faults: Counter[str] = Counter()
    async with simulator() as sim, client(sim) as made, Daemonish(sim, made, store) as daemon:
        await daemon.streaming()
        calls = Calls(sim, seed=77)
        loop = asyncio.get_running_loop()
        end = loop.time() + SECONDS
        next_fault = loop.time() + rng.expovariate(1 / FAULT_EVERY)
        bag: list[Fault] = []
        while loop.time() < end:
            await asyncio.sleep(rng.expovariate(CALLS_PER_SECOND))
            calls.place(1)
            if loop.time() >= next_fault:
                # every kind of fault comes round before any repeats
                if not bag:
                    bag = list(FAULTS)
                    rng.shuffle(bag)
                faults[await bag.pop()(sim)] += 1
                next_fault = loop.time() + rng.expovariate(1 / FAULT_EVERY)
        sim.clear_faults()
        await sim.wait_idle()
        expected = calls.expected()

        async def logged() -> set[str]:
            return {row.call_key for row in await store.outbox_rows(ACCOUNT)}

        async def settled() -> bool:
            return await logged() >= expected and not daemon.suspects and not daemon._work

        with contextlib.suppress(AssertionError):
            await eventually(settled, "the outbox to settle", limit=60.0)
        rows = await store.outbox_rows(ACCOUNT)
        summary = (
            f"{len(calls.placed)} calls, {len(expected)} logs expected, faults {dict(faults)}, "
            f"gaps {len(daemon.gaps)}, reconciled {len(daemon.reconciled)}, "
            f"stats {daemon.subscription.stats}"
        )
        print(summary)
        assert daemon.errors == []
        assert sorted(r.call_key for r in rows) == sorted(expected), summary
        assert len(rows) == len(expected)
