"""Benchmark of the call core: decode + apply throughput and memory per in-flight session.

Usage: ``python benchmarks/tracker.py [--events 1000000] [--sessions 100000]
[--repeat 3] [--seed 7] [--baseline OTHER/src]``

With ``--baseline`` (the ``src`` of another checkout, e.g. a ``git worktree`` of an
older commit) the same measurements run for both code bases, in separate processes
and alternating run by run, so that a busy neighbour weighs on both alike; both figures
and their ratio are printed (issue 13: within 10 % of the figure before the change).

Targets (issue 4): at least 150,000 events/s decode + apply on one core, and
under 2 KB of retained memory per in-flight session at 100,000 sessions.

1. Throughput: a seeded synthetic stream of at least ``--events`` raw WebSocket
   frames (``[header, envelope]`` JSON, one party each, realistic field set)
   from calls of four shapes (inbound answered with hold, IVR -> queue with
   two ringing agents, outbound answered, inbound missed), 2,000 calls in
   flight at any time and one call in five getting two of its notifications
   the wrong way round.
   Timed: ``decode_tracked`` + ``Tracker.apply`` (with the default policy) for
   every frame, ``--repeat`` times on a fresh tracker. The figure compared with
   the target is the best CPU time of this process (``time.process_time``): the
   development machine is shared, so a busy neighbour inflates wall time and,
   less so, CPU time. Median and wall-clock figures and the load average are
   printed too, and one run with the full event model (``decode_event``, what
   replay and dead letters use) for comparison.
2. Memory: ``--sessions`` calls are started and left in flight (each in the
   middle of a conversation: caller, IVR and user parties, 6 events); the
   retained memory is measured with ``tracemalloc`` (Python allocations still
   alive after the events were applied and the decoded events dropped) and,
   for comparison, as the process RSS growth.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import psutil

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import Notification, TrackedNotification, decode_event, decode_tracked
from sscl_daemon.calls.model import Extension, ExtensionType
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.tracker import Tracker, TrackerCounters, TrackerOptions

ACCOUNT = "400131234008"
T0 = datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC)
USERS = 200
TARGET_EVENTS_PER_S = 150_000
TARGET_BYTES_PER_SESSION = 2_048


def directory() -> Directory:
    users = [
        Extension(id=str(10_000 + i), extension_number=str(100 + i), name=f"User {i}",
                  type=ExtensionType.USER, email=f"user{i}@example.com", department="Sales")
        for i in range(USERS)
    ]  # fmt: skip
    users.append(Extension(id="2000", extension_number="2000", type=ExtensionType.IVR_MENU))
    users.append(Extension(id="3000", extension_number="3000", type=ExtensionType.DEPARTMENT))
    return Directory(users)


class _Call:
    """Builds the frames of one synthetic call."""

    def __init__(self, index: int, start: datetime, rng: random.Random) -> None:
        self.tsid = f"s-a8e1b2c3d4e5fz{index:011x}z{rng.randrange(16**7):07x}0000"
        self.start = start
        self.seq = 1
        self.index = index
        self.caller = f"+1415555{rng.randrange(10_000):04d}"
        self.frames: list[tuple[datetime, bytes]] = []

    def party(
        self, n: int, ext_id: str | None, direction: str, **extra: object
    ) -> dict[str, object]:
        party: dict[str, object] = {
            "accountId": ACCOUNT,
            "direction": direction,
            "from": {"phoneNumber": self.caller, "name": "WIRELESS CALLER"},
            "id": f"p-{self.tsid[2:]}-{n}",
            "missedCall": False,
            "muted": False,
            "park": {},
            "standAlone": False,
            "to": {"phoneNumber": "+16505550100", "name": "Company"},
        }
        if ext_id is not None:
            party["extensionId"] = ext_id
            party["to"] = {"phoneNumber": "+16505550100", "name": "User", "extensionId": ext_id}
        party.update(extra)
        return party

    def ev(self, party: dict[str, object], code: str, at: float, reason: str | None = None) -> None:
        self.seq += 1
        when = self.start + timedelta(seconds=at)
        status: dict[str, object] = {"code": code, "rcc": False}
        if reason:
            status["reason"] = reason
        body = {
            "sequence": self.seq,
            "sessionId": str(4_000_000_000 + self.index),
            "telephonySessionId": self.tsid,
            "serverId": "10.13.22.27.TAM",
            "eventTime": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "origin": {"type": "Call"},
            "parties": [{**party, "status": status}],
        }
        uuid = f"{self.index * 64 + self.seq}"
        ext = party.get("extensionId")
        envelope = {
            "uuid": uuid,
            "event": f"/restapi/v1.0/account/{ACCOUNT}"
            + (f"/extension/{ext}" if ext else "")
            + "/telephony/sessions",
            "timestamp": body["eventTime"],
            "subscriptionId": "2a7c5d3e-9b1f-4c6a-8e2d-7f0a1b2c3d4e",
            "ownerId": "10000",
            "body": body,
        }
        header = {"type": "ServerNotification", "messageId": uuid, "status": 200,
                  "headers": {"RCRequestId": "5e1b8a34-8f2e-11ee-a9c3-005056bb1234"}}  # fmt: skip
        self.frames.append((when, msgspec.json.encode([header, envelope])))


def make_call(index: int, start: datetime, rng: random.Random, midway: bool = False) -> _Call:
    call = _Call(index, start, rng)
    user = str(10_000 + rng.randrange(USERS))
    kind = 1 if midway else rng.randrange(4)
    caller = call.party(1, None, "Outbound")
    if kind == 0:  # inbound direct, answered, one hold
        me = call.party(2, user, "Inbound")
        for party, code, at in ((caller, "Setup", 0), (me, "Setup", 0.2), (me, "Proceeding", 0.4),
                                (me, "Answered", 6), (caller, "Answered", 6.1), (me, "Hold", 40),
                                (me, "Answered", 50), (me, "Disconnected", 90),
                                (caller, "Disconnected", 90.1)):  # fmt: skip
            call.ev(party, code, at)
    elif kind == 1:  # main number -> IVR -> queue, two agents ring, the second answers
        ivr = call.party(2, "2000", "Inbound")
        a1 = call.party(3, user, "Inbound", queueCall=True)
        a2 = call.party(4, str(10_000 + (int(user) + 1) % USERS), "Inbound", queueCall=True)
        steps = [(caller, "Setup", 0, None), (ivr, "Setup", 0.1, None),
                 (caller, "Answered", 1, None), (ivr, "Disconnected", 9, "CallerInputRedirect"),
                 (a1, "Proceeding", 10, None), (a2, "Proceeding", 10.1, None)]  # fmt: skip
        if not midway:
            steps += [(a2, "Answered", 18, None), (a1, "Disconnected", 18.1, "AgentAnswered"),
                      (a2, "Disconnected", 70, None), (caller, "Disconnected", 70.1, None)]  # fmt: skip
        for party, code, at, reason in steps:
            call.ev(party, code, at, reason)
    elif kind == 2:  # outbound answered
        me = call.party(1, user, "Outbound")
        remote = call.party(2, None, "Inbound")
        for party, code, at in ((me, "Setup", 0), (remote, "Proceeding", 0.8),
                                (me, "Proceeding", 0.9), (remote, "Answered", 9),
                                (me, "Answered", 9.1), (me, "Disconnected", 120),
                                (remote, "Disconnected", 120.2)):  # fmt: skip
            call.ev(party, code, at)
    else:  # inbound missed
        me = call.party(2, user, "Inbound")
        for party, code, at in ((caller, "Setup", 0), (me, "Setup", 0.2), (me, "Proceeding", 0.4),
                                (caller, "Disconnected", 20), (me, "Disconnected", 20.1)):  # fmt: skip
            call.ev(party, code, at)
    return call


def stream(total_events: int, concurrency: int, seed: int) -> Iterator[bytes]:
    """Frames of overlapping calls in event-time order, some swapped out of order."""
    rng = random.Random(seed)
    produced = 0
    index = 0
    clock = T0
    while produced < total_events:
        batch: list[tuple[datetime, bytes]] = []
        for _ in range(concurrency):
            call = make_call(index, clock + timedelta(seconds=rng.uniform(0, 60)), rng)
            index += 1
            timed = call.frames
            if rng.random() < 0.2:
                # deliver two neighbouring notifications of this call the wrong way round
                i = rng.randrange(len(timed) - 1)
                (t1, a), (t2, b) = timed[i], timed[i + 1]
                timed[i], timed[i + 1] = (t2, a), (t1, b)
            batch.extend(timed)
        batch.sort(key=lambda item: item[0])
        frames = [raw for _, raw in batch]
        produced += len(frames)
        yield from frames
        clock += timedelta(seconds=60)


Decoder = Callable[[bytes], Notification | TrackedNotification]


def timed_run(frames: list[bytes], decode: Decoder) -> tuple[float, float, TrackerCounters, int]:
    """(CPU s, wall s, counters, call logs) of one decode + apply pass over every frame.

    Only the counters outlive the run: a previous run's tracker left alive would
    slow the next one down.
    """
    book = directory()
    tracker = Tracker(book, TrackerOptions(completion_grace_s=2.0), Policy(None, book))
    apply = tracker.apply
    gc.collect()
    # The frames are a gigabyte of long-lived bytes: keep them out of the collector's scans.
    gc.freeze()
    started = time.perf_counter()
    cpu_started = time.process_time()
    calls = 0
    for raw in frames:
        calls += len(apply(decode(raw)))
    calls += len(tracker.flush())
    cpu = time.process_time() - cpu_started
    elapsed = time.perf_counter() - started
    gc.unfreeze()
    return cpu, elapsed, tracker.counters(), calls


def verdict(held: bool) -> str:
    return "TARGET MET" if held else "TARGET NOT MET"


def throughput(events: int, seed: int, repeat: int) -> None:
    frames = list(stream(events, 2_000, seed))
    n = len(frames)
    load = os.getloadavg()
    print(f"throughput: {n:,} events (decode + apply + policy), {repeat} repetitions, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    cpus: list[float] = []
    walls: list[float] = []
    for index in range(repeat):
        cpu, elapsed, counters, calls = timed_run(frames, decode_tracked)
        cpus.append(cpu)
        walls.append(elapsed)
        print(f"  run {index + 1}: {n / cpu:,.0f} events/s CPU ({cpu:.2f} s), "
              f"{n / elapsed:,.0f} events/s wall clock ({elapsed:.2f} s)")  # fmt: skip
    print(f"  each run: {counters.sessions_completed:,} sessions completed, {calls:,} call logs, "
          f"{counters.out_of_order:,} out of order, {counters.in_flight} left in flight")  # fmt: skip
    best = n / min(cpus)
    print(f"  CPU time:   best {best:,.0f}, median {n / statistics.median(cpus):,.0f} events/s")
    print(f"  wall clock: best {n / min(walls):,.0f}, median {n / statistics.median(walls):,.0f} "
          f"events/s")  # fmt: skip
    cpu, elapsed, _, _ = timed_run(frames, decode_event)
    print(f"  with the full event model (decode_event): {n / cpu:,.0f} events/s CPU, "
          f"{n / elapsed:,.0f} events/s wall clock (1 run)")  # fmt: skip
    print(f"  => >= {TARGET_EVENTS_PER_S:,} events/s on one core (best CPU time): "
          f"{verdict(best >= TARGET_EVENTS_PER_S)}")  # fmt: skip


def memory(sessions: int, seed: int) -> None:
    rng = random.Random(seed)
    frames: list[bytes] = []
    for index in range(sessions):
        frames.extend(raw for _, raw in make_call(index, T0, rng, midway=True).frames)
    tracker = Tracker(directory(), TrackerOptions(session_timeout_s=3600))
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for raw in frames:
        tracker.apply(decode_tracked(raw))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss_after = process.memory_info().rss
    assert len(tracker) == sessions
    per_session = (after - before) / sessions
    print(f"memory: {sessions:,} sessions in flight ({len(frames) // sessions} events each, "
          f"caller, IVR and two ringing queue agents)")  # fmt: skip
    print(f"  retained per session: {per_session:,.0f} bytes (tracemalloc, live Python "
          f"allocations); RSS growth {(rss_after - rss_before) / sessions:,.0f} bytes/session")  # fmt: skip
    snapshot = tracker.snapshot()
    print(f"  snapshot: {len(snapshot) / sessions:,.0f} bytes/session (msgpack)")
    print(f"  => < {TARGET_BYTES_PER_SESSION:,} bytes per in-flight session (tracemalloc): "
          f"{verdict(per_session < TARGET_BYTES_PER_SESSION)}")  # fmt: skip


def measure(events: int, sessions: int, seed: int) -> dict[str, float]:
    """One throughput run and, with ``sessions``, the memory figure (for --baseline)."""
    frames = list(stream(events, 2_000, seed))
    cpu, _, _, _ = timed_run(frames, decode_tracked)
    figures = {"events_per_s": len(frames) / cpu}
    if sessions:
        rng = random.Random(seed)
        raws = [raw for i in range(sessions) for _, raw in make_call(i, T0, rng, True).frames]
        tracker = Tracker(directory(), TrackerOptions(session_timeout_s=3600))
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for raw in raws:
            tracker.apply(decode_tracked(raw))
        gc.collect()
        figures["bytes_per_session"] = (tracemalloc.get_traced_memory()[0] - before) / sessions
        tracemalloc.stop()
    return figures


def compare(args: argparse.Namespace) -> None:
    """This code base against ``args.baseline``, alternating runs in child processes."""
    here = str(Path(__file__).resolve().parent.parent / "src")
    sides = {"this": here, "baseline": str(Path(args.baseline).resolve())}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for index in range(max(1, args.repeat)):
        for name, src in sides.items():
            command = [sys.executable, __file__, "--measure", "--events", str(args.events),
                       "--seed", str(args.seed),
                       "--sessions", str(args.sessions if index == 0 else 0)]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": src}
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    load = os.getloadavg()
    print(f"this code ({sides['this']}) against the baseline ({sides['baseline']}), "
          f"{args.repeat} alternating runs each, load average {load[0]:.2f}")  # fmt: skip
    best = {name: max(r["events_per_s"] for r in rows) for name, rows in runs.items()}
    median = {
        name: statistics.median(r["events_per_s"] for r in rows) for name, rows in runs.items()
    }
    memory_of = {name: rows[0].get("bytes_per_session", 0.0) for name, rows in runs.items()}
    for name in sides:
        print(f"  {name:<8} throughput best {best[name]:,.0f}, median {median[name]:,.0f} "
              f"events/s CPU; retained {memory_of[name]:,.0f} bytes/session")  # fmt: skip
    ratio = best["this"] / best["baseline"]
    print(f"  => throughput {ratio:.1%} of the baseline (best CPU time), median "
          f"{median['this'] / median['baseline']:.1%}; memory "
          f"{memory_of['this'] / memory_of['baseline']:.1%} of the baseline")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed throughput runs")
    parser.add_argument("--baseline", help="the src directory of the code to compare with")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # a child of --baseline: one run, figures as JSON
        print(json.dumps(measure(args.events, args.sessions, args.seed)))
    elif args.baseline:
        compare(args)
    else:
        throughput(args.events, args.seed, max(1, args.repeat))
        memory(args.sessions, args.seed)


if __name__ == "__main__":
    main()
