"""At a stop the live stream goes on while the writers drain (issue 19, the live share).

A restart (`systemctl restart`, the chaos soak's SIGTERM) keeps the WebSocket closed from
the moment the stream stops until the new process recovers it, and the gateway then
replays only its last 100 notifications: a stop that first closed the stream and then
waited up to ``shutdown_timeout`` for a slow CRM lost that much more of the stream. The
daemon in-process against the simulator, a CRM that hangs, and a real Postgres.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.daemon.helpers import wait_until
from tests.daemon.test_resume import READY_WITHIN, environment, logged_live

from sscl_daemon.config import DEFAULT_ACCOUNT, StoreSettings, load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.simulator.scenarios import CallKind
from sscl_daemon.store import Store

# The harness's shutdown_timeout is 5 s: a call a second after the stop falls in the drain.
LATER = timedelta(seconds=1.0)


async def test_a_call_during_the_writers_drain_is_taken_live(pg_dsn: str, tmp_path: Path) -> None:
    async with environment(pg_dsn, tmp_path) as env:
        running = Daemon(load_config(env.path))
        task = asyncio.create_task(running.run())
        try:
            await asyncio.wait_for(running.ready.wait(), READY_WITHIN)
            await logged_live(env)
            # From now on every CRM request hangs: the stop's drain lasts its whole grace.
            env.crm.faults.stall(after=False, times=10_000)
            sent = env.crm.count()
            env.sim.inject(env.sim.factory.make(datetime.now(UTC), CallKind.INBOUND_ANSWERED))
            await wait_until(lambda: env.crm.count() > sent, 20, "a CRM request in flight")
            later = env.sim.factory.make(datetime.now(UTC) + LATER, CallKind.OUTBOUND_ANSWERED)
            env.sim.inject(later)
            running.stop()
            assert await asyncio.wait_for(task, 60) == 0
        finally:
            running.stop()
            await asyncio.wait_for(task, 60)
        keys = [log.key for log in later.expected]
        store = await Store.open(StoreSettings(dsn=env.dsn), tmp_path)
        try:
            # committed for both writers before the process ended: sent after the restart
            logged = await store.logged_keys(DEFAULT_ACCOUNT, keys, ["crm", "log"])
        finally:
            await store.close()
        assert logged == set(keys)
