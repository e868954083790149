"""sd_notify over a real unix datagram socket, as systemd would receive it."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sscl_daemon.config import Settings
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def _receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    assert data.endswith("\n")
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_status_stopping_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    notifier.ready("subscribed")
    assert _receive(sock) == {"READY": "1", "STATUS": "subscribed"}
    notifier.status("reconciling")
    assert _receive(sock) == {"STATUS": "reconciling"}
    notifier.stopping()
    assert _receive(sock) == {"STOPPING": "1"}
    notifier.close()


def test_reloading_carries_the_monotonic_time(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier(path).reloading()
    fields = _receive(sock)
    assert fields["RELOADING"] == "1"
    assert int(fields["MONOTONIC_USEC"]) >= before


def test_abstract_namespace_socket() -> None:
    name = f"sscl-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).ready()
        assert _receive(sock) == {"READY": "1"}
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("x")  # must not raise


def test_a_vanished_socket_never_raises(tmp_path: Path) -> None:
    Notifier(str(tmp_path / "gone.sock")).ready()


def test_watchdog_interval_is_half_the_timeout_and_respects_watchdog_pid() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "20000000"}
    assert Notifier.from_env(env).watchdog_interval == 10.0
    mine = {**env, "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(mine).watchdog_interval == 10.0
    other = {**env, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_env(other).watchdog_interval is None


async def test_the_daemon_pings_the_watchdog_from_its_event_loop(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    sock.setblocking(False)
    notifier = Notifier(path, watchdog_usec=20_000)  # a ping every 10 ms
    daemon = Daemon(Settings(), notifier=notifier, handle_signals=False)
    task = asyncio.create_task(daemon._feed_watchdog())
    loop = asyncio.get_running_loop()
    try:
        for _ in range(3):
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            assert data == b"WATCHDOG=1\n"
    finally:
        task.cancel()
        notifier.close()
