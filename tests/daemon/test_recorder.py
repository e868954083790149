"""Recording notifications for ``replay``: what the daemon received replays to the same logs."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.daemon.harness import daemon_config, fast_simulator, webhook_crm, write_config
from tests.daemon.helpers import wait_until

from sscl_daemon import cli
from sscl_daemon.config import load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.ringcentral.recorder import (
    GENERATIONS,
    NotificationRecorder,
    directory_path,
    oldest_first,
)
from sscl_daemon.sdnotify import Notifier
from sscl_daemon.simulator.scenarios import CallKind

RECORDING = "notifications.jsonl"


def _jsonl(path: Path) -> dict[str, dict[str, object]]:
    calls = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {call["key"]: call for call in calls}


async def test_a_recorded_run_replays_to_the_same_call_logs(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    async with fast_simulator(seed=23) as sim, webhook_crm() as (crm, crm_url):
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=state_dir,
            dsn=pg_dsn,
            extra={"ringcentral": {"record_notifications": RECORDING}},
        )
        path = write_config(tmp_path / "config.toml", config)
        daemon = Daemon(load_config(path), notifier=Notifier(None))
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 30)
        kinds = [kind for kind in CallKind if kind is not CallKind.INTERNAL]
        now = datetime.now(UTC)
        calls = [
            sim.inject(sim.factory.make(now, kinds[i % len(kinds)], salt=i)) for i in range(12)
        ]
        expected = {log.key for call in calls for log in call.expected}
        logged_file = state_dir / "calls.jsonl"
        await wait_until(
            lambda: logged_file.exists() and expected <= set(_jsonl(logged_file)), 30, "all logged"
        )
        recording = state_dir / RECORDING
        # The extension list the daemon loaded is kept beside the recording.
        directory = directory_path(recording)
        await wait_until(directory.exists, 30, "the extension list kept")
        daemon.stop()
        assert await asyncio.wait_for(task, 30) == 0
        kept = {record["id"] for record in json.loads(directory.read_text())}
        assert kept == {record["id"] for record in sim.org.extension_records()}

    assert stat.S_IMODE(recording.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o600
    text = recording.read_text()
    for secret in ("e2e-client-secret", "e2e-jwt-assertion", "access_token", "wsc", crm.secret):
        assert secret not in text
    files = [str(p) for p in oldest_first(recording)]
    code = cli.main(["replay", *files, "--config", str(path), "--directory", str(directory)])
    out = capsys.readouterr().out
    assert code == 0
    replayed = {log["key"]: log for log in map(json.loads, out.splitlines())}
    daemon_logs = _jsonl(logged_file)
    assert set(replayed) == set(daemon_logs) == expected
    for key, log in replayed.items():
        ours = daemon_logs[key]
        assert (log["result"], log["direction"], log["extension_id"]) == (
            ours["result"],
            ours["direction"],
            ours["extension_id"],
        ), key
        assert log["talk_seconds"] == (ours["talk_ms"] + 500) // 1000, key


def test_the_recording_rotates_within_its_cap_and_replays_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "rec" / "events.jsonl"
    line = b'{"uuid": "%d", "body": {}}'
    recorder = NotificationRecorder(path, max_bytes=GENERATIONS * 100)
    for n in range(40):
        recorder.write(line % n + b"\n")  # a stray line break stays inside one line
    recorder.close()
    files = oldest_first(path)
    assert files[-1] == path
    assert len(files) == GENERATIONS
    assert sum(f.stat().st_size for f in files) <= GENERATIONS * 100
    uuids = [json.loads(raw)["uuid"] for f in files for raw in f.read_bytes().splitlines()]
    assert uuids == [str(n) for n in range(40 - len(uuids), 40)]
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
