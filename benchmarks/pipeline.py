"""The whole pipeline under load: simulator -> ``sscl-daemon run`` -> Postgres -> CRM stand-in.

One command (``.venv/bin/python benchmarks/pipeline.py [--quick] [--runs N]``) starts a
PostgreSQL (the tests' throwaway embedded server, ``store/testing.py``), the RingCentral
simulator in a child process, a webhook CRM stand-in in this process that answers every
request at once (after checking its signature) and timestamps it, and the daemon as a real
``sscl-daemon run --config <generated toml>`` subprocess. Per run, in this order:

(a) raw ceiling: first, on a simulator of its own with the same seed, a bare client (plain
    ``websockets`` + the gateway protocol: OAuth, wstoken, subscribe) receives the same burst
    (the same calls) and decodes every frame with ``msgspec``; the clock runs from the first
    notification published to the last frame decoded.
(b) throughput: a burst of calls, all due at once; the clock runs from the simulator
    publishing the first notification to the stand-in receiving the last call log.
    Events/s in, call logs/s handed to the writer, and call logs/s committed (the span of
    the outbox rows' ``created_at``).
(c) latency at 100 and 1,000 events/s: calls paced so their events fall due at that rate;
    for each call log, stand-in receipt minus the moment the simulator published the final
    notification of its telephony session (both ``time.monotonic()``, one clock for the
    machine). ``calls.completion_grace`` is ``--grace`` (default 0: the call completes on
    its own last event); with the daemon's default of 2.0 s every figure grows by ~2 s.
(e) recovery: paced traffic at 100 events/s; SIGKILL of the daemon, immediate restart (as
    systemd's ``Restart=always``); seconds from the kill to READY=1, to the first call log
    the new process hands to the writer, and to the first log of a call that ended after
    the kill. Every call must still arrive (resends after the kill are answered 409 by the
    stand-in, as a receiver deduplicating on ``webhook-id`` would, and counted).
(d) memory, in a fresh child process: ``--sessions`` calls (100,000) from the simulator's
    call factory, wrapped in ServerNotification frames as the gateway sends them, fed
    through the daemon's decode + apply path (``decode_event``, the ``Tracker`` and
    ``Policy`` built from the same config by the daemon's own helpers) while each
    session's last event is held back, so every session stays in flight. RSS growth per
    in-flight session and the peak RSS of that process. The daemon's own peak RSS during
    the run is printed too (a few hundred sessions in flight).

The table shows the median of ``--runs`` runs (default 3), the targets and whether each
holds, and the date, machine and load average (the machine may be shared). Everything
listens on 127.0.0.1; every wait is bounded; the daemon, the simulator and the database
are cleaned up on exit and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import gc
import math
import multiprocessing
import os
import platform
import resource
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
import psutil
import websockets
from aiohttp import web
from rich.console import Console
from rich.table import Table

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.tracker import Tracker
from sscl_daemon.config import load_config
from sscl_daemon.crm.webhook import TOLERANCE, VerificationError, delivered_keys, verify
from sscl_daemon.daemon.app import policy_options, tracker_options
from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.profiles import PlatformProfile, RateGroup, RateLimit
from sscl_daemon.simulator.scenarios import CallFactory, SimCall
from sscl_daemon.store.testing import PostgresForTests

TARGET_RATIO = 0.4
TARGET_P99_MS = 100.0
TARGET_BYTES_PER_SESSION = 2048
TARGET_RECOVERY_S = 3.0
HOST = "127.0.0.1"
# Seconds the simulator's call-log records appear after a call (the daemon is told the same).
CALL_LOG_DELAY = 1.0
# Paced calls last about a second of wall time; bursts are due within milliseconds.
PACED_TIME_SCALE = 0.01
BURST_TIME_SCALE = 0.0001
READY_TIMEOUT = 60.0
SIM_TIMEOUT = 60.0
RSS_SAMPLE_S = 0.1
WRITER_RATE_LIMIT = 100_000.0
# Calls per webhook delivery (the writer's maximum; its default of 1 is one POST per call).
WRITER_BATCH_SIZE = 100


@dataclass(frozen=True)
class Options:
    runs: int = 3
    quick: bool = False
    seed: int = 1
    grace: float = 0.0
    burst_events: int = 100_000
    paced_seconds: float = 10.0
    recovery_seconds: float = 8.0
    sessions: int = 100_000
    # Keep the daemon's logs and configs here (default: a temporary directory, removed).
    workdir: Path | None = None
    # Write a py-spy profile (speedscope JSON) of the daemon during each run's burst (b) here.
    profile: Path | None = None
    # Writer settings on top of the defaults (e.g. concurrency), to see what the dispatch takes.
    writer: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        if args.quick:
            base = cls(burst_events=2_000, paced_seconds=3.0, recovery_seconds=5.0, sessions=10_000)
        else:
            base = cls()
        return dataclasses.replace(
            base,
            runs=args.runs if args.runs is not None else (1 if args.quick else 3),
            quick=args.quick,
            seed=args.seed,
            grace=args.grace,
            sessions=args.sessions or base.sessions,
            burst_events=args.burst or base.burst_events,
            workdir=args.workdir,
            profile=args.profile,
            writer=tuple(args.writer),
        )


# ---- the simulator, in a child process ----------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """What the simulator was told to play: the call logs the CRM must end up with."""

    keys: tuple[str, ...]
    events: int
    calls: int


def _sim_profile() -> PlatformProfile:
    limits = {group: RateLimit(10**6) for group in RateGroup}
    return dataclasses.replace(
        PlatformProfile.lenient(), call_log_delay_s=CALL_LOG_DELAY, rate_limits=limits
    )


def _make_calls(factory: CallFactory, start: datetime, events: int) -> list[SimCall]:
    calls: list[SimCall] = []
    total = 0
    while total < events:
        call = factory.make(start)
        calls.append(call)
        total += len(call.events)
    return calls


async def _sim_serve(pipe: Connection, seed: int) -> None:
    config = SimulatorConfig(seed=seed, profile=_sim_profile(), time_scale=PACED_TIME_SCALE)
    async with Simulator(config) as sim:
        # When the engine publishes each session's first and final notification (measured
        # from outside: the simulator keeps no such record).
        first: dict[str, float] = {}
        final: dict[str, float] = {}
        track = sim.engine._track

        def timed_track(body: dict[str, object], ends: str | None) -> None:
            now = time.monotonic()
            tsid = body.get("telephonySessionId")
            if isinstance(tsid, str) and tsid not in first:
                first[tsid] = now
            if ends is not None:
                final[ends] = now
            track(body, ends)

        sim.engine._track = timed_track  # type: ignore[method-assign]
        factories = {
            scale: CallFactory(sim.org, seed, time_scale=scale)
            for scale in (BURST_TIME_SCALE, PACED_TIME_SCALE)
        }
        pipe.send(sim.base_url)
        loop = asyncio.get_running_loop()
        while True:
            command, *params = await loop.run_in_executor(None, pipe.recv)
            if command == "stop":
                return
            if command == "burst":
                (events,) = params
                start = sim.engine.now_wall() + timedelta(seconds=0.5)
                calls = _make_calls(factories[BURST_TIME_SCALE], start, events)
            elif command == "pace":
                rate, seconds = params
                calls = _make_calls(
                    factories[PACED_TIME_SCALE], sim.engine.now_wall(), int(rate * seconds)
                )
                start = sim.engine.now_wall() + timedelta(seconds=0.2)
                gap = seconds / len(calls)
                calls = [
                    dataclasses.replace(call, start=start + timedelta(seconds=n * gap))
                    for n, call in enumerate(calls)
                ]
            elif command == "times":
                (tsids,) = params
                pipe.send(
                    (
                        {t: first[t] for t in tsids if t in first},
                        {t: final[t] for t in tsids if t in final},
                    )
                )
                continue
            else:
                raise ValueError(f"unknown simulator command {command!r}")
            for call in calls:
                sim.inject(call)
            keys = tuple(log.key for call in calls for log in call.expected)
            pipe.send(Batch(keys, sum(len(c.events) for c in calls), len(calls)))


def _sim_child(pipe: Connection, seed: int) -> None:
    # Ctrl-C reaches the whole process group: the parent decides when this child ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_sim_serve(pipe, seed))


class SimulatorProcess:
    """The simulator child and its command pipe (every answer awaited with a timeout)."""

    def __init__(self, seed: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, theirs = ctx.Pipe()
        self.process = ctx.Process(target=_sim_child, args=(theirs, seed), daemon=True)
        self.process.start()
        theirs.close()
        self.base_url = ""

    async def _answer(self) -> object:
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, self._pipe.poll, SIM_TIMEOUT)
        if not ready:
            raise TimeoutError(f"the simulator did not answer within {SIM_TIMEOUT} s")
        return self._pipe.recv()

    async def started(self) -> str:
        self.base_url = str(await self._answer())
        return self.base_url

    async def play(self, *command: object) -> Batch:
        self._pipe.send(command)
        answer = await self._answer()
        assert isinstance(answer, Batch)
        return answer

    async def times(self, tsids: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
        self._pipe.send(("times", list(tsids)))
        answer = await self._answer()
        assert isinstance(answer, tuple)
        first: dict[str, float] = answer[0]
        final: dict[str, float] = answer[1]
        return first, final

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send(("stop",))
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)


# ---- the CRM stand-in: a webhook receiver that answers at once ------------------------------


@dataclass
class Receiver:
    """Every request by call key: when it arrived, and whether it was the first (200) or a
    resend (409, as a receiver deduplicating on ``webhook-id`` answers)."""

    secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    first: dict[str, float] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    arrivals: list[float] = field(default_factory=list)
    # Keys in the order of their first arrival.
    order: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            now = time.monotonic()
            try:
                verify(self.secret, request.headers, body, time.time(), TOLERANCE)
                keys = delivered_keys(body)
            except (VerificationError, ValueError) as exc:
                self.refused += 1
                return web.json_response({"error": str(exc)}, status=400)
            self.arrivals.append(now)
            self.changed.set()
            results: list[dict[str, str]] = []
            for key in keys:
                self.requests[key] = self.requests.get(key, 0) + 1
                if key in self.first:
                    results.append({"key": key, "status": "existed", "id": key})
                else:
                    self.first[key] = now
                    self.order.append(key)
                    results.append({"key": key, "status": "created", "id": key})
            if request.headers.get("webhook-id", "").startswith("batch_"):
                return web.json_response({"results": results})
            if results[0]["status"] == "existed":
                return web.json_response({"id": keys[0], "duplicate": True}, status=409)
            return web.json_response({"id": keys[0]})

        app = web.Application()
        app.router.add_post("/hooks/calls", receive)
        return app

    async def wait_for(self, keys: Sequence[str], within: float, what: str) -> list[str]:
        """Wait until every key arrived; returns those that arrived (all, unless time ran out)."""
        missing = {k for k in keys if k not in self.first}
        seen = len(self.order)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while missing:
                    self.changed.clear()
                    # Only the keys that arrived since the last look: this waiter must not
                    # take the CPU the daemon is being measured on.
                    missing.difference_update(self.order[seen:])
                    seen = len(self.order)
                    if missing:
                        await self.changed.wait()
        if missing:
            print(
                f"{what}: {len(missing)} of {len(keys)} call logs not received within {within} s,"
                f" e.g. {', '.join(sorted(missing)[:5])}",
                file=sys.stderr,
            )
        return [k for k in keys if k in self.first]


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


# ---- the daemon as a process -----------------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return msgspec.json.encode(str(value)).decode()


def daemon_config(
    workdir: Path,
    sim_url: str,
    crm_url: str,
    secret: str,
    dsn: str,
    grace: float,
    writer: Sequence[tuple[str, int]] = (),
) -> Path:
    """The daemon's defaults, except what points it at this benchmark's parts."""
    sections: dict[str, dict[str, object]] = {
        "daemon": {"state_dir": str(workdir / "state"), "log_format": "json"},
        "admin": {"host": HOST, "port": 0},
        "store": {"dsn": dsn},
        "ringcentral": {
            "server": sim_url,
            "client_id": "bench-client",
            "client_secret": "bench-client-secret",
            "jwt": "bench-jwt",
            "call_log_delay": CALL_LOG_DELAY,
        },
        "calls": {"completion_grace": grace},
        # The stand-in has no rate limit: lift the writer's protective default (10 requests/s);
        # batch deliveries, as a receiver that takes them would be configured.
        "writers.crm": {
            "type": "webhook",
            "url": f"{crm_url}/hooks/calls",
            "secret": secret,
            "rate_limit": WRITER_RATE_LIMIT,
            "batch_size": WRITER_BATCH_SIZE,
            **dict(writer),
        },
    }
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items()) + "\n"
        for name, values in sections.items()
    )
    path = workdir / "config.toml"
    path.write_text(text)
    return path


class DaemonProcess:
    """``sscl-daemon run`` with its own ``$NOTIFY_SOCKET``; RSS sampled while it runs."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.starts = 0
        self.process: asyncio.subprocess.Process | None = None
        self.peak_rss = 0
        self._notify: socket.socket | None = None
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.starts += 1
        path = self.workdir / f"notify-{self.starts}.sock"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(path))
        self._notify.setblocking(False)
        with (self.workdir / f"daemon-{self.starts}.log").open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sscl_daemon", "run", "--config", str(self.config),
                stdout=log, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "NOTIFY_SOCKET": str(path)},
                start_new_session=True,  # Ctrl-C is ours to handle, not a drain of the daemon
            )  # fmt: skip
        self._sampler = asyncio.create_task(self._sample(self.process.pid))

    async def _sample(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            while True:
                self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
                await asyncio.sleep(RSS_SAMPLE_S)

    def log_tail(self) -> str:
        path = self.workdir / f"daemon-{self.starts}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def ready(self) -> float:
        """Wait for READY=1; returns time.monotonic() when it came."""
        assert self.process is not None
        assert self._notify is not None
        loop = asyncio.get_running_loop()
        received = ""
        async with asyncio.timeout(READY_TIMEOUT):
            while "READY=1" not in received:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the daemon exited early:\n{self.log_tail()}")
                try:
                    received += (await loop.sock_recv(self._notify, 4096)).decode()
                except BlockingIOError:
                    await asyncio.sleep(0.005)
        return time.monotonic()

    async def stop(self, signum: int) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await asyncio.wait_for(process.wait(), 10)
        if self._sampler is not None:
            self._sampler.cancel()
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        self.process = None
        return process.returncode


# ---- where the machine's CPU goes during the burst --------------------------------------------


class CpuMeter:
    """CPU seconds each part of the benchmark used between :meth:`start` and :meth:`stop`.

    Everything shares the machine's cores, so the daemon's figures depend on what the
    simulator, PostgreSQL and the stand-in take; this says how the cores were shared.
    PostgreSQL is its postmaster and every child process (the daemon's backends too).
    """

    def __init__(self, parts: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self._parts = parts
        self._before: dict[str, dict[int, float]] = {}
        self._machine_before = 0.0
        self._since = 0.0

    def _read(self) -> dict[str, dict[int, float]]:
        readings: dict[str, dict[int, float]] = {}
        for name, processes in self._parts.items():
            per_pid: dict[int, float] = {}
            for process in processes():
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    per_pid[process.pid] = times.user + times.system
            readings[name] = per_pid
        return readings

    @staticmethod
    def _machine_busy() -> float:
        times = psutil.cpu_times()
        return float(times.user + times.system + getattr(times, "softirq", 0.0))

    def start(self) -> None:
        self._before = self._read()
        self._machine_before = self._machine_busy()
        self._since = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Each part's share of one core over the interval, and ``machine`` (all cores)."""
        after = self._read()
        wall = time.monotonic() - self._since
        shares = {
            name: sum(t - self._before.get(name, {}).get(pid, 0.0) for pid, t in now.items()) / wall
            for name, now in after.items()
        }
        shares["machine"] = (self._machine_busy() - self._machine_before) / wall
        return shares


async def postgres_processes(dsn: str) -> Callable[[], list[psutil.Process]]:
    """The server behind ``dsn`` (when it runs on this machine): postmaster and children."""
    conn = await asyncpg.connect(dsn)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        # Asked while the backend lives: it is gone once the connection closes.
        postmaster = psutil.Process(int(backend)).parent()
    except psutil.Error:
        postmaster = None
    finally:
        await conn.close()

    def processes() -> list[psutil.Process]:
        if postmaster is None:
            return []
        with contextlib.suppress(psutil.Error):
            return [postmaster, *postmaster.children(recursive=True)]
        return []

    return processes


# ---- (a) the raw ceiling -----------------------------------------------------------------------


async def raw_client(sim: SimulatorProcess, events: int) -> tuple[Batch, float, int]:
    """Subscribe like the daemon, play a burst, receive and decode it: (batch, last frame, frames)."""
    async with aiohttp.ClientSession() as http:
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "raw"}
        basic = "Basic " + base64.b64encode(b"raw-client:raw-secret").decode()
        async with http.post(
            sim.base_url + "/restapi/oauth/token", data=form, headers={"Authorization": basic}
        ) as answer:
            token = (await answer.json())["access_token"]
        async with http.post(
            sim.base_url + "/restapi/oauth/wstoken", headers={"Authorization": f"Bearer {token}"}
        ) as answer:
            wstoken = await answer.json()
    url = f"{wstoken['uri']}?access_token={wstoken['ws_access_token']}"
    decoder = msgspec.json.Decoder()
    async with websockets.connect(url, max_size=None) as ws:
        decoder.decode(await asyncio.wait_for(ws.recv(), 10))  # ConnectionDetails
        header = {"type": "ClientRequest", "messageId": "sub-1", "method": "POST",
                  "path": "/restapi/v1.0/subscription"}  # fmt: skip
        body = {
            "eventFilters": ["/restapi/v1.0/account/~/telephony/sessions"],
            "deliveryMode": {"transportType": "WebSocket"},
        }
        await ws.send(msgspec.json.encode([header, body]).decode())
        subscription = decoder.decode(await asyncio.wait_for(ws.recv(), 10))[1]
        batch = await sim.play("burst", events)
        seen = 0
        last = 0.0
        async with asyncio.timeout(120):
            while seen < batch.events:
                frame = decoder.decode(await ws.recv())
                if (
                    isinstance(frame, list)
                    and frame
                    and frame[0].get("type") == "ServerNotification"
                ):
                    seen += 1
                    last = time.monotonic()
        # Else the simulator would keep encoding frames for this session while the daemon runs.
        delete = {**header, "messageId": "sub-2", "method": "DELETE",
                  "path": f"/restapi/v1.0/subscription/{subscription['id']}"}  # fmt: skip
        await ws.send(msgspec.json.encode([delete]).decode())
        await asyncio.wait_for(ws.recv(), 10)
    return batch, last, seen


# ---- (d) memory per in-flight session, in a fresh process ---------------------------------------


def _frames_in_flight(org: Organisation, factory: CallFactory, calls: int) -> Iterator[bytes]:
    """Every notification frame of ``calls`` calls except each session's last one."""
    t0 = datetime.now(UTC)
    event = f"/restapi/v1.0/account/{org.account_id}/telephony/sessions"
    uuid = 0
    for n in range(calls):
        call = factory.make(t0 + timedelta(milliseconds=10 * n))
        last: dict[object, int] = {}
        for index, ev in enumerate(call.events):
            last[ev.body.get("telephonySessionId")] = index
        held = set(last.values())
        for index, ev in enumerate(call.events):
            if index in held:
                continue
            uuid += 1
            note = str(uuid)
            yield msgspec.json.encode([
                {"type": "ServerNotification", "messageId": note, "status": 200,
                 "headers": {"RCRequestId": note}, "wsc": {"token": "wsc", "sequence": uuid}},
                {"uuid": note, "event": event, "timestamp": ev.body.get("eventTime"),
                 "subscriptionId": "sub", "ownerId": org.owner_extension_id, "body": ev.body},
            ])  # fmt: skip


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _memory_child(pipe: Connection, config: str, sessions: int, seed: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    account = load_config(config).account()
    org = Organisation.build(seed)
    directory = Directory.from_api(org.extension_records())
    tracker = Tracker(
        directory, tracker_options(account), Policy(policy_options(account), directory)
    )
    factory = CallFactory(org, seed, time_scale=1.0)
    gc.collect()
    before = _rss()
    completed = frames = 0
    for frame in _frames_in_flight(org, factory, sessions):
        completed += len(tracker.apply(decode_event(frame)))
        frames += 1
    gc.collect()
    after = _rss()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    pipe.send((len(tracker), frames, completed, before, after, peak))


async def measure_memory(config: Path, sessions: int, seed: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(
        target=_memory_child, args=(theirs, str(config), sessions, seed), daemon=True
    )
    child.start()
    theirs.close()
    try:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, ours.poll, 600):
            raise TimeoutError("the memory measurement did not finish within 600 s")
        in_flight, frames, completed, before, after, peak = ours.recv()
    finally:
        # Also on cancellation (Ctrl-C): the child ends, so the waiting thread returns.
        if child.is_alive():
            child.kill()
        child.join(10)
    return {
        "in_flight": in_flight,
        "frames": frames,
        "completed": completed,
        "bytes_per_session": (after - before) / max(in_flight, 1),
        "peak_rss": peak,
    }


# ---- one run ------------------------------------------------------------------------------------


async def start_profile(
    daemon: DaemonProcess, directory: Path | None, index: int
) -> asyncio.subprocess.Process | None:
    """py-spy sampling the daemon (the figures of a profiled run are slowed by the sampling)."""
    if directory is None or daemon.process is None:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    out = directory / f"daemon-burst-{index}.speedscope.json"
    process = await asyncio.create_subprocess_exec(
        str(spy), "record", "--pid", str(daemon.process.pid), "--rate", "250",
        "--format", "speedscope", "--output", str(out), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(1.0)  # py-spy attaches before the burst starts
    return process


async def stop_profile(spy: asyncio.subprocess.Process | None) -> None:
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    await asyncio.wait_for(spy.wait(), 30)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class RunResult:
    figures: dict[str, float] = field(default_factory=dict)
    # Structural facts: phase -> (call logs expected, received, keys requested more than once)
    phases: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # Call logs the writer received that the simulator never asked for (wrong keys).
    unexpected: int = 0


def _tsid(key: str) -> str:
    return key.split(":", 1)[0]


async def run_once(pg: PostgresForTests, options: Options, index: int, workdir: Path) -> RunResult:
    result = RunResult()
    figures = result.figures
    dsn = await pg.create_database()
    seed = options.seed + index
    # (a) the raw ceiling: a simulator of its own, so that the daemon never hears of these calls
    raw_sim = SimulatorProcess(seed)
    try:
        await raw_sim.started()
        raw, last, seen = await raw_client(raw_sim, options.burst_events)
        first, _ = await raw_sim.times(sorted({_tsid(k) for k in raw.keys}))
        figures["raw_events_per_s"] = seen / (last - min(first.values()))
    finally:
        raw_sim.close()
    sim = SimulatorProcess(seed)
    receiver = Receiver()
    daemon: DaemonProcess | None = None
    try:
        async with serve(receiver.app()) as crm_url:
            await sim.started()
            config = daemon_config(
                workdir, sim.base_url, crm_url, receiver.secret, dsn, options.grace, options.writer
            )
            daemon = DaemonProcess(config, workdir)
            await daemon.start()
            await daemon.ready()
            daemon_pid = daemon.process.pid if daemon.process is not None else os.getpid()
            meter = CpuMeter(
                {
                    "daemon": lambda: [psutil.Process(daemon_pid)],
                    "postgres": await postgres_processes(dsn),
                    "simulator": lambda: [psutil.Process(sim.process.pid)],
                    "standin": lambda: [psutil.Process()],
                }
            )

            asked: set[str] = set()

            def account(name: str, batch: Batch) -> None:
                asked.update(batch.keys)
                received = sum(1 for k in batch.keys if k in receiver.first)
                twice = sum(1 for k in batch.keys if receiver.requests.get(k, 0) > 1)
                result.phases[name] = (len(batch.keys), received, twice)

            # (b) sustained throughput
            # Played 0.5 s after the answer: the daemon's CPU is counted from then.
            spy = await start_profile(daemon, options.profile, index)
            burst = await sim.play("burst", options.burst_events)
            meter.start()
            got = await receiver.wait_for(burst.keys, 300, "throughput burst")
            for part, share in meter.stop().items():
                figures[f"cpu_{part}"] = share
            await stop_profile(spy)
            first, _ = await sim.times(sorted({_tsid(k) for k in burst.keys}))
            start = min(first.values())
            end = max(receiver.first[k] for k in got)
            figures["daemon_events_per_s"] = burst.events / (end - start)
            figures["daemon_calls_per_s"] = len(got) / (end - start)
            figures["burst_events"] = burst.events
            account("throughput", burst)
            conn = await asyncpg.connect(dsn)
            try:
                row = await conn.fetchrow(
                    "SELECT count(*) AS n, extract(epoch FROM max(created_at))::float8 AS last "
                    "FROM outbox WHERE call_key = ANY($1::text[])",
                    list(burst.keys),
                )
            finally:
                await conn.close()
            assert row is not None
            # created_at is the server's wall clock (this machine's): map it onto ours.
            committed = float(row["last"]) - (time.time() - time.monotonic()) - start
            figures["committed_events_per_s"] = burst.events / committed
            figures["committed_calls_per_s"] = int(row["n"]) / committed

            # (c) latency at two rates
            for rate in (100, 1000):
                paced = await sim.play("pace", float(rate), options.paced_seconds)
                got = await receiver.wait_for(paced.keys, options.paced_seconds + 60, f"{rate}/s")
                _, final = await sim.times(sorted({_tsid(k) for k in got}))
                latencies = [(receiver.first[k] - final[_tsid(k)]) * 1000 for k in got]
                for q in (50, 95, 99):
                    figures[f"latency_{rate}_p{q}"] = percentile(latencies, q)
                account(f"latency {rate}/s", paced)

            # (e) recovery from SIGKILL under traffic
            traffic = await sim.play("pace", 100.0, options.recovery_seconds)
            await receiver.wait_for(traffic.keys[: max(1, len(traffic.keys) // 4)], 30, "pre-kill")
            await daemon.stop(signal.SIGKILL)
            killed = time.monotonic()
            await daemon.start()
            ready = await daemon.ready()
            # Calls in flight at the kill are confirmed from the call log before they are
            # logged; after a busy minute that read waits for the Heavy budget (10/min).
            got = await receiver.wait_for(traffic.keys, options.recovery_seconds + 300, "recovery")
            _, final = await sim.times(sorted({_tsid(k) for k in got}))
            after = [t for t in receiver.arrivals if t > killed]
            live = [
                receiver.first[k]
                for k in got
                if final[_tsid(k)] > killed and receiver.first[k] > killed
            ]
            figures["recovery_ready_s"] = ready - killed
            figures["recovery_all_logged_s"] = max(receiver.first[k] for k in got) - killed
            figures["recovery_first_write_s"] = (min(after) - killed) if after else math.nan
            figures["recovery_first_live_s"] = (min(live) - killed) if live else math.nan
            account("recovery", traffic)
            await daemon.stop(signal.SIGTERM)
            figures["daemon_peak_rss"] = daemon.peak_rss

            figures["ratio"] = figures["daemon_events_per_s"] / figures["raw_events_per_s"]
            result.unexpected = len(set(receiver.requests) - asked)
            figures["refused_requests"] = receiver.refused

            # (d) memory per in-flight session
            memory = await measure_memory(config, options.sessions, seed)
            figures["sessions_in_flight"] = memory["in_flight"]
            figures["bytes_per_session"] = memory["bytes_per_session"]
            figures["tracker_peak_rss"] = memory["peak_rss"]
    finally:
        if daemon is not None:
            await daemon.stop(signal.SIGKILL)
        sim.close()
        await pg.drop_database(dsn)
    return result


# ---- the report -------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "load": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


@dataclass
class Report:
    runs: list[RunResult]
    machine_before: dict[str, str]
    load_after: str
    options: Options

    def median(self, name: str) -> float:
        values = [
            r.figures[name] for r in self.runs if not math.isnan(r.figures.get(name, math.nan))
        ]
        return statistics.median(values) if values else math.nan

    def verdicts(self) -> dict[str, bool]:
        return {
            "ratio": self.median("ratio") >= TARGET_RATIO,
            "latency": self.median("latency_1000_p99") <= TARGET_P99_MS,
            "memory": self.median("bytes_per_session") <= TARGET_BYTES_PER_SESSION,
            "recovery": self.median("recovery_first_write_s") <= TARGET_RECOVERY_S,
        }

    def table(self) -> Table:
        m = self.median
        ok = self.verdicts()

        def verdict(name: str) -> str:
            return "holds" if ok[name] else "MISSED"

        mb = 1024 * 1024
        table = Table(title=f"pipeline benchmark: median of {len(self.runs)} run(s)")
        for column in ("measure", "value", "target", "verdict"):
            table.add_column(column)
        table.add_row(
            "(a) raw client: receive + decode", f"{m('raw_events_per_s'):,.0f} events/s", "", ""
        )
        table.add_row(
            "(b) daemon end to end: events in", f"{m('daemon_events_per_s'):,.0f} events/s", "", ""
        )
        table.add_row(
            "(b) call logs handed to the writer", f"{m('daemon_calls_per_s'):,.0f} calls/s", "", ""
        )
        table.add_row(
            "(b) committed to the outbox (events / call logs)",
            f"{m('committed_events_per_s'):,.0f} / {m('committed_calls_per_s'):,.0f} per s",
            "",
            "",
        )
        table.add_row(
            "(b) CPU during the burst, share of one core: daemon / PostgreSQL / simulator / "
            "stand-in / whole machine",
            f"{m('cpu_daemon'):.0%} / {m('cpu_postgres'):.0%} / {m('cpu_simulator'):.0%} / "
            f"{m('cpu_standin'):.0%} / {m('cpu_machine'):.0%} of {os.cpu_count()}00%",
            "",
            "",
        )
        table.add_row("(b)/(a)", f"{m('ratio'):.2f}", f">= {TARGET_RATIO}", verdict("ratio"))
        for rate in (100, 1000):
            table.add_row(
                f"(c) call end -> CRM at {rate:,} events/s p50/p95/p99",
                f"{m(f'latency_{rate}_p50'):.1f} / {m(f'latency_{rate}_p95'):.1f} / "
                f"{m(f'latency_{rate}_p99'):.1f} ms",
                f"p99 <= {TARGET_P99_MS:.0f} ms" if rate == 1000 else "",
                verdict("latency") if rate == 1000 else "",
            )
        table.add_row(
            f"(d) RSS per in-flight session ({m('sessions_in_flight'):,.0f} sessions, tracker)",
            f"{m('bytes_per_session'):,.0f} B", f"<= {TARGET_BYTES_PER_SESSION} B", verdict("memory"),
        )  # fmt: skip
        table.add_row(
            "(d) peak RSS of that process", f"{m('tracker_peak_rss') / mb:,.0f} MB", "", ""
        )
        table.add_row(
            "(d) peak RSS of the daemon in this run", f"{m('daemon_peak_rss') / mb:,.0f} MB", "", ""
        )
        table.add_row(
            "(e) SIGKILL -> restarted daemon READY", f"{m('recovery_ready_s'):.2f} s", "", ""
        )
        table.add_row(
            "(e) SIGKILL -> first call log written again", f"{m('recovery_first_write_s'):.2f} s",
            f"<= {TARGET_RECOVERY_S:.0f} s", verdict("recovery"),
        )  # fmt: skip
        table.add_row(
            "(e) SIGKILL -> first call ended after the kill logged",
            f"{m('recovery_first_live_s'):.2f} s",
            "",
            "",
        )
        table.add_row(
            "(e) SIGKILL -> every call of the phase logged (in-flight ones via the call log)",
            f"{m('recovery_all_logged_s'):.1f} s",
            "",
            "",
        )
        table.caption = (
            f"{self.machine_before['date']}; {self.machine_before['cpu']}, {self.machine_before['cores']} cores; "
            f"Python {self.machine_before['python']}; load average {self.machine_before['load']} before, "
            f"{self.load_after} after; burst {m('burst_events'):,.0f} events; completion_grace "
            f"{self.options.grace} s"
        )
        return table

    def facts(self) -> Table:
        table = Table(
            title="call logs per phase: expected / received / requested more than once "
            "(answered 409); last column: received but never expected"
        )
        table.add_column("run")
        names = list(self.runs[0].phases) if self.runs else []
        for name in names:
            table.add_column(name)
        table.add_column("unexpected")
        for n, run in enumerate(self.runs, start=1):
            table.add_row(
                str(n), *(" / ".join(map(str, run.phases[p])) for p in names), str(run.unexpected)
            )
        return table


def run(options: Options, pg: PostgresForTests | None = None) -> Report:
    """Every run, each with a fresh database, simulator and daemon; ``pg`` may be shared."""
    before = machine()
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
    own = pg is None
    server = PostgresForTests.start() if pg is None else pg
    runs: list[RunResult] = []
    try:
        for index in range(options.runs):
            if options.workdir is not None:
                workdir = options.workdir / f"run-{index + 1}"
                workdir.mkdir(parents=True, exist_ok=True)
                runs.append(asyncio.run(run_once(server, options, index, workdir)))
                continue
            with tempfile.TemporaryDirectory(prefix="sscl-bench-") as tmp:
                runs.append(asyncio.run(run_once(server, options, index, Path(tmp))))
    finally:
        if own:
            server.close()
    return Report(runs, before, " ".join(f"{v:.2f}" for v in os.getloadavg()), options)


def _writer_setting(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not value.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=N, e.g. concurrency=16")
    return name, int(value)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (1 run, small sizes)"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="runs to take the median of (default 3)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--grace", type=float, default=0.0, help="calls.completion_grace (s)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep daemon logs here")
    parser.add_argument("--sessions", type=int, default=None, help="in-flight sessions for (d)")
    parser.add_argument(
        "--burst", type=int, default=None, help="events in the throughput burst (default 100,000)"
    )
    parser.add_argument(
        "--writer",
        type=_writer_setting,
        action="append",
        default=[],
        metavar="NAME=N",
        help="a writer setting over the default, e.g. concurrency=16 (repeatable)",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="write py-spy profiles of the burst here"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = Options.from_args(parse(argv))
    try:
        report = run(options)
    except KeyboardInterrupt:
        print("interrupted; the daemon, the simulator and the database are gone", file=sys.stderr)
        return 130
    console = Console(width=160)
    console.print(report.table())
    console.print(report.facts())
    complete = all(
        expected == received and not r.unexpected
        for r in report.runs
        for expected, received, _ in r.phases.values()
    )
    return 0 if complete and all(report.verdicts().values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
