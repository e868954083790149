"""No store wedge (issue 19): the daemon heals from a lost store, or exits for a restart.

Before, after the embedded postmaster was SIGKILLed the daemon stayed alive but not
ready for good: no reconnect, no restart of its own server, no exit for the
supervisor. Each test runs a real daemon (in this process) against the simulator and
the webhook CRM stand-in, breaks its store, and checks that calls placed afterwards
reach the CRM, or that the daemon exits with the status the unit restarts on.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from tests.daemon.harness import daemon_config, fast_simulator, webhook_crm, write_config
from tests.daemon.helpers import wait_until

from sscl_daemon.config import load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.exitcodes import EXIT_FAILURE
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.simulator.scenarios import CallKind
from sscl_daemon.store.embedded import FAST_UNSAFE_SETTINGS, EmbeddedServer
from sscl_daemon.store.errors import dsn_target
from sscl_daemon.store.testing import PostgresForTests


@dataclass
class Running:
    sim: Simulator
    crm: WebhookReceiverState
    daemon: Daemon
    task: asyncio.Task[int]

    def place(self, count: int, salt: int) -> set[str]:
        """``count`` answered inbound calls; returns the keys the CRM must receive."""
        now = datetime.now(UTC)
        calls = [
            self.sim.inject(self.sim.factory.make(now, CallKind.INBOUND_ANSWERED, salt=salt + i))
            for i in range(count)
        ]
        return {log.key for call in calls for log in call.expected}

    async def delivered(self, keys: set[str], within: float = 30.0) -> None:
        await wait_until(lambda: keys <= set(self.crm.deliveries), within, "calls in the CRM")


@asynccontextmanager
async def running_daemon(
    dsn: str, workdir: Path, *, outage_limit: float = 60.0, expect: int = 0
) -> AsyncIterator[Running]:
    async with fast_simulator(seed=19) as sim, webhook_crm() as (crm, crm_url):
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=workdir / "state",
            dsn=dsn,
            extra={"store": {"outage_limit": outage_limit}},
        )
        path = write_config(workdir / "config.toml", config)
        daemon = Daemon(load_config(path), handle_signals=False)
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 30)
        try:
            yield Running(sim, crm, daemon, task)
        finally:
            if not task.done():
                daemon.stop()
            assert await asyncio.wait_for(task, 60) == expect


async def test_a_sigkilled_embedded_postmaster_is_restarted_and_logging_resumes(
    embedded_state_dir: Path,
) -> None:
    async with running_daemon("embedded", embedded_state_dir) as run:
        await run.delivered(run.place(3, salt=0))
        store = run.daemon.store
        assert store is not None
        server = store.embedded_server
        assert server is not None
        assert server.pid is not None
        killed = server.pid
        os.kill(killed, signal.SIGKILL)
        watch = run.daemon.store_watch
        assert watch is not None
        await wait_until(lambda: watch.restarts >= 1 and watch.healthy, 60, "server restarted")
        assert server.pid != killed
        await run.delivered(run.place(5, salt=100), within=60)
        readiness = await run.daemon._readiness()
        assert readiness["store"]


async def test_connections_cut_by_an_external_server_heal(
    pg_server: PostgresForTests, pg_dsn: str, tmp_path: Path
) -> None:
    """As after an external PostgreSQL restart: every connection of the daemon dies at once."""
    database = dsn_target(pg_dsn).database

    async def cut() -> int:
        admin = await asyncpg.connect(pg_server.admin_dsn)
        try:
            return len(
                await admin.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
            )
        finally:
            await admin.close()

    async with running_daemon(pg_dsn, tmp_path) as run:
        await run.delivered(run.place(3, salt=0))
        assert await cut() > 0
        await run.delivered(run.place(4, salt=200), within=60)
        assert await cut() > 0
        await run.delivered(run.place(4, salt=300), within=60)


async def test_an_external_server_restarted_is_used_again() -> None:
    """A real restart of the server named by ``store.dsn`` (down for a few seconds)."""
    workdir = Path(tempfile.mkdtemp(prefix="sscl-outage-"))
    server = EmbeddedServer(workdir / "external", settings=FAST_UNSAFE_SETTINGS)
    dsn = await server.astart()
    try:
        async with running_daemon(dsn, workdir) as run:
            await run.delivered(run.place(2, salt=0))
            await server.astop()
            watch = run.daemon.store_watch
            assert watch is not None
            await wait_until(lambda: not watch.healthy, 30, "the outage noticed")
            during = run.place(3, salt=600)
            assert await server.astart() == dsn
            await run.delivered(during | run.place(3, salt=700), within=60)
            await wait_until(lambda: watch.healthy, 30, "the store healthy again")
            assert not watch.gave_up
    finally:
        await server.astop()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_a_store_that_does_not_come_back_ends_the_daemon_for_a_restart() -> None:
    """Never alive-but-useless: exit 1 (the unit restarts on it), watchdog no longer fed."""
    workdir = Path(tempfile.mkdtemp(prefix="sscl-outage-"))
    server = EmbeddedServer(workdir / "external", settings=FAST_UNSAFE_SETTINGS)
    dsn = await server.astart()
    try:
        async with running_daemon(dsn, workdir, outage_limit=2.0, expect=EXIT_FAILURE) as run:
            await run.delivered(run.place(2, salt=0))
            await server.astop()  # an external server that stays down
            code = await asyncio.wait_for(asyncio.shield(run.task), 60)
            assert code == EXIT_FAILURE
            watch = run.daemon.store_watch
            assert watch is not None
            assert watch.gave_up
    finally:
        await server.astop()
        shutil.rmtree(workdir, ignore_errors=True)


def mount_tmpfs(path: Path, megabytes: int) -> str | None:
    """Mount a tmpfs of ``megabytes`` on ``path``; None when done, else why it failed."""
    path.mkdir(parents=True)
    options = f"size={megabytes}m,mode=0700"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    return None if mounted.returncode == 0 else mounted.stderr.strip()


@asynccontextmanager
async def small_filesystem(path: Path, megabytes: int) -> AsyncIterator[Path]:
    """A tmpfs of ``megabytes`` on ``path`` (root only), unmounted at the end."""
    problem = await asyncio.to_thread(mount_tmpfs, path, megabytes)
    if problem is not None:
        pytest.skip(f"cannot mount a tmpfs to fill (needs CAP_SYS_ADMIN): {problem}")
    try:
        yield path
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file in ``directory`` until the file system is full; returns it."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 20)
    error: int | None = None
    with filler.open("wb", buffering=0) as out:
        while error is None:
            try:
                out.write(chunk)
            except OSError as exc:
                error = exc.errno
    assert error == errno.ENOSPC
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system to fill needs root")
async def test_a_full_disk_holds_calls_back_says_so_and_they_are_logged_when_space_returns(
    embedded_state_dir: Path,
) -> None:
    async with (
        small_filesystem(embedded_state_dir / "state", 192) as state,
        running_daemon("embedded", embedded_state_dir) as run,
    ):
        await run.delivered(run.place(2, salt=0))
        filler = await asyncio.to_thread(fill, state)
        # Pages with room left still take rows: calls go on until one needs a new page.
        placed: set[str] = set()

        async def says_so() -> bool:
            placed.update(run.place(1, salt=500 + len(placed)))
            checks = await run.daemon._readiness()
            return not all(checks.values())

        await wait_until(says_so, 60, "readiness reporting the failing store")
        await asyncio.to_thread(filler.unlink)
        await run.delivered(placed, within=120)

        async def ready_again() -> bool:
            return all((await run.daemon._readiness()).values())

        await wait_until(ready_again, 60, "ready again")
