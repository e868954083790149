"""End to end in one process: simulator -> daemon (real Postgres) -> webhook CRM stand-in.

Proves that calls flow into the CRM exactly as the simulator's ground truth says, that
the daemon speaks sd_notify on a real socket, and that SIGHUP applies a new blocklist
without a restart while an invalid file keeps the old one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from tests.daemon.harness import (
    daemon_config,
    fast_simulator,
    logged_keys,
    webhook_crm,
    write_config,
)
from tests.daemon.helpers import wait_until

from sscl_daemon import metrics
from sscl_daemon.config import ConfigError, load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.sdnotify import Notifier
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.simulator.scenarios import CallKind, SimCall


@dataclass
class Running:
    sim: Simulator
    crm: WebhookReceiverState
    daemon: Daemon
    task: asyncio.Task[int]
    config_path: Path
    config: dict[str, dict[str, object]]
    notify: socket.socket
    state_dir: Path

    def delivered(self) -> set[str]:
        return set(self.crm.deliveries)


@pytest.fixture
async def running(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Running]:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    async with fast_simulator(seed=11) as sim, webhook_crm() as (crm, crm_url):
        state_dir = tmp_path / "state"
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=state_dir,
            dsn=pg_dsn,
        )
        path = write_config(tmp_path / "config.toml", config)
        daemon = Daemon(load_config(path), notifier=Notifier(str(tmp_path / "notify.sock")))
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 30)
        try:
            yield Running(sim, crm, daemon, task, path, config, notify, state_dir)
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 30) == 0
            notify.close()


async def _notifications(sock: socket.socket) -> list[str]:
    messages: list[str] = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


# Every kind of call that logs something under the default policy (internal calls don't).
LOGGED_KINDS = [kind for kind in CallKind if kind is not CallKind.INTERNAL]


def _make_calls(sim: Simulator, count: int) -> list[SimCall]:
    """``count`` calls cycling through the kinds, each fixed by its salt (not by the clock)."""
    now = datetime.now(UTC)
    return [
        sim.factory.make(now, LOGGED_KINDS[i % len(LOGGED_KINDS)], salt=i) for i in range(count)
    ]


def _expected_keys(calls: list[SimCall]) -> set[str]:
    return {log.key for call in calls for log in call.expected}


async def test_calls_flow_into_the_crm_exactly_as_simulated(running: Running) -> None:
    calls = [running.sim.inject(call) for call in _make_calls(running.sim, 25)]
    expected = _expected_keys(calls)
    assert len(expected) >= 25
    await wait_until(lambda: expected <= running.delivered(), 30, "every call in the CRM")
    assert running.delivered() == expected
    await wait_until(lambda: set(logged_keys(running.state_dir)) == expected, 10, "jsonl")
    keys = logged_keys(running.state_dir)
    assert len(keys) == len(set(keys)), "a call was logged twice in the jsonl file"
    deliveries = list(running.crm.deliveries.values())
    sample = deliveries[0].payload["data"]
    assert isinstance(sample, dict)
    assert sample["key"] in expected
    messages = await _notifications(running.notify)
    assert any("READY=1" in m for m in messages), messages


async def test_admin_endpoint_reports_ready_and_metrics(running: Running) -> None:
    running.sim.inject(_make_calls(running.sim, 1)[0])
    port = running.daemon.admin_port
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["checks"] == {
                "subscribed": True,
                "store": True,
                "account:default": True,
                "commits:default": True,
            }
        await wait_until(lambda: len(running.delivered()) >= 1, 30, "a delivery")
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    assert 'sscl_writes_total{outcome="created",writer="crm"}' in text
    assert "sscl_subscribed 1.0" in text


def _blocked(calls: list[SimCall], number: str) -> set[str]:
    return {log.key for call in calls for log in call.expected if log.external_number == number}


async def test_sighup_applies_a_new_blocklist_and_rejects_an_invalid_file(
    running: Running,
) -> None:
    calls = [c for c in _make_calls(running.sim, 40) if any(e.external_number for e in c.expected)]
    number = next(e.external_number for e in calls[0].expected if e.external_number)
    assert number is not None
    running.config["blocklist"] = {"entries": [number]}
    write_config(running.config_path, running.config)
    skipped_before = metrics.CALLS_SKIPPED.labels(reason="blocklisted_number")._value.get()
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_until(
        lambda: running.daemon.settings.account().blocklist.matches_number(number), 10, "reload"
    )
    messages = await _notifications(running.notify)
    assert any("RELOADING=1" in m and "MONOTONIC_USEC=" in m for m in messages), messages

    first, second = calls[: len(calls) // 2], calls[len(calls) // 2 :]
    for call in first:
        running.sim.inject(call)
    blocked = _blocked(first, number)
    wanted = _expected_keys(first) - blocked
    await wait_until(lambda: wanted <= running.delivered(), 30, "unblocked calls logged")
    await wait_until(
        lambda: (
            metrics.CALLS_SKIPPED.labels(reason="blocklisted_number")._value.get()
            >= skipped_before + len(blocked)
        ),
        10,
        "blocked calls completed and skipped",
    )
    assert blocked, "the test needs at least one call with the blocked number"
    assert not blocked & running.delivered()

    # An invalid file: the old blocklist stays, nothing else changes.
    text = running.config_path.read_text().replace(f'"{number}"', '"not a number"')
    running.config_path.write_text(text)
    with pytest.raises(ConfigError, match="not a number"):
        load_config(running.config_path)
    rejected = metrics.CONFIG_RELOADS.labels(result="rejected")._value.get()
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_until(
        lambda: metrics.CONFIG_RELOADS.labels(result="rejected")._value.get() == rejected + 1,
        10,
        "reload rejected",
    )
    assert running.daemon.settings.account().blocklist.matches_number(number)
    for call in second:
        running.sim.inject(call)
    blocked_later = _blocked(second, number)
    wanted_later = _expected_keys(second) - blocked_later
    await wait_until(lambda: wanted_later <= running.delivered(), 30, "later calls logged")
    await wait_until(
        lambda: (
            metrics.CALLS_SKIPPED.labels(reason="blocklisted_number")._value.get()
            >= skipped_before + len(blocked) + len(blocked_later)
        ),
        10,
        "later blocked calls skipped",
    )
    assert not (blocked | blocked_later) & running.delivered()
