"""The embedded PostgreSQL server: start, use, stop, and recovery from a dead owner."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
import pytest

from sscl_daemon.config import StoreSettings
from sscl_daemon.store import Checkpoint, Store, StoreError
from sscl_daemon.store.embedded import (
    FAST_UNSAFE_SETTINGS,
    SOCKET_PORT,
    EmbeddedServer,
)


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line names this data directory (never the system one)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and str(data_dir) in cmdline:
            found.append(proc)
    return found


def assert_nothing_left(server: EmbeddedServer) -> None:
    assert server_processes(server.data_dir) == []
    assert not (server.data_dir / "postmaster.pid").exists()
    assert not (server.socket_dir / f".s.PGSQL.{SOCKET_PORT}").exists()
    assert not (server.socket_dir / f".s.PGSQL.{SOCKET_PORT}.lock").exists()
    assert not server.lock_path.exists()
    if server.socket_dir != server.root:
        assert not server.socket_dir.exists()


async def select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_start_use_stop_leaves_nothing_behind(embedded_state_dir: Path) -> None:
    server = EmbeddedServer(
        embedded_state_dir / "state" / "postgres", settings=FAST_UNSAFE_SETTINGS
    )
    dsn = await server.astart()
    try:
        assert server.running
        assert [p.pid for p in server_processes(server.data_dir)] == [server.pid]
        assert await select_one(dsn) == 1
        assert (server.data_dir / "postmaster.pid").exists()
    finally:
        await server.astop()
    assert not server.running
    assert_nothing_left(server)
    # The data directory stays and the next start uses it.
    await server.astart()
    try:
        assert await select_one(server.dsn()) == 1
    finally:
        await server.astop()
    assert_nothing_left(server)


def test_a_second_owner_is_refused(embedded_state_dir: Path) -> None:
    root = embedded_state_dir / "postgres"
    with (
        EmbeddedServer(root, settings=FAST_UNSAFE_SETTINGS),
        pytest.raises(StoreError, match="in use by another process"),
    ):
        EmbeddedServer(root).start()
    assert not root.joinpath("server.lock").exists()


_OWNER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sscl_daemon.store.embedded import EmbeddedServer, FAST_UNSAFE_SETTINGS
    server = EmbeddedServer(Path(sys.argv[1]), settings=FAST_UNSAFE_SETTINGS)
    server.start()
    print(server.pid, flush=True)
    time.sleep(120)
    """
)


def test_next_start_works_after_the_owner_was_killed(embedded_state_dir: Path) -> None:
    root = embedded_state_dir / "postgres"
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    postmaster_pid = int(owner.stdout.readline())
    assert psutil.pid_exists(postmaster_pid)
    owner.send_signal(signal.SIGKILL)
    owner.wait(10)

    server = EmbeddedServer(root, settings=FAST_UNSAFE_SETTINGS)
    server.start()
    try:
        assert server.pid != postmaster_pid
        assert asyncio.run(select_one(server.dsn())) == 1
    finally:
        server.stop()
    assert_nothing_left(server)


def _start_detached(server: EmbeddedServer) -> int:
    """A server on ``server``'s data directory that nobody owns (as a crash would leave it)."""
    data = server.data_dir
    owner = data.stat().st_uid
    # A crashed owner leaves its socket directory behind; a clean stop removed it.
    server.socket_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(server.socket_dir, owner, data.stat().st_gid)
    options = f"-c listen_addresses= -c unix_socket_directories={server.socket_dir}"
    subprocess.run(
        [
            str(server.bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            "/dev/null",
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
        user=owner if os.geteuid() == 0 else None,
        group=data.stat().st_gid if os.geteuid() == 0 else None,
        extra_groups=[] if os.geteuid() == 0 else None,
    )
    return int((data / "postmaster.pid").read_text().split()[0])


async def test_a_leftover_server_is_stopped_before_starting(embedded_state_dir: Path) -> None:
    server = EmbeddedServer(embedded_state_dir / "postgres", settings=FAST_UNSAFE_SETTINGS)
    server.start()
    server.stop()
    orphan = _start_detached(server)
    assert psutil.pid_exists(orphan)

    await server.astart()
    try:
        assert server.pid != orphan
        assert not psutil.pid_exists(orphan) or psutil.Process(orphan).status() == "zombie"
        assert await select_one(server.dsn()) == 1
    finally:
        await server.astop()
    assert_nothing_left(server)


def test_a_stale_pid_file_is_ignored(embedded_state_dir: Path) -> None:
    server = EmbeddedServer(embedded_state_dir / "postgres", settings=FAST_UNSAFE_SETTINGS)
    server.start()
    server.stop()
    # PID 1 is alive but is no postgres of ours: as after a reboot that reused the pid.
    lines = [
        "1",
        str(server.data_dir),
        "0",
        str(SOCKET_PORT),
        str(server.socket_dir),
        "",
        "",
        "ready",
    ]
    (server.data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")
    server.start()
    try:
        assert server.running
    finally:
        server.stop()
    assert_nothing_left(server)


def test_long_state_paths_put_the_socket_in_the_temp_dir(embedded_state_dir: Path) -> None:
    root = embedded_state_dir.joinpath("a" * 60, "b" * 60, "postgres")
    server = EmbeddedServer(root, settings=FAST_UNSAFE_SETTINGS)
    assert server.socket_dir != server.root
    with server:
        assert (server.socket_dir / f".s.PGSQL.{SOCKET_PORT}").is_socket()
    assert_nothing_left(server)


def test_a_data_directory_of_another_major_version_is_refused(embedded_state_dir: Path) -> None:
    data = embedded_state_dir / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("16\n")
    with pytest.raises(StoreError, match="created by PostgreSQL 16"):
        EmbeddedServer(embedded_state_dir / "postgres").start()
    assert not (embedded_state_dir / "postgres" / "server.lock").exists()


async def test_store_open_starts_and_close_stops_the_embedded_server(
    embedded_state_dir: Path,
) -> None:
    settings = StoreSettings(dsn="embedded")
    store = await Store.open(settings, embedded_state_dir)
    server = store.embedded_server
    assert server is not None
    assert server.running
    assert server.root == (embedded_state_dir / "postgres").resolve()
    checkpoint = Checkpoint(last_event_time=datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    await store.commit_batch("acc", [], ["w"], checkpoint)
    await store.close()
    assert_nothing_left(server)

    async with await Store.open(settings, embedded_state_dir) as reopened:
        loaded = await reopened.load_checkpoint("acc")
        assert loaded is not None
        assert loaded.last_event_time == checkpoint.last_event_time


async def test_a_crashed_server_gives_store_errors_and_the_next_open_recovers(
    embedded_state_dir: Path,
) -> None:
    settings = StoreSettings(dsn="embedded")
    store = await Store.open(settings, embedded_state_dir)
    server = store.embedded_server
    assert server is not None
    await store.save_snapshot("acc", b"before the crash")
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    # Backends notice their postmaster's death within moments; from then on every call fails.
    error: StoreError | None = None
    async with asyncio.timeout(10):
        while error is None:
            try:
                await store.load_snapshot("acc")
            except StoreError as exc:
                error = exc
            await asyncio.sleep(0.01)
    assert str(error).startswith("store: loading the snapshot failed")
    await store.close()
    assert_nothing_left(server)

    async with await Store.open(settings, embedded_state_dir) as reopened:
        assert await reopened.load_snapshot("acc") == b"before the crash"


def test_a_server_that_cannot_start_is_reported_with_its_log(embedded_state_dir: Path) -> None:
    server = EmbeddedServer(embedded_state_dir / "postgres", settings={"no_such_setting": "1"})
    with pytest.raises(StoreError) as caught:
        server.start()
    message = str(caught.value)
    assert "exited at start" in message
    assert 'unrecognized configuration parameter "no_such_setting"' in message
    assert_nothing_left(server)
