"""Active/standby: two ``sscl-daemon run`` processes, one config, one database.

The first process takes the account's lease and logs calls; the second reports
READY=1 as a standby. With traffic running the active one is SIGKILLed: the
standby gets the lease on its next poll, restores the checkpoint, snapshot and
recovery token, subscribes, and logs the rest. The CRM stand-in ends up with
every simulated call exactly once, and the jsonl writer (shared by both
processes) has no call twice. The takeover time (SIGKILL to the standby
subscribed) is printed and must stay within the feature's 10 s bound.

The helpers here are shared with ``test_fleet.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from tests.daemon.harness import (
    daemon_config,
    fast_simulator,
    logged_keys,
    webhook_crm,
    write_config,
)
from tests.daemon.helpers import wait_until
from tests.daemon.test_e2e_process import DaemonProcess

from sscl_daemon.config import StoreSettings, load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.sdnotify import Notifier
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.store import LeaseInfo, Store

TAKEOVER_BOUND = 10.0


def named(workdir: Path, config: Path) -> DaemonProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    return DaemonProcess(config, workdir)


def holder_pid(lease: LeaseInfo) -> int:
    """Holders are ``instance_name:pid``."""
    return int(lease.holder.rsplit(":", 1)[1])


def pid(daemon: DaemonProcess) -> int:
    assert daemon.process is not None
    return daemon.process.pid


async def held_by(dsn: str, state_dir: Path) -> dict[str, int]:
    """Account -> pid of the process holding its lease now."""
    store = await Store.open(StoreSettings(dsn=dsn, pool_max_size=1), state_dir)
    try:
        leases = await store.lease_holders()
    finally:
        await store.close()
    return {lease.account: holder_pid(lease) for lease in leases if lease.held}


async def traffic(sims: Iterable[Simulator], count: int, rng: random.Random) -> None:
    """``count`` calls per simulator, started at seeded random intervals."""
    sims = list(sims)
    for _ in range(count):
        for sim in sims:
            sim.inject(sim.factory.make(datetime.now(UTC)))
        await asyncio.sleep(rng.uniform(0.01, 0.06))


def expected_keys(sim: Simulator) -> set[str]:
    return {log.key for log in sim.expected_logs()}


# A call whose events a handover or a kill cut short waits for its call-log record, read
# again 30 s and then a minute later (calls/settling.py): allow for both reads.
SETTLE_WITHIN = 150.0


async def all_delivered(sim: Simulator, crm: WebhookReceiverState, within: float) -> None:
    """Every expected call in the CRM, and nothing else in it."""
    expected = expected_keys(sim)
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: expected <= set(crm.deliveries), within, "every call in the CRM")
    delivered = set(crm.deliveries)
    assert not expected - delivered, f"missing {len(expected - delivered)} of {len(expected)}"
    assert not delivered - expected, f"unexpected {sorted(delivered - expected)[:5]}"


async def terminate(daemons: Iterable[DaemonProcess]) -> None:
    """SIGTERM every running daemon; each must stop cleanly."""
    for daemon in daemons:
        if daemon.process is not None and daemon.process.poll() is None:
            assert await daemon.signal(signal.SIGTERM, within=30) == 0, daemon.log()


async def since_kill_message(daemon: DaemonProcess, offset: int, text: str, within: float) -> None:
    def seen() -> bool:
        assert daemon.process is not None
        if daemon.process.poll() is not None:
            raise AssertionError(f"daemon exited:\n{daemon.log()}")
        return text in daemon.messages()[offset:]

    await wait_until(seen, within, f"{text!r} from the standby")


def config_file(
    sim: Simulator, crm: WebhookReceiverState, crm_url: str, dsn: str, tmp_path: Path
) -> Path:
    """A one-account config file logging ``sim``'s calls into ``crm`` and a jsonl file."""
    config = daemon_config(
        sim_url=sim.base_url,
        crm_url=crm_url,
        crm_secret=crm.secret,
        state_dir=tmp_path / "state",
        dsn=dsn,
    )
    return write_config(tmp_path / "config.toml", config)


@pytest.fixture
async def pair(
    pg_dsn: str, tmp_path: Path
) -> AsyncIterator[tuple[Simulator, WebhookReceiverState, DaemonProcess, DaemonProcess]]:
    async with fast_simulator(seed=31) as sim, webhook_crm() as (crm, crm_url):
        path = config_file(sim, crm, crm_url, pg_dsn, tmp_path)
        active, standby = named(tmp_path / "a", path), named(tmp_path / "b", path)
        try:
            yield sim, crm, active, standby
        finally:
            active.kill_if_running()
            standby.kill_if_running()


@pytest.mark.slow
@pytest.mark.timeout(360)  # room for SETTLE_WITHIN after the handover itself
async def test_standby_takes_over_after_sigkill_and_logs_every_call_once(
    pair: tuple[Simulator, WebhookReceiverState, DaemonProcess, DaemonProcess],
    pg_dsn: str,
    tmp_path: Path,
) -> None:
    sim, crm, active, standby = pair
    active.start()
    await active.ready()
    standby.start()
    await standby.ready()
    assert "STATUS=standby" in standby.messages()
    assert await held_by(pg_dsn, tmp_path) == {"default": pid(active)}

    load = asyncio.create_task(traffic([sim], 80, random.Random(41)))
    try:
        await wait_until(lambda: len(crm.deliveries) >= 10, 30, "calls flowing before the kill")
        offset = len(standby.messages())
        killed_at = time.monotonic()
        assert await active.signal(signal.SIGKILL) == -signal.SIGKILL
        await since_kill_message(standby, offset, "STATUS=subscribed", TAKEOVER_BOUND + 5)
        takeover = time.monotonic() - killed_at
        await asyncio.wait_for(load, 60)
    finally:
        load.cancel()
    print(f"\nfailover: standby subscribed {takeover:.2f} s after the active one was SIGKILLed")
    assert takeover <= TAKEOVER_BOUND
    assert await held_by(pg_dsn, tmp_path) == {"default": pid(standby)}

    await all_delivered(sim, crm, SETTLE_WITHIN)
    assert len(crm.deliveries) >= 80
    state = tmp_path / "state"
    expected = expected_keys(sim)
    await wait_until(lambda: set(logged_keys(state)) >= expected, 20, "every call in the jsonl")
    keys = logged_keys(state)
    assert len(keys) == len(set(keys)), "a call was logged twice across the two instances"
    await terminate([standby])


@pytest.mark.slow
@pytest.mark.timeout(360)  # room for SETTLE_WITHIN after the handover itself
async def test_deposed_instance_stops_at_once_and_resumes_only_with_the_lease(
    pg_dsn: str, tmp_path: Path
) -> None:
    """The lease connection is cut and another holder takes the account: the daemon stops
    processing it (nothing reaches the CRM meanwhile) and goes back to waiting; once the
    other holder lets go it takes the account again and logs what it missed, once."""
    async with fast_simulator(seed=37) as sim, webhook_crm() as (crm, crm_url):
        path = config_file(sim, crm, crm_url, pg_dsn, tmp_path)
        daemon = Daemon(load_config(path), notifier=Notifier(None), handle_signals=False)
        task = asyncio.create_task(daemon.run())
        other = await Store.open(StoreSettings(dsn=pg_dsn, pool_max_size=2), tmp_path)
        try:
            await asyncio.wait_for(daemon.ready.wait(), 30)
            assert daemon.held_accounts == ["default"]
            await traffic([sim], 5, random.Random(43))
            first = expected_keys(sim)
            await wait_until(lambda: first <= set(crm.deliveries), 30, "the first calls")

            # A renewal may reconnect and take the lock back before the rival asks (a cut within
            # the TTL keeps the lease): cut again until the rival holds it.
            lease = None
            deadline = asyncio.get_running_loop().time() + 20
            while lease is None:
                assert asyncio.get_running_loop().time() < deadline, "the rival never got the lease"
                conn = await asyncpg.connect(pg_dsn)
                try:
                    await conn.fetchval(
                        "SELECT count(pg_terminate_backend(pid, 2000)) FROM pg_stat_activity "
                        "WHERE application_name = 'sscl-daemon lease' "
                        "AND datname = current_database()"
                    )
                finally:
                    await conn.close()
                lease = await other.acquire_lease("default", "other-instance", 30.0)
            await wait_until(lambda: not daemon.held_accounts, 10, "the daemon to let go")

            await traffic([sim], 5, random.Random(47))
            await asyncio.wait_for(sim.wait_idle(), 30)
            assert set(crm.deliveries) == first, "a deposed instance wrote to the CRM"

            await other.release_lease(lease)
            await wait_until(lambda: daemon.held_accounts == ["default"], 10, "the lease back")
            await all_delivered(sim, crm, SETTLE_WITHIN)
            assert set(crm.deliveries) > first
        finally:
            await other.close()
            daemon.stop()
            assert await asyncio.wait_for(task, 30) == 0
