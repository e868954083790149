"""Operator commands: blocklist check, status and retry-dead against a real store."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.daemon.harness import to_toml
from tests.daemon.helpers import make_call

from sscl_daemon.cli import main
from sscl_daemon.commands.status import when
from sscl_daemon.config import StoreSettings
from sscl_daemon.exitcodes import EXIT_CONFIG
from sscl_daemon.since import parse_since
from sscl_daemon.store import Checkpoint, Outcome, Store
from sscl_daemon.store.errors import dsn_target
from sscl_daemon.store.testing import PostgresForTests, dsn_with_database


def _config(tmp_path: Path, dsn: str = "embedded", blocklist: list[str] | None = None) -> Path:
    path = tmp_path / "config.toml"
    config: dict[str, dict[str, object]] = {
        "daemon": {"state_dir": str(tmp_path / "state")},
        "store": {"dsn": dsn},
        "calls": {"default_region": "US"},
        "blocklist": {"entries": blocklist or []},
        "writers": {"crm": {"type": "jsonl", "path": str(tmp_path / "calls.jsonl")}},
    }
    path.write_text(to_toml(config))
    return path


def test_blocklist_check_explains_the_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, blocklist=["+15105551234", "+1800*", "105"])
    assert main(["blocklist", "check", "+15105551234", "--config", str(config)]) == 1
    assert "NOT LOGGED" in capsys.readouterr().out
    assert main(["blocklist", "check", "(510) 555-1234", "--config", str(config)]) == 1
    assert "matches the blocklist" in capsys.readouterr().out
    assert main(["blocklist", "check", "+18005550000", "-c", str(config)]) == 1
    capsys.readouterr()
    assert main(["blocklist", "check", "+15105559999", "--config", str(config)]) == 0
    assert "LOGGED" in capsys.readouterr().out
    args = ["blocklist", "check", "+15105559999", "--extension", "105", "-c", str(config)]
    assert main(args) == 1
    assert "extension 105" in capsys.readouterr().out


def test_blocklist_check_with_an_empty_config_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert main(["blocklist", "check", "+442071838750", "-c", str(empty)]) == 0
    capsys.readouterr()
    assert main(["blocklist", "check", "5105551234", "-c", str(empty)]) == 2
    assert "default_region" in capsys.readouterr().err


def test_parse_since() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("2026-02-28T08:00", now) == datetime(2026, 2, 28, 8, 0, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="neither a duration"):
        parse_since("yesterday", now)


async def _park_one(dsn: str, tmp_path: Path) -> None:
    store = await Store.open(StoreSettings(dsn=dsn), tmp_path)
    try:
        end = datetime.now(UTC)
        checkpoint = Checkpoint(end - timedelta(seconds=30))
        calls = [make_call(1), make_call(2), make_call(3)]
        await store.commit_batch("default", calls, ["crm"], checkpoint)
        (item, _, skipped) = await store.claim_due("crm", 3, "test", 30.0)
        await store.mark_dead(item.id, "test", "422 the CRM refused the phone number")
        # Settled on purpose by a contact policy: shown apart, and retry-dead leaves it alone.
        assert await store.mark_sent(skipped.id, "test", None, Outcome.SKIPPED)
    finally:
        await store.close()


async def test_status_and_retry_dead(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _park_one(pg_dsn, tmp_path)
    config = str(_config(tmp_path, dsn=pg_dsn))
    assert await _run(["status", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "account default" in out
    assert "crm" in out
    assert "retry-dead" in out  # one dead call log: the hint is shown
    line = next(line for line in out.splitlines() if line.startswith("crm"))
    assert line.split()[1:6] == ["0", "1", "0", "1", "1"]  # pending, in flight, sent, skipped, dead
    # Issue 18 item 6: the dead call log is counted the same everywhere, with its error.
    assert "dead call logs: 1 (crm: 1)" in out
    assert "unprocessable events kept as dead letters: none" in out
    assert "crm: " in out
    assert "422 the CRM refused the phone number" in out
    assert f"database: {dsn_target(pg_dsn).describe()}" in out
    assert await _run(["retry-dead", "--config", config, "--writer", "nope"]) == 2
    assert "no writer named 'nope'" in capsys.readouterr().err
    assert await _run(["retry-dead", "--config", config, "--writer", "crm", "--since", "1h"]) == 0
    assert "1 dead call log for writer crm moved back" in capsys.readouterr().out
    assert await _run(["status", "--config", config]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("crm"))
    assert line.split()[1:6] == ["1", "1", "0", "1", "0"]


async def _run(argv: list[str]) -> int:
    # The commands call asyncio.run(); run them off this test's event loop.
    return await asyncio.to_thread(main, argv)


async def test_status_json_and_readable_ages(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _park_one(pg_dsn, tmp_path)
    config = str(_config(tmp_path, dsn=pg_dsn))
    assert await _run(["status", "--config", config, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["database"] == dsn_target(pg_dsn).describe()
    (crm,) = report["writers"]
    assert (crm["writer"], crm["dead"], crm["skipped"], crm["in_flight"]) == ("crm", 1, 1, 1)
    assert crm["last_error"] == "422 the CRM refused the phone number"
    assert report["dead_call_logs"] == 1
    assert report["dead_letters"] == {}
    (account,) = report["accounts"]
    assert account["account"] == "default"
    assert datetime.fromisoformat(account["last_event_time"]).tzinfo is not None

    assert await _run(["status", "--config", config]) == 0
    out = capsys.readouterr().out
    checkpoint = next(line for line in out.splitlines() if "last event:" in line)
    assert re.search(r"last event: +\d+(\.\d)? s ago \(\d\d:\d\d:\d\d UTC\)$", checkpoint)


def test_when_reads_as_an_age_and_a_utc_time() -> None:
    now = datetime(2026, 3, 1, 7, 31, 14, tzinfo=UTC)
    assert when(now - timedelta(seconds=12), now) == "12 s ago (07:31:02 UTC)"
    assert when(now + timedelta(minutes=3), now) == "in 3.0 min (07:34:14 UTC)"
    assert when(now - timedelta(days=3), now) == "3.0 d ago (2026-02-26 07:31:14 UTC)"
    assert when(None, now) == "-"


@pytest.mark.parametrize("command", ["status", "retry-dead", "migrate"])
async def test_commands_never_create_a_database(
    command: str, embedded_state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18 item 2: status on the wrong state directory made a new, empty database."""
    config = str(_config(embedded_state_dir))
    state = embedded_state_dir / "state"
    assert await _run([command, "--config", config]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"no embedded database in {state.resolve() / 'postgres' / 'data'}" in err
    assert "Traceback" not in err
    assert not state.exists()


async def test_a_missing_external_database_is_named(
    pg_server: PostgresForTests, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = dsn_with_database(pg_server.admin_dsn, "sscl_no_such_database")
    assert await _run(["status", "--config", str(_config(tmp_path, dsn=dsn))]) == EXIT_CONFIG
    assert "database 'sscl_no_such_database' does not exist" in capsys.readouterr().err


async def test_commands_attach_to_the_running_daemons_embedded_server(
    embedded_state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the daemon running (it owns the server), the commands are its clients."""
    config = str(_config(embedded_state_dir))
    state = embedded_state_dir / "state"
    daemon = await Store.open(StoreSettings(dsn="embedded"), state)
    try:
        await daemon.commit_batch("default", [make_call(1)], ["crm"], None)
        (item,) = await daemon.claim_due("crm", 1, "test", 30.0)
        await daemon.mark_dead(item.id, "test", "400 bad field")
        assert await _run(["status", "--config", config]) == 0
        out = capsys.readouterr().out
        assert f"the running daemon's embedded server in {state.resolve() / 'postgres'}" in out
        assert f"(pid {os.getpid()})" in out
        assert "dead call logs: 1 (crm: 1)" in out
        assert await _run(["retry-dead", "--config", config]) == 0
        assert "1 dead call log moved back to pending" in capsys.readouterr().out
        assert await _run(["migrate", "--config", config]) == 0
        assert "nothing to do" in capsys.readouterr().out
        server = daemon.embedded_server
        assert server is not None
        assert server.running
    finally:
        await daemon.close()
    # Stopped daemon: the command starts the existing server itself, and stops it again.
    assert await _run(["status", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "started for this command" in out
    assert "crm" in out
    assert not (state / "postgres" / "server.lock").exists()
