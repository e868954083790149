"""End to end with the daemon as a real process: SIGTERM drains, SIGKILL loses nothing.

The simulator and the webhook CRM stand-in run in the test; ``sscl-daemon run`` runs as a
subprocess on a real Postgres, reporting READY=1 on a real ``$NOTIFY_SOCKET``. After
SIGKILLs at seeded random moments during traffic and a restart, the CRM holds every
simulated call exactly once (compared with the simulator's ground truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.daemon.harness import (
    daemon_config,
    fast_simulator,
    logged_keys,
    webhook_crm,
    write_config,
)
from tests.daemon.helpers import wait_until

from sscl_daemon.config import StoreSettings
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.store import OutboxStatus, Store


class DaemonProcess:
    """``sscl-daemon run`` in a subprocess, with its own notify socket and log file."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.notify: socket.socket | None = None
        self.received = ""

    def start(self) -> None:
        self.runs += 1
        self.received = ""
        path = self.workdir / f"notify-{self.runs}.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(path))
        self.notify.setblocking(False)
        log = (self.workdir / f"daemon-{self.runs}.log").open("wb")
        env = {**os.environ, "NOTIFY_SOCKET": str(path)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sscl_daemon", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()

    def messages(self) -> str:
        """Everything the current run sent to its notify socket so far."""
        while self.notify is not None:
            try:
                self.received += self.notify.recv(4096).decode()
            except BlockingIOError:
                break
        return self.received

    async def ready(self) -> None:
        def is_ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.log()}")
            return "READY=1" in self.messages()

        await wait_until(is_ready, 60, "READY=1 from the daemon")

    def log(self) -> str:
        return (self.workdir / f"daemon-{self.runs}.log").read_text(errors="replace")[-4000:]

    async def signal(self, signum: int, within: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return await self.wait(within)

    async def wait(self, within: float) -> int:
        assert self.process is not None
        process = self.process
        await wait_until(lambda: process.poll() is not None, within, "the daemon to exit")
        if self.notify is not None:
            self.messages()
            self.notify.close()
            self.notify = None
        return int(process.returncode)

    def kill_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
async def world(
    pg_dsn: str, tmp_path: Path
) -> AsyncIterator[tuple[Simulator, WebhookReceiverState, DaemonProcess]]:
    async with fast_simulator(seed=23) as sim, webhook_crm() as (crm, crm_url):
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=tmp_path / "state",
            dsn=pg_dsn,
        )
        daemon = DaemonProcess(write_config(tmp_path / "config.toml", config), tmp_path)
        try:
            yield sim, crm, daemon
        finally:
            daemon.kill_if_running()


async def _traffic(sim: Simulator, count: int, rng: random.Random) -> None:
    for _ in range(count):
        sim.inject(sim.factory.make(datetime.now(UTC)))
        await asyncio.sleep(rng.uniform(0.01, 0.08))


def _explain(sim: Simulator, missing: set[str], extra: set[str]) -> str:
    kinds = {log.key: (call.kind.value, log.result) for call in sim.calls for log in call.expected}
    lines = [f"missing {len(missing)}, extra {len(extra)}"]
    lines += [f"  missing {key}: {kinds.get(key)}" for key in sorted(missing)[:20]]
    lines += [f"  extra {key}" for key in sorted(extra)[:20]]
    return "\n".join(lines)


def _expected(sim: Simulator) -> set[str]:
    return {log.key for log in sim.expected_logs()}


@pytest.mark.slow
async def test_sigterm_commits_drains_and_exits_zero(
    world: tuple[Simulator, WebhookReceiverState, DaemonProcess], pg_dsn: str, tmp_path: Path
) -> None:
    sim, crm, daemon = world
    daemon.start()
    await daemon.ready()
    await _traffic(sim, 30, random.Random(5))
    code = await daemon.signal(signal.SIGTERM, within=30)
    assert code == 0, daemon.log()
    assert "STOPPING=1" in daemon.messages()
    assert "daemon.service.stopped" in daemon.log()
    store = await Store.open(StoreSettings(dsn=pg_dsn), tmp_path)
    try:
        assert await store.load_snapshot("default") is not None
        rows = await store.outbox_rows(writer="crm")
        # Drained: nothing was left half-sent (in flight) by the stop.
        assert all(r.status is not OutboxStatus.IN_FLIGHT for r in rows)
        sent = {r.call_key for r in rows if r.status is OutboxStatus.SENT}
        assert sent <= set(crm.deliveries)
    finally:
        await store.close()
    # Whatever the stop left pending is logged after a restart, and nothing twice.
    daemon.start()
    await daemon.ready()
    expected = _expected(sim)
    await wait_until(lambda: expected <= set(crm.deliveries), 60, "every call in the CRM")
    assert set(crm.deliveries) == expected
    assert await daemon.signal(signal.SIGTERM) == 0


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing_and_logs_nothing_twice(
    world: tuple[Simulator, WebhookReceiverState, DaemonProcess], tmp_path: Path
) -> None:
    sim, crm, daemon = world
    rng = random.Random(20261124)
    daemon.start()
    await daemon.ready()
    traffic = asyncio.create_task(_traffic(sim, 100, random.Random(7)))
    try:
        for _ in range(3):
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            assert await daemon.signal(signal.SIGKILL) == -signal.SIGKILL
            daemon.start()
            await daemon.ready()
        await asyncio.wait_for(traffic, 60)
    finally:
        traffic.cancel()
    expected = _expected(sim)
    assert len(expected) >= 100

    def missing() -> set[str]:
        return expected - set(crm.deliveries)

    with contextlib.suppress(AssertionError):
        await wait_until(lambda: not missing(), 80, "every call in the CRM")
    extra = set(crm.deliveries) - expected
    assert not missing(), _explain(sim, missing(), extra)
    assert not extra, _explain(sim, missing(), extra)
    state = tmp_path / "state"
    await wait_until(lambda: set(logged_keys(state)) >= expected, 30, "every call in the jsonl")
    keys = logged_keys(state)
    assert len(keys) == len(set(keys)), "the jsonl writer logged a call twice"
    assert set(keys) == expected
    assert await daemon.signal(signal.SIGTERM) == 0
