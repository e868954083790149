"""Chaos soak: the real daemon under a fault every 15-30 s, compared with the ground truth.

One command, N minutes:

    .venv/bin/python benchmarks/soak.py --minutes 15 --seed 1

In this process: the RingCentral simulator (real budgets, call-log records 20 s after a
call, calls at ``--rate`` per second lasting seconds to a minute), a webhook receiver that
misbehaves on purpose for a few seconds at a time (5xx, 429 with Retry-After, answers
slower than the writer's timeout, connection resets, storing then resetting, storing then
hanging) and a supervisor like systemd's unit (``Restart=on-failure``, ``RestartSec=5``,
``WatchdogSec=60``: a daemon that stops pinging is killed with SIGABRT and restarted). The
daemon runs as ``sscl-daemon run`` in a child process with its embedded PostgreSQL, a
webhook writer to the receiver and a jsonl writer.

The faults, in a seeded shuffled cycle: SIGKILL (restarted 5 s later) and SIGTERM
(``systemctl restart``: started again as soon as it has ended), a
WebSocket drop (clean or abrupt), a refused recovery, token expiry (access, or access and
refresh), REST 429/503 answers for 5-20 s, SIGKILL of the embedded postmaster, SIGSTOP for
25 s, a silent WebSocket, duplicated and reordered notifications, a paused simulator, and
with ``--disk-full`` (root: the state directory becomes a tmpfs of its own) the state
directory's filesystem filled for 20 s.

Then traffic and faults stop, and the soak waits (``--settle`` at most) until every call
the simulator made is in the receiver, and compares each log with the simulator's ground
truth: missing, logged under a key the ground truth does not have, delivered again under
a new ``webhook-id``, and wrong fields (result, talk and hold within 1 s, direction,
external number, owner), per source (live / call log); a field the log itself flags as
approximate is counted as flagged, not wrong. A second table blames each log with
nothing live in it on the fault injected last before its call ended (`attribute`). Exit
status 1 on any missing or duplicated log (in the receiver or the jsonl file). The work
directory (daemon logs, config, and ``not-live.txt``: each such log, its fault and the
call's span after it) is kept with ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from sscl_daemon.crm.webhook import VerificationError, delivery_documents, verify
from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.profiles import PlatformProfile
from sscl_daemon.simulator.scenarios import MIX, CallKind, ExpectedLog, SimCall

HOST = "127.0.0.1"
SECRET = "whsec_c3NjbC1zb2FrLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm"
# systemd/sscl-daemon.service: Restart=on-failure, RestartSec=5s, WatchdogSec=60s. RestartSec
# delays systemd's own restarts after a failure; `systemctl restart` (what the SIGTERM fault
# stands for) stops the unit and starts it again at once.
RESTART_SEC = 5.0
WATCHDOG_SEC = 60.0
SIGSTOP_SECONDS = 25.0
# The webhook writer's attempt timeout; the receiver's slow answers take longer.
WRITER_TIMEOUT = 5.0
# Times are compared within this (the ground truth has milliseconds, the call log seconds).
TOLERANCE_MS = 1000
FIELDS = ("result", "talk", "hold", "direction", "external", "owner")
RECEIVER_MODES = ("5xx", "429", "slow", "reset", "store-reset", "store-hang")
FAULTS = (
    "sigkill",
    "sigterm",
    "ws-drop",
    "recovery-refused",
    "token-expiry",
    "rest-burst",
    "postmaster-kill",
    "sigstop",
    "ws-silence",
    "dup-reorder",
    "pause",
)
# With --disk-full, the state directory is a tmpfs of this size (MB), filled for a while.
DISK_MB = 512
DISK_FULL_SECONDS = 20.0


@dataclasses.dataclass(frozen=True)
class Options:
    minutes: float = 15.0
    seed: int = 1
    rate: float = 3.0  # calls per second
    fault_min: float = 15.0
    fault_max: float = 30.0
    settle: float = 900.0  # seconds at most, after the traffic
    call_log_delay: float = 20.0
    time_scale: float = 0.1  # a call of the simulator's mix lasts seconds to about a minute
    # Fill the state directory's filesystem now and then (a tmpfs: needs root and mount).
    disk_full: bool = False
    keep: bool = False


def log(start: float, message: str) -> None:
    print(f"[{time.monotonic() - start:7.1f}s] {message}", flush=True)


# ---- the misbehaving receiver ---------------------------------------------------------------


class Receiver:
    """Verifies and stores deliveries like a careful receiver, except while misbehaving."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.mode = "ok"
        # key -> every webhook-id it was stored under; key -> the first document stored
        self.ids: dict[str, set[str]] = {}
        self.documents: dict[str, dict[str, object]] = {}
        self.answers: Counter[str] = Counter()
        self.refused = 0

    def _store(self, msg_id: str, document: object) -> bool:
        """Store the delivery's calls; False when this webhook-id was stored before."""
        seen = any(msg_id in ids for ids in self.ids.values())
        for call in delivery_documents(document):
            key = str(call["key"])
            self.ids.setdefault(key, set()).add(msg_id)
            self.documents.setdefault(key, call)
        return not seen

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            msg_id = verify(SECRET, request.headers, body, time.time())
        except VerificationError:
            self.refused += 1
            return web.json_response({"error": "signature"}, status=401)
        mode = self.mode
        self.answers[mode] += 1
        if mode == "5xx":
            return web.json_response({"error": "down"}, status=self.rng.choice((500, 502, 503)))
        if mode == "429":
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": "2"}
            )
        if mode == "reset":
            return self._reset(request)
        new = self._store(msg_id, json.loads(body))
        if mode == "store-reset":
            return self._reset(request)
        if mode == "slow":
            await asyncio.sleep(WRITER_TIMEOUT + 1.0)
        elif mode == "store-hang":
            await asyncio.sleep(WRITER_TIMEOUT * 4)
        if not new:
            return web.json_response({"id": msg_id, "duplicate": True}, status=409)
        return web.json_response({"id": msg_id})

    @staticmethod
    def _reset(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)


@contextlib.asynccontextmanager
async def serve(receiver: Receiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    try:
        yield f"http://{HOST}:{server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


# ---- the daemon under a systemd-like supervisor ---------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def write_config(workdir: Path, sim_url: str, crm_url: str, call_log_delay: float) -> Path:
    state = workdir / "state"
    sections: dict[str, dict[str, object]] = {
        "daemon": {"state_dir": str(state), "log_format": "json"},
        "admin": {"host": HOST, "port": 0},
        "ringcentral": {
            "server": sim_url,
            "client_id": "soak-client",
            "client_secret": "soak-client-secret",
            "jwt": "soak-jwt",
            "call_log_delay": call_log_delay,
        },
        "writers.crm": {
            "type": "webhook",
            "url": f"{crm_url}/hooks/calls",
            "secret": SECRET,
            "timeout": WRITER_TIMEOUT,
        },
        "writers.log": {"type": "jsonl", "path": str(state / "calls.jsonl")},
    }
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items()) + "\n"
        for name, values in sections.items()
    )
    path = workdir / "config.toml"
    path.write_text(text)
    path.chmod(0o600)  # it holds the (made-up) secrets inline
    return path


class Supervised:
    """``sscl-daemon run`` restarted like the systemd unit, with its watchdog."""

    def __init__(self, config: Path, workdir: Path, start: float) -> None:
        self.config = config
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.exits: Counter[str] = Counter()
        self.watchdog_kills = 0
        self.stopped = False  # SIGSTOPped by a fault
        self._t0 = start
        self._stopping = False
        self._restart_requested = False
        self._last_ping = time.monotonic()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify_path = workdir / "notify.sock"
        self._notify.bind(str(self._notify_path))
        self._notify.setblocking(False)

    async def _spawn(self) -> asyncio.subprocess.Process:
        self.starts += 1
        self._ready.clear()
        self._last_ping = time.monotonic()
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self._notify_path),
            "WATCHDOG_USEC": str(int(WATCHDOG_SEC * 1_000_000)),
        }
        with (self.workdir / f"daemon-{self.starts}.log").open("wb") as out:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sscl_daemon", "run", "--config", str(self.config),
                stdout=out, stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = (await loop.sock_recv(self._notify, 4096)).decode(errors="replace")
            if "WATCHDOG=1" in data:
                self._last_ping = time.monotonic()
            if "READY=1" in data:
                self._ready.set()

    async def _watch(self, process: asyncio.subprocess.Process) -> str:
        """Until the process ends (its status) or misses the watchdog (it is then aborted)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    code = await process.wait()
                    return f"signal {-code}" if code < 0 else f"exit {code}"
            if time.monotonic() - self._last_ping > WATCHDOG_SEC:
                self.watchdog_kills += 1
                log(self._t0, "supervisor: watchdog missed; SIGABRT")
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGABRT)
                await process.wait()
                return "watchdog"

    async def _run(self) -> None:
        listener = asyncio.create_task(self._listen())
        try:
            while not self._stopping:
                self.process = await self._spawn()
                how = await self._watch(self.process)
                self.exits[how] += 1
                if self._stopping:
                    return
                # A failure waits RestartSec; the clean end of a requested restart does not.
                delay = 0.0 if self._restart_requested and how == "exit 0" else RESTART_SEC
                self._restart_requested = False
                log(self._t0, f"supervisor: daemon ended ({how}); restart in {delay:g} s")
                await asyncio.sleep(delay)
        finally:
            listener.cancel()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def ready(self, within: float) -> None:
        async with asyncio.timeout(within):
            await self._ready.wait()

    def restart(self) -> bool:
        """`systemctl restart`: SIGTERM, and a start as soon as the daemon has ended."""
        self._restart_requested = self.signal(signal.SIGTERM)
        return self._restart_requested

    def signal(self, signum: int) -> bool:
        process = self.process
        if process is None or process.returncode is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
            return True
        return False

    def postmaster_pid(self) -> int | None:
        path = self.state_dir / "postgres" / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(path.read_text().splitlines()[0])
        return None

    async def stop(self) -> None:
        self._stopping = True
        if self.stopped:
            self.signal(signal.SIGCONT)
        process = self.process
        if process is not None and process.returncode is None:
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # A postmaster left behind by a SIGKILLed daemon (the next start would adopt it).
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        self._notify.close()


# ---- faults ---------------------------------------------------------------------------------


class Chaos:
    """The fault schedule and the receiver's misbehaviour schedule."""

    def __init__(
        self, sim: Simulator, daemon: Supervised, receiver: Receiver, options: Options, t0: float
    ) -> None:
        self.sim = sim
        self.daemon = daemon
        self.receiver = receiver
        self.options = options
        self.rng = random.Random(options.seed * 7919 + 1)
        self.t0 = t0
        self.injected: Counter[str] = Counter()
        # (when, kind) of every fault, for the attribution of call-log logs (`attribute`)
        self.timeline: list[tuple[datetime, str]] = []
        self.during_outage = 0  # faults injected while the stream was down (`_cause`)
        self._later: set[asyncio.Task[None]] = set()

    def _after(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            await asyncio.sleep(seconds)
            await action()

        task = asyncio.create_task(run())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def faults(self) -> None:
        kinds = [*FAULTS, "disk-full"] if self.options.disk_full else list(FAULTS)
        order: list[str] = []
        while True:
            await asyncio.sleep(self.rng.uniform(self.options.fault_min, self.options.fault_max))
            if not order:
                order = list(kinds)
                self.rng.shuffle(order)
            kind = order.pop()
            self.timeline.append((datetime.now(UTC), self._cause(kind)))
            detail = await self.inject(kind)
            self.injected[kind] += 1
            log(self.t0, f"fault {kind} {detail}".rstrip())

    def _cause(self, kind: str) -> str:
        """What a fault injected now is blamed for: itself, or an outage still going on.

        While the daemon has no live subscription (stopped, restarting, or its socket
        silent) a new fault starts nothing: what is lost until the stream is back belongs
        to the fault that took it away.
        """
        streaming = any(
            conn.session.subscription is not None and not conn.silent
            for conn in self.sim.gateway.connections
        )
        if streaming or not self.timeline:
            return kind
        self.during_outage += 1
        return self.timeline[-1][1]

    async def inject(self, kind: str) -> str:
        sim, daemon, rng = self.sim, self.daemon, self.rng
        if kind == "sigkill":
            return "" if daemon.signal(signal.SIGKILL) else "(daemon not running)"
        if kind == "sigterm":
            return "" if daemon.restart() else "(daemon not running)"
        if kind == "ws-drop":
            abrupt = rng.random() < 0.5
            await sim.drop_websocket(abrupt=abrupt)
            return "abrupt" if abrupt else "clean"
        if kind == "recovery-refused":
            sim.refuse_recovery(1)
            await sim.drop_websocket(abrupt=True)
            return ""
        if kind == "token-expiry":
            refresh = rng.random() < 0.5
            sim.expire_tokens(refresh=refresh)
            return "access and refresh" if refresh else "access"
        if kind == "rest-burst":
            # An outage lasts a while, whatever the client sends: a burst counted in requests
            # would stretch with the client's own budgets (Auth: 5 a minute).
            status = rng.choice((429, 503))
            seconds = rng.uniform(5.0, 20.0)
            retry_after = rng.choice((None, 5)) if status == 503 else rng.choice((5, 15))
            sim.fail_rest("/restapi/", status, count=10**6, retry_after_s=retry_after)

            async def end() -> None:
                sim.faults.rest.clear()

            self._after(seconds, end)
            return f"{status} for {seconds:.0f} s (Retry-After {retry_after})"
        if kind == "postmaster-kill":
            pid = daemon.postmaster_pid()
            if pid is None:
                return "(no postmaster)"
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return f"pid {pid}"
        if kind == "sigstop":
            if not daemon.signal(signal.SIGSTOP):
                return "(daemon not running)"
            daemon.stopped = True

            async def resume() -> None:
                daemon.stopped = False
                daemon.signal(signal.SIGCONT)

            self._after(SIGSTOP_SECONDS, resume)
            return f"{SIGSTOP_SECONDS:g} s"
        if kind == "ws-silence":
            return f"{sim.silence_websocket()} connection(s)"
        if kind == "dup-reorder":
            dup, reorder = rng.randint(3, 10), rng.randint(3, 10)
            sim.duplicate_notifications(dup)
            sim.reorder_notifications(reorder)
            return f"{dup} duplicated, {reorder} reordered"
        if kind == "pause":
            seconds = rng.uniform(5.0, 15.0)
            sim.pause(seconds)
            return f"{seconds:.0f} s"
        if kind == "disk-full":
            filler = daemon.state_dir / "filler"
            filled = await asyncio.to_thread(fill, filler)

            async def free() -> None:
                filler.unlink(missing_ok=True)

            self._after(DISK_FULL_SECONDS, free)
            return f"{filled // 2**20} MB for {DISK_FULL_SECONDS:g} s"
        raise ValueError(f"unknown fault {kind}")

    async def receiver_modes(self) -> None:
        while True:
            self.receiver.mode = "ok"
            await asyncio.sleep(self.rng.uniform(10.0, 20.0))
            self.receiver.mode = self.rng.choice(RECEIVER_MODES)
            await asyncio.sleep(self.rng.uniform(3.0, 8.0))

    async def calm(self) -> None:
        """Everything back to normal for the settle."""
        self.receiver.mode = "ok"
        for task in list(self._later):
            task.cancel()
        (self.daemon.state_dir / "filler").unlink(missing_ok=True)
        if self.daemon.stopped:
            self.daemon.stopped = False
            self.daemon.signal(signal.SIGCONT)
        self.sim.clear_faults()


def fill(path: Path) -> int:
    """Write zeros to ``path`` until its filesystem is full; the bytes written."""
    chunk = bytes(8 * 2**20)
    written = 0
    with path.open("wb") as out:
        while True:
            try:
                written += out.write(chunk)
                out.flush()
            except OSError:
                return written


@contextlib.contextmanager
def state_filesystem(state_dir: Path, enabled: bool) -> Iterator[None]:
    """A tmpfs of ``DISK_MB`` for the state directory, so that it can be filled."""
    if not enabled:
        yield
        return
    state_dir.mkdir(mode=0o755)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "tmpfs", str(state_dir)],
        check=True,
    )
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(state_dir)], check=False)


# ---- traffic and the comparison -------------------------------------------------------------


LOGGED_KINDS = [kind for kind in CallKind if kind is not CallKind.INTERNAL]


async def traffic(sim: Simulator, options: Options, made: list[SimCall]) -> None:
    """Calls at ``rate`` per second (Poisson), every kind that logs something by default."""
    rng = random.Random(options.seed)
    weights = [MIX.get(kind, 1) for kind in LOGGED_KINDS]
    while True:
        await asyncio.sleep(rng.expovariate(options.rate))
        kind = rng.choices(LOGGED_KINDS, weights)[0]
        made.append(sim.inject(sim.factory.make(sim.engine.now_wall(), kind)))


@dataclasses.dataclass
class Comparison:
    expected: int
    delivered: int
    missing: list[str]
    unexpected: list[str]
    duplicated: list[str]
    jsonl_missing: list[str]
    per_source: dict[str, Counter[str]]
    # "key field: expected ... got ..." for each wrong field
    wrong: list[str]
    # Logs with nothing live in them, by the fault injected last before the call's end
    # (`attribute`): which faults still cost live logging.
    not_live_by_fault: Counter[str] = dataclasses.field(default_factory=Counter)
    # Each of them: "key fault: from +a s to +b s" (the call's span after the fault).
    not_live_calls: list[str] = dataclasses.field(default_factory=list)

    @property
    def live_share(self) -> float:
        """Logs built from live events (alone, or merged with the call log's record)."""
        live = sum(row["logs"] for source, row in self.per_source.items() if "live" in source)
        return live / self.delivered if self.delivered else 0.0

    @property
    def lost(self) -> bool:
        return bool(self.missing or self.duplicated or self.jsonl_missing)


def _wrong(expected: ExpectedLog, doc: dict[str, object]) -> list[str]:
    def ms(name: str) -> int:
        value = doc.get(name)
        return int(value) if isinstance(value, int | float) else -(10**9)

    checks = {
        "result": doc.get("result") == expected.result,
        "talk": abs(ms("talk_ms") - expected.talk_ms) <= TOLERANCE_MS,
        "hold": abs(ms("hold_ms") - expected.hold_ms) <= TOLERANCE_MS,
        "direction": doc.get("direction") == expected.direction,
        "external": doc.get("external_number") == expected.external_number,
        "owner": doc.get("extension_id") == expected.extension_id,
    }
    return [name for name, ok in checks.items() if not ok]


def _approximate(doc: dict[str, object]) -> set[str]:
    flagged = doc.get("approximate")
    names = {str(name) for name in flagged} if isinstance(flagged, list) else set()
    # The log's own field names, mapped onto the columns of the table.
    aliases = {"talk_ms": "talk", "hold_ms": "hold", "external_number": "external"}
    return {aliases.get(name, name) for name in names}


def jsonl_keys(state_dir: Path) -> set[str]:
    path = state_dir / "calls.jsonl"
    if not path.exists():
        return set()
    keys: set[str] = set()
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            keys.add(str(json.loads(line)["key"]))
    return keys


NO_FAULT = "(no fault before)"


def attribute(end: datetime, timeline: Sequence[tuple[datetime, str]]) -> tuple[str, datetime]:
    """The fault injected last at or before ``end`` (a call's last event), or ``NO_FAULT``,
    and when it was injected.

    A log with nothing live in it is a call whose every event the daemon missed: the
    stretch it missed began with a fault before the call ended. A fault injected while the
    stream was already down is in ``timeline`` under the fault that took it down
    (`Chaos._cause`). The table says which faults to look at first, not a proof.
    """
    cause, at = NO_FAULT, end
    for moment, kind in timeline:
        if moment > end:
            break
        cause, at = kind, moment
    return cause, at


def compare(
    made: Sequence[SimCall],
    receiver: Receiver,
    state_dir: Path,
    timeline: Sequence[tuple[datetime, str]] = (),
) -> Comparison:
    truth = {log.key: log for call in made for log in call.expected}
    spans = {
        log.key: (call.start, call.start + timedelta(milliseconds=call.end_offset_ms))
        for call in made
        for log in call.expected
    }
    delivered = receiver.documents
    per_source: dict[str, Counter[str]] = {}
    wrong: list[str] = []
    not_live: Counter[str] = Counter()
    not_live_calls: list[str] = []
    for key, doc in delivered.items():
        source = str(doc.get("source", "?"))
        row = per_source.setdefault(source, Counter())
        row["logs"] += 1
        expected = truth.get(key)
        if expected is None:
            continue
        if "live" not in source:
            start, end = spans[key]
            cause, at = attribute(end, timeline)
            not_live[cause] += 1
            since = (start - at).total_seconds(), (end - at).total_seconds()
            not_live_calls.append(f"{key} {cause}: from {since[0]:+.1f} s to {since[1]:+.1f} s")
        flagged = _approximate(doc)
        for name in _wrong(expected, doc):
            row["flagged" if name in flagged else name] += 1
            if name not in flagged:
                wrong.append(f"{key} {name} ({source}): expected {expected!r}, got {doc!r}")
    return Comparison(
        expected=len(truth),
        delivered=len(delivered),
        missing=sorted(set(truth) - set(delivered)),
        unexpected=sorted(set(delivered) - set(truth)),
        duplicated=sorted(key for key, ids in receiver.ids.items() if len(ids) > 1),
        jsonl_missing=sorted(set(truth) - jsonl_keys(state_dir)),
        per_source=per_source,
        wrong=wrong,
        not_live_by_fault=not_live,
        not_live_calls=sorted(not_live_calls, key=lambda line: line.split(" ", 1)[1]),
    )


def table(result: Comparison) -> str:
    columns = ("logs", *FIELDS, "flagged")
    rows = [["source", *columns]]
    total: Counter[str] = Counter()
    for source in sorted(result.per_source):
        counts = result.per_source[source]
        total.update(counts)
        rows.append([source, *(str(counts[c]) for c in columns)])
    rows.append(["total", *(str(total[c]) for c in columns)])
    return _columns(rows)


def fault_table(result: Comparison, injected: Counter[str]) -> str:
    """Logs with nothing live in them by the fault before them (`attribute`), per fault."""
    rows = [["fault before the call's end", "injected", "not-live logs", "per fault"]]
    counts = result.not_live_by_fault
    for kind in sorted(set(counts) | set(injected), key=lambda k: (-counts[k], k)):
        times = injected[kind]
        per = f"{counts[kind] / times:.1f}" if times else "-"
        rows.append([kind, str(times) if times else "-", str(counts[kind]), per])
    rows.append(["total", str(sum(injected.values())), str(sum(counts.values())), ""])
    return _columns(rows)


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# ---- the run --------------------------------------------------------------------------------


def _profile(call_log_delay: float) -> PlatformProfile:
    return PlatformProfile.lenient().with_changes(call_log_delay_s=call_log_delay)


async def run(options: Options, workdir: Path) -> tuple[Comparison, dict[str, object]]:
    t0 = time.monotonic()
    config = SimulatorConfig(
        seed=options.seed, time_scale=options.time_scale, profile=_profile(options.call_log_delay)
    )
    receiver = Receiver(options.seed)
    made: list[SimCall] = []
    with state_filesystem(workdir / "state", options.disk_full):
        return await _run(options, workdir, config, receiver, made, t0)


async def _run(
    options: Options,
    workdir: Path,
    config: SimulatorConfig,
    receiver: Receiver,
    made: list[SimCall],
    t0: float,
) -> tuple[Comparison, dict[str, object]]:
    async with Simulator(config) as sim, serve(receiver) as crm_url:
        path = write_config(workdir, sim.base_url, crm_url, options.call_log_delay)
        daemon = Supervised(path, workdir, t0)
        chaos = Chaos(sim, daemon, receiver, options, t0)
        daemon.start()
        try:
            await daemon.ready(120.0)
            log(t0, "daemon ready; traffic and faults start")
            tasks = [
                asyncio.create_task(traffic(sim, options, made)),
                asyncio.create_task(chaos.faults()),
                asyncio.create_task(chaos.receiver_modes()),
            ]
            await asyncio.sleep(options.minutes * 60)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await chaos.calm()
            log(t0, f"traffic and faults stopped: {len(made)} calls; settling")
            await settle(sim, receiver, made, options, t0)
            result = compare(made, receiver, daemon.state_dir, chaos.timeline)
        finally:
            await daemon.stop()
    facts: dict[str, object] = {
        "faults": dict(sorted(chaos.injected.items())),
        "faults while the stream was down (blamed on the one before)": chaos.during_outage,
        "starts": daemon.starts,
        "ends": dict(daemon.exits),
        "watchdog kills": daemon.watchdog_kills,
        "receiver answers": dict(sorted(receiver.answers.items())),
        "minutes": options.minutes,
        "seed": options.seed,
        "elapsed s": round(time.monotonic() - t0),
    }
    return result, facts


async def settle(
    sim: Simulator, receiver: Receiver, made: list[SimCall], options: Options, t0: float
) -> None:
    """Until every expected log arrived, or ``settle`` seconds passed."""
    truth = {log.key for call in made for log in call.expected}
    deadline = time.monotonic() + options.settle
    next_report = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        missing = truth - set(receiver.documents)
        if not missing:
            log(t0, "every expected log arrived")
            return
        if time.monotonic() >= next_report:
            next_report += 60.0
            log(t0, f"settling: {len(missing)} logs still missing")
        await asyncio.sleep(1.0)
    log(t0, "settle time is up")


def report(result: Comparison, facts: dict[str, object]) -> str:
    injected = facts.get("faults")
    lines = [
        table(result),
        "",
        fault_table(result, Counter(injected) if isinstance(injected, dict) else Counter()),
        "",
        f"expected {result.expected}, delivered {result.delivered}, "
        f"missing {len(result.missing)}, duplicated under a new webhook-id "
        f"{len(result.duplicated)}, unexpected keys {len(result.unexpected)}, "
        f"missing from jsonl {len(result.jsonl_missing)}, live-sourced {result.live_share:.1%}",
    ]
    lines.extend(f"{name}: {value}" for name, value in facts.items())
    for title, keys in (
        ("missing", result.missing),
        ("duplicated", result.duplicated),
        ("unexpected", result.unexpected),
        ("missing from jsonl", result.jsonl_missing),
    ):
        if keys:
            lines.append(f"{title} (first 20): {', '.join(keys[:20])}")
    lines.extend(f"wrong: {line}" for line in result.wrong[:10])
    return "\n".join(lines)


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Options()
    parser.add_argument("--minutes", type=float, default=defaults.minutes)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="calls per second")
    parser.add_argument("--fault-min", type=float, default=defaults.fault_min)
    parser.add_argument("--fault-max", type=float, default=defaults.fault_max)
    parser.add_argument("--settle", type=float, default=defaults.settle, help="seconds at most")
    parser.add_argument("--call-log-delay", type=float, default=defaults.call_log_delay)
    parser.add_argument("--time-scale", type=float, default=defaults.time_scale)
    parser.add_argument(
        "--disk-full",
        action="store_true",
        help=f"state directory on a {DISK_MB} MB tmpfs, filled now and then (root: mount)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    return Options(
        minutes=args.minutes,
        seed=args.seed,
        rate=args.rate,
        fault_min=args.fault_min,
        fault_max=args.fault_max,
        settle=args.settle,
        call_log_delay=args.call_log_delay,
        time_scale=args.time_scale,
        disk_full=args.disk_full,
        keep=args.keep,
    )


def soak(options: Options) -> tuple[Comparison, str]:
    """One soak in a fresh work directory (removed afterwards unless ``keep``)."""
    workdir = Path(tempfile.mkdtemp(prefix="sscl-soak-"))
    # Run as root, the embedded server runs as nobody, who must reach its directory.
    workdir.chmod(0o755)
    try:
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        result, facts = asyncio.run(run(options, workdir))
        facts["started"] = started
        if options.keep:
            facts["work directory"] = str(workdir)
            (workdir / "not-live.txt").write_text("".join(f"{x}\n" for x in result.not_live_calls))
        return result, report(result, facts)
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    result, text = soak(options)
    print(text)
    return 1 if result.lost else 0


if __name__ == "__main__":
    sys.exit(main())
