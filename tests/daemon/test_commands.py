"""Operator commands: blocklist check, status and retry-dead against a real store."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.daemon.harness import to_toml
from tests.daemon.helpers import make_call

from sscl_daemon.cli import main
from sscl_daemon.commands.retry_dead import parse_since
from sscl_daemon.config import StoreSettings
from sscl_daemon.store import Checkpoint, Outcome, Store


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


def test_blocklist_check_without_config_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blocklist", "check", "+442071838750"]) == 0
    capsys.readouterr()
    assert main(["blocklist", "check", "5105551234"]) == 2
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
