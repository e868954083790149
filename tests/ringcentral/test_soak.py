"""Soak: simulated traffic with a fault every few seconds; logged calls == generated calls.

Drives the simulator, the real subscription, the tracker, the reconciler and a real Postgres
outbox the way the daemon does: live calls are committed as the tracker completes them; every
gap is closed from the call log, and sessions a gap cut (in flight across it, or completed
with a sequence number missing: `calls.settling`) are taken from the call log instead of
the tracker, unless the tracker saw every event of them after all. At the end the outbox must hold exactly the ground truth's keys.

The CI form runs about a minute. The long form (10 minutes, a fault every 20 s on average):

    SSCL_SOAK_SECONDS=600 SSCL_SOAK_FAULT_EVERY=20 .venv/bin/pytest tests/ringcentral/test_soak.py -m slow -s

`SSCL_SOAK_SEED=N` shifts the seeds of the fault schedule and of the calls. After the traffic
the test waits until the daemon has nothing left to do (no gap being closed, no suspect
session, no session followed), for at most the time that work can take within the
platform's rate budgets; a failure lists every missing or unexpected key with what is known
about its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

import pytest
from tests.ringcentral.harness import Calls, Client, Pipeline, client, simulator, wait_for

from sscl_daemon.calls.events import EventDecodeError, decode_event
from sscl_daemon.calls.model import CallResult, CompletedCall
from sscl_daemon.calls.settling import Settling
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.ringcentral.ratelimit import DEFAULT_BUDGETS, RateGroup
from sscl_daemon.ringcentral.subscription import Gap, Item, RawNotification
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.store import Store

SECONDS = float(os.environ.get("SSCL_SOAK_SECONDS", "50"))
FAULT_EVERY = float(os.environ.get("SSCL_SOAK_FAULT_EVERY", "4"))
CALLS_PER_SECOND = float(os.environ.get("SSCL_SOAK_CALLS_PER_SECOND", "1.5"))
# shifts the seeds of both the fault schedule and the calls (0: the seeds CI runs)
SEED = int(os.environ.get("SSCL_SOAK_SEED", "0"))
ACCOUNT = "soak"
SETTLE_MARGIN = 10.0
WRITERS = ("crm",)


class Daemonish(Pipeline):
    """The daemon's handling of items, gaps and suspect sessions, on a real store."""

    def __init__(self, sim: Simulator, made: Client, store: Store) -> None:
        super().__init__(sim, made)
        self.store = store
        # sessions stay in flight until the call log settles them, never timed out here
        self.tracker = Tracker(None, TrackerOptions(completion_grace_s=0.3), self.policy)
        # retried every half second: the simulator writes records a second after a call
        self.suspects = Settling(retry_after=(0.5,) * 240)
        self.committed: list[CompletedCall] = []
        self.reconciled: list[CompletedCall] = []
        self._work: set[asyncio.Task[None]] = set()
        self.errors: list[BaseException] = []
        self.ever_suspect: set[str] = set()
        # sessions the call log settled: the tracker may hold them for ever (a gap ate their end)
        self.settled: set[str] = set()

    async def commit(self, calls: list[CompletedCall]) -> None:
        if calls:
            self.committed.extend(calls)
            await self.store.commit_batch(ACCOUNT, calls, WRITERS, None)

    async def handle(self, item: Item) -> None:
        if isinstance(item, RawNotification):
            self.notifications += 1
            try:
                event = decode_event(item.envelope)
            except EventDecodeError:
                self.bad_events += 1
                return
            body = event.body
            self.suspects.touch(body.telephony_session_id, item.received_at)
            await self.commit(self.keep(self.tracker.apply(event)))
        elif isinstance(item, Gap):
            self.gaps.append(item)
            in_flight = self.tracker.sessions()
            for tsid in in_flight:
                self.suspects.mark(tsid, self.tracker.first_event_time(tsid) or item.start)
            self.ever_suspect.update(in_flight)
            self._spawn(self._close(item, in_flight))
        else:
            await super().handle(item)

    def keep(self, calls: list[CompletedCall]) -> list[CompletedCall]:
        """The calls to commit now: those of sessions that lost no event (as the daemon)."""
        holed = self.tracker.take_holed()
        for tsid, first in holed:
            self.suspects.mark_holed(tsid, first)
            self.ever_suspect.add(tsid)
        unsure = {tsid for tsid, _ in holed}
        unsure.update(c.telephony_session_id for c in calls if c.result is CallResult.INCOMPLETE)
        return [
            c
            for c in calls
            if not self.suspects.hold(c, complete=c.telephony_session_id not in unsure)
        ]

    def _resolved(self, sessions: Iterable[str]) -> None:
        for tsid in sessions:
            self.suspects.settle(tsid)
            self.settled.add(tsid)

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
        self._resolved(resolution.ended)
        self._resolved(c.telephony_session_id for c in calls)
        await self.commit(calls)

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            await self.commit(self.keep(self.tracker.expire(datetime.now(UTC))))

    async def _settle_suspects(self) -> None:
        reconciler = self.reconciler()
        while True:
            await asyncio.sleep(0.5)
            due, _ = self.suspects.due(datetime.now(UTC), self.tracker.__contains__, 0.5)
            if not due:
                continue
            since = self.suspects.since(due)
            resolution = await reconciler.resolve_sessions(due, since=since)
            calls = list(resolution.batch.calls)
            self.reconciled.extend(calls)
            self._resolved(resolution.ended)
            self.suspects.tried(resolution.unresolved, datetime.now(UTC))
            await self.commit(calls)

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.subscription.run(self.handle))
            group.create_task(self._expire())
            group.create_task(self._settle_suspects())

    def idle(self) -> bool:
        """No gap being closed, no suspect to look up, no session followed but settled ones."""
        held = sum(1 for tsid in self.settled if tsid in self.tracker)
        return not self._work and not self.suspects and len(self.tracker) == held

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
@pytest.mark.timeout(SECONDS + 900)
async def test_soak_logged_calls_equal_generated_calls(store: Store) -> None:
    rng = random.Random(20260324 + SEED)
    faults: Counter[str] = Counter()
    async with simulator() as sim, client(sim) as made, Daemonish(sim, made, store) as daemon:
        await daemon.streaming()
        calls = Calls(sim, seed=77 + SEED)
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

        # Wait for the daemon to have nothing left to do, not for the answer: then a lost
        # call fails at once with its diagnosis instead of after a timeout.
        limit = settle_limit(daemon)
        with contextlib.suppress(AssertionError):
            await wait_for(daemon.idle, "the daemon to settle", limit=limit)
        # every row: the default page (1000) is smaller than the long form's outbox
        rows = await store.outbox_rows(ACCOUNT, limit=2 * len(expected) + 100)
        summary = (
            f"{len(calls.placed)} calls, {len(expected)} logs expected, faults {dict(faults)}, "
            f"gaps {len(daemon.gaps)}, reconciled {len(daemon.reconciled)}, "
            f"stats {daemon.subscription.stats}, settle limit {limit:.0f} s"
            f"{outstanding(daemon)}"
        )
        print(summary)
        assert daemon.errors == []
        got = [r.call_key for r in rows]
        assert sorted(got) == sorted(expected), summary + explain(sim, calls, daemon, set(got))
        assert len(rows) == len(expected)
        # and right: the first version of each log (the one the outbox kept) agrees with the
        # ground truth, within 1 s or flagged approximate (issue 13), whatever its source
        assert wrong_fields(calls, daemon.committed) == [], summary


def wrong_fields(calls: Calls, committed: list[CompletedCall]) -> list[str]:
    """Fields of logged calls that differ from the ground truth beyond the tolerance."""
    truth = {log.key: log for call in calls.placed for log in call.expected}
    kept: dict[str, CompletedCall] = {}
    for call in committed:
        kept.setdefault(call.key, call)
    wrong = []
    for key, call in kept.items():
        log = truth.get(key)
        if log is None:
            continue
        for name, got, want in (
            ("result", call.result.value, log.result),
            ("direction", call.direction.value, log.direction),
            ("external_number", call.external_number, log.external_number),
        ):
            if got != want:
                wrong.append(f"{key} ({call.source.value}) {name}: {got!r}, truth {want!r}")
        for name, got_ms, want_ms in (
            ("talk_ms", call.talk_ms, log.talk_ms),
            ("hold_ms", call.hold_ms, log.hold_ms),
        ):
            if name not in call.approximate and abs(got_ms - want_ms) > 1000:
                wrong.append(f"{key} ({call.source.value}) {name}: {got_ms}, truth {want_ms}")
    return wrong


def explain(sim: Simulator, calls: Calls, daemon: Daemonish, got: set[str]) -> str:
    """Each missing and unexpected key with what the test knows about its session."""
    expected = calls.expected()
    by_tsid = {t: c for c in calls.placed for t in c.telephony_session_ids}
    records: Counter[str] = Counter(
        str(e.record.get("telephonySessionId")) for e in sim.engine.call_log
    )
    live = {c.key for c in daemon.committed if c not in daemon.reconciled}
    recon = {c.key for c in daemon.reconciled}
    lines = []
    for label, keys in (("missing", expected - got), ("unexpected", got - expected)):
        for key in sorted(keys):
            tsid = key.rsplit(":", 1)[0]
            call = by_tsid.get(tsid)
            lines.append(
                f"{label} {key} kind={call.kind if call else None} "
                f"sessions={len(call.telephony_session_ids) if call else 0} "
                f"suspect={tsid in daemon.ever_suspect} pending={tsid in daemon.suspects} "
                f"in_tracker={tsid in daemon.tracker} records={records[tsid]} "
                f"live={key in live} reconciled={key in recon} "
                f"expected_for_call={sorted(e.key for e in call.expected) if call else []}"
            )
    return "\n" + "\n".join(lines)


def settle_limit(daemon: Daemonish) -> float:
    """How long the work outstanding when traffic stops may take within the platform budgets.

    Closing a gap and settling suspects read the call log (Heavy group, a sliding window of
    10 a minute) and look sessions up (Light); in the worst case each needs a request of its
    own, and a full window must pass first. On top: the call-log delay and the tracker's grace.
    """
    work = len(daemon._work) + len(daemon.suspects) + 1
    windows = sum(
        math.ceil(work / budget.requests) * budget.window
        for budget in (DEFAULT_BUDGETS[RateGroup.HEAVY], DEFAULT_BUDGETS[RateGroup.LIGHT])
    )
    return SETTLE_MARGIN + windows


def outstanding(daemon: Daemonish) -> str:
    due, _ = daemon.suspects.due(datetime.now(UTC), daemon.tracker.__contains__, 0.5)
    return (
        f"; at the end: {len(daemon.suspects)} suspects ({len(due)} due), "
        f"{len(daemon._work)} gaps being closed, {len(daemon.tracker)} sessions followed, "
        f"{len(daemon.ever_suspect)} sessions were suspect, "
        f"rate-limit waits {daemon.client.limiter.waited}"
    )
