"""No store wedge (issue 19): every connection of the daemon cut, twice, and it heals.

A real daemon (in this process) against the simulator, the webhook CRM stand-in and the
test PostgreSQL server, whose backends for the daemon's database are terminated: calls
placed afterwards reach the CRM. The wedges proper (the embedded postmaster SIGKILLed, an
external server restarted or gone past ``store.outage_limit``, a full disk) run the
daemon as a real process in ``test_wedge_scenarios.py``, scenarios that also run against
f315870 (``benchmarks/wedges.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from tests.daemon.harness import daemon_config, fast_simulator, webhook_crm, write_config
from tests.daemon.helpers import wait_until

from sscl_daemon.config import load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.simulator.scenarios import CallKind
from sscl_daemon.store.errors import dsn_target
from sscl_daemon.store.testing import PostgresForTests


@dataclass
class Running:
    sim: Simulator
    crm: WebhookReceiverState
    daemon: Daemon
    task: asyncio.Task[int]

    def place(self, count: int, salt: int) -> set[str]:
        """``count`` answered inbound calls; returns the keys the CRM must receive."""
        now = datetime.now(UTC)
        calls = [
            self.sim.inject(self.sim.factory.make(now, CallKind.INBOUND_ANSWERED, salt=salt + i))
            for i in range(count)
        ]
        return {log.key for call in calls for log in call.expected}

    async def delivered(self, keys: set[str], within: float = 30.0) -> None:
        await wait_until(lambda: keys <= set(self.crm.deliveries), within, "calls in the CRM")


@asynccontextmanager
async def running_daemon(dsn: str, workdir: Path) -> AsyncIterator[Running]:
    async with fast_simulator(seed=19) as sim, webhook_crm() as (crm, crm_url):
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=workdir / "state",
            dsn=dsn,
        )
        path = write_config(workdir / "config.toml", config)
        daemon = Daemon(load_config(path), handle_signals=False)
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 30)
        try:
            yield Running(sim, crm, daemon, task)
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 60) == 0


async def test_connections_cut_by_an_external_server_heal(
    pg_server: PostgresForTests, pg_dsn: str, tmp_path: Path
) -> None:
    """As when an admin terminates them: every connection of the daemon dies at once."""
    database = dsn_target(pg_dsn).database

    async def cut() -> int:
        admin = await asyncpg.connect(pg_server.admin_dsn)
        try:
            return len(
                await admin.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
            )
        finally:
            await admin.close()

    async with running_daemon(pg_dsn, tmp_path) as run:
        await run.delivered(run.place(3, salt=0))
        assert await cut() > 0
        await run.delivered(run.place(4, salt=200), within=60)
        assert await cut() > 0
        await run.delivered(run.place(4, salt=300), within=60)
