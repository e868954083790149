"""Backfill: period parsing, and the command end to end against the simulator and Postgres."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.ringcentral.harness import Calls, client_settings, simulator

from sscl_daemon.commands import backfill as command
from sscl_daemon.config import (
    AccountSettings,
    DaemonSettings,
    JsonlOptions,
    Settings,
    StoreSettings,
    WriterSettings,
    WriterType,
)
from sscl_daemon.exitcodes import EXIT_CONFIG, EXIT_OK
from sscl_daemon.ringcentral.backfill import Period, PeriodError, parse_period
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.store import Store

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_dates_cover_whole_days_and_times_are_utc_by_default() -> None:
    period = parse_period("2026-03-01", "2026-03-02", NOW)
    assert period == Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
    exact = parse_period("2026-03-01T10:00", "2026-03-01T12:30:00+01:00", NOW)
    assert exact.start == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert exact.end == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    assert parse_period("2026-03-09", "2026-12-31", NOW).end == NOW
    assert [p.seconds for p in period.chunks(timedelta(hours=18))] == [64800.0, 64800.0, 43200.0]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("yesterday", "2026-03-02", "--from 'yesterday' is not a date"),
        ("2026-02-30", "2026-03-02", "--from '2026-02-30' is not a real date"),
        ("2026-03-01", "03/02/2026", "--to '03/02/2026' is not a date"),
        ("2026-03-05", "2026-03-01", "must be before --to"),
        ("2026-04-01", "2026-04-02", "is in the future"),
    ],
)
def test_bad_periods_name_the_option_and_the_fix(start: str, end: str, message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        parse_period(start, end, NOW)


def test_command_rejects_a_bad_date_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(
        date_from="2026-13-01", date_to="2026-03-02", dry_run=True, config="x"
    )
    assert command.run(args) == EXIT_CONFIG
    assert "--from '2026-13-01'" in capsys.readouterr().err


def test_a_file_of_several_accounts_needs_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = """
[accounts.{name}.ringcentral]
client_id = "c"
client_secret = "s"
jwt = "j"
[accounts.{name}.writers.log]
type = "jsonl"
path = "calls.jsonl"
"""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}"\n'
        + account.format(name="acme")
        + account.format(name="globex")
    )
    args = argparse.Namespace(
        date_from="2026-03-01", date_to="2026-03-02", dry_run=True, config=str(config)
    )
    assert command.run(argparse.Namespace(**vars(args), account=None)) == EXIT_CONFIG
    assert "several accounts (acme, globex): name one with --account" in capsys.readouterr().err
    assert command.run(argparse.Namespace(**vars(args), account="initech")) == EXIT_CONFIG
    assert "no account 'initech' (the file has acme, globex)" in capsys.readouterr().err


def settings_for(sim: Simulator, dsn: str, state: Path) -> Settings:
    writer = WriterSettings(
        name="crm", type=WriterType.JSONL, options=JsonlOptions(path=state / "calls.jsonl")
    )
    return Settings(
        daemon=DaemonSettings(state_dir=state),
        store=StoreSettings(dsn=dsn, pool_max_size=2),
        accounts=(AccountSettings(ringcentral=client_settings(sim), writers=(writer,)),),
    )


async def backfill(
    settings: Settings, period: Period, dry_run: bool, *, terminal: bool = False
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await command._backfill(
        settings,
        settings.account(),
        period,
        dry_run,
        out=out,
        err=err,
        terminal=terminal,
        progress_interval=0.0,
    )
    return code, out.getvalue(), err.getvalue()


async def test_backfill_logs_a_period_once_and_dry_run_tells_logged_from_new(
    pg_dsn: str, tmp_path: Path
) -> None:
    async with simulator() as sim:
        start = datetime.now(UTC) - timedelta(seconds=1)
        calls = Calls(sim, seed=21)
        first = calls.place(15)
        await sim.wait_idle()
        period = Period(start, datetime.now(UTC))
        settings = settings_for(sim, pg_dsn, tmp_path)

        # Piped: one unwrapped line per call on stdout, progress lines on stderr.
        code, out, err = await backfill(settings, period, dry_run=True)
        assert code == EXIT_OK
        lines = [line for line in out.splitlines() if line.startswith("would-log ")]
        assert {line.split()[2] for line in lines} == calls.expected()
        assert any(len(line) > 80 for line in lines)  # nothing wrapped at 80 columns
        assert f"would be logged: {len(calls.expected())}" in out
        assert "already logged: 0" in out
        assert "backfill: 100% read" in err

        for attempt in range(2):
            code, out, err = await backfill(settings, period, dry_run=False, terminal=True)
            assert code == EXIT_OK, err
            expected_new = len(calls.expected()) if attempt == 0 else 0
            assert f"new outbox rows: {expected_new}" in out

        # Issue 18 item 5: after more calls, a dry run separates the logged ones.
        more = calls.place(5)
        await sim.wait_idle()
        period = Period(start, datetime.now(UTC))
        code, out, _ = await backfill(settings, period, dry_run=True)
        # The summary's length varies (a "skipped" line per reason): pick the call lines.
        states = {
            fields[2]: fields[0]
            for fields in map(str.split, out.splitlines())
            if fields and fields[0] in ("already-logged", "would-log")
        }
        assert len(states) == len(calls.expected())
        assert {k for k, state in states.items() if state == "already-logged"} == calls.expected(
            first
        )
        assert {k for k, state in states.items() if state == "would-log"} == calls.expected(more)
        assert f"already logged: {len(calls.expected(first))}" in out
        assert f"would be logged: {len(calls.expected(more))}" in out

        async with await Store.open(settings.store, tmp_path) as store:
            rows = await store.outbox_rows("default")
        assert sorted(row.call_key for row in rows) == sorted(calls.expected(first))


async def test_backfill_while_the_daemon_runs_uses_its_embedded_server(
    embedded_state_dir: Path,
) -> None:
    """Issue 18 item 5: it ended in a traceback ("in use by another process")."""
    async with simulator() as sim:
        start = datetime.now(UTC) - timedelta(seconds=1)
        calls = Calls(sim, seed=5)
        calls.place(4)
        await sim.wait_idle()
        settings = settings_for(sim, "embedded", embedded_state_dir)
        period = Period(start, datetime.now(UTC))
        # Before the daemon ever ran: no database, and none is made.
        code, _, err = await backfill(settings, period, dry_run=False)
        assert code == EXIT_CONFIG
        assert "no embedded database in" in err
        assert not (embedded_state_dir / "postgres").exists()

        daemon = await Store.open(settings.store, embedded_state_dir)
        try:
            code, out, err = await backfill(settings, period, dry_run=False)
            assert code == EXIT_OK, err
            assert "Traceback" not in err
            assert f"new outbox rows: {len(calls.expected())}" in out
            rows = await daemon.outbox_rows("default")
            assert {row.call_key for row in rows} == calls.expected()
        finally:
            await daemon.close()
