"""The outbox retention in the daemon: its setting, its loop, ``status`` and the backfill guard."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.daemon.harness import daemon_config, fast_simulator, webhook_crm, write_config
from tests.daemon.helpers import wait_until
from tests.store.sent_rows import count_rows, sent_rows

from sscl_daemon import metrics
from sscl_daemon.commands import backfill as backfill_command
from sscl_daemon.commands import status as status_command
from sscl_daemon.config import (
    ConfigError,
    DaemonSettings,
    Need,
    Settings,
    StoreSettings,
    load_config,
    parse_config,
)
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.daemon.retention import prune_loop, prune_once
from sscl_daemon.exitcodes import EXIT_CONFIG
from sscl_daemon.ringcentral.backfill import Period, check_retention
from sscl_daemon.store import Store

ACCOUNT = "default"


def _pruned_total() -> float:
    value = metrics.REGISTRY.get_sample_value("sscl_outbox_pruned_total")
    assert value is not None
    return value


def _store_issues(values: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"store": values}, needs=Need.STORE)
    return [str(issue) for issue in caught.value.issues]


def test_the_retention_settings_default_to_30_days_hourly_and_are_validated() -> None:
    default = parse_config({}, needs=Need.STORE).store
    assert (default.sent_retention_days, default.prune_interval) == (30, 3600.0)
    forever = parse_config({"store": {"sent_retention_days": 0}}, needs=Need.STORE)
    assert forever.store.sent_retention_days == 0
    assert _store_issues({"sent_retention_days": 3}) == [
        "store.sent_retention_days: 3 days is too short to dedupe calls RingCentral may still "
        "report again: use at least 7, or 0 to keep sent rows forever"
    ]
    assert _store_issues({"sent_retention_days": -1}) == [
        "store.sent_retention_days: -1 is out of range: must be >= 0 and <= 36500"
    ]
    assert _store_issues({"sent_retention_days": "30d", "prune_interval": 0}) == [
        "store.sent_retention_days: expected an integer, got '30d'",
        "store.prune_interval: 0 is out of range: must be >= 0.1",
    ]


async def test_the_loop_prunes_old_sent_rows_of_its_account(store: Store, pg_dsn: str) -> None:
    lease = await store.acquire_lease(ACCOUNT, "host-a", 30.0)
    assert lease is not None
    await sent_rows(store, pg_dsn, ACCOUNT, 0, 12, days_ago=31)
    newer = await sent_rows(store, pg_dsn, ACCOUNT, 100, 2, days_ago=1)
    before = _pruned_total()
    settings = StoreSettings(dsn=pg_dsn, sent_retention_days=30, prune_interval=0.05)
    loop = asyncio.create_task(prune_loop(store, lease, lambda: settings))
    try:
        await wait_until(
            lambda: _pruned_total() - before == 12, 5, "the old rows counted as pruned"
        )
        assert sorted(r.id for r in await store.outbox_rows(ACCOUNT)) == newer
        assert not loop.done()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_zero_days_keeps_sent_rows_forever(store: Store, pg_dsn: str) -> None:
    lease = await store.acquire_lease(ACCOUNT, "host-a", 30.0)
    assert lease is not None
    await sent_rows(store, pg_dsn, ACCOUNT, 0, 3, days_ago=3650)
    forever = StoreSettings(dsn=pg_dsn, sent_retention_days=0)
    assert await prune_once(store, lease, forever) == 0
    assert await count_rows(store, ACCOUNT) == 3


async def test_the_running_daemon_prunes_as_lease_holder(
    store: Store, pg_dsn: str, tmp_path: Path
) -> None:
    await sent_rows(store, pg_dsn, ACCOUNT, 0, 5, days_ago=40)
    newer = await sent_rows(store, pg_dsn, ACCOUNT, 100, 2, days_ago=20)
    async with fast_simulator(seed=5) as sim, webhook_crm() as (crm, crm_url):
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=tmp_path / "state",
            dsn=pg_dsn,
            extra={"store": {"sent_retention_days": 30, "prune_interval": 0.1}},
        )
        daemon = Daemon(load_config(write_config(tmp_path / "config.toml", config)))
        task = asyncio.create_task(daemon.run())
        try:
            await asyncio.wait_for(daemon.ready.wait(), 30)

            async def only_newer_left() -> bool:
                return sorted(r.id for r in await store.outbox_rows(ACCOUNT)) == newer

            await wait_until(only_newer_left, 10, "the daemon pruned the rows older than 30 days")
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 30) == 0


async def test_status_shows_the_retention_and_the_sent_rows_kept(
    store: Store, pg_dsn: str, tmp_path: Path
) -> None:
    await sent_rows(store, pg_dsn, ACCOUNT, 0, 4, days_ago=1)
    settings = Settings(
        daemon=DaemonSettings(state_dir=tmp_path),
        store=StoreSettings(dsn=pg_dsn, pool_max_size=2, sent_retention_days=45),
    )
    text = status_command.render(await status_command.collect(settings))
    assert "sent rows kept: 4 (store.sent_retention_days = 45: older ones are deleted every" in (
        text
    )
    forever = Settings(
        daemon=settings.daemon, store=StoreSettings(dsn=pg_dsn, sent_retention_days=0)
    )
    assert "sent rows kept: 4 (forever: store.sent_retention_days = 0)" in (
        status_command.render(await status_command.collect(forever))
    )


def test_backfill_refuses_a_period_older_than_the_retention() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    inside = Period(now - timedelta(days=29), now)
    older = Period(now - timedelta(days=31), now - timedelta(days=20))
    assert check_retention(inside, 30, now) is None
    assert check_retention(older, 0, now) is None
    message = check_retention(older, 30, now)
    assert message == (
        "--from 2026-02-07 12:00 UTC is older than store.sent_retention_days (30 days: sent "
        "calls are remembered since 2026-02-08 12:00 UTC); calls of that time that were "
        "already logged may be logged again. Start at 2026-02-08 or later, or add "
        "--past-retention if those calls were never logged (a first backfill)"
    )


def test_the_backfill_command_refuses_it_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = daemon_config(
        sim_url="http://127.0.0.1:9",
        crm_url="http://127.0.0.1:9",
        crm_secret="whsec_c3NjbC1kZW1vLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM=",
        state_dir=tmp_path / "state",
        dsn="postgresql://127.0.0.1:9/none",
        extra={"store": {"sent_retention_days": 7}},
    )
    path = write_config(tmp_path / "config.toml", config)
    start = (datetime.now(UTC) - timedelta(days=8)).date().isoformat()
    args = argparse.Namespace(
        date_from=start,
        date_to=start,
        dry_run=False,
        past_retention=False,
        account=None,
        config=str(path),
    )
    assert backfill_command.run(args) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"backfill: --from {start} 00:00 UTC is older than store.sent_retention_days" in err
    assert "--past-retention" in err
