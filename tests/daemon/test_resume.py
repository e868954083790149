"""Live logging resumes at once: nothing slow stands before the subscription (issue 19).

The daemon in-process against the simulator and a real Postgres: with the extension list
throttled (429 with a long Retry-After, 503 without one) or the whole platform paused at
start, it subscribes and logs calls live without waiting for the directory; the directory
it loads is stored and the next start begins with it; the WebSocket recovery point it
stores carries the gateway sequence, which a restart reads back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.daemon.harness import daemon_config, fast_simulator, webhook_crm, write_config
from tests.daemon.helpers import wait_until

from sscl_daemon.calls.model import CallSource
from sscl_daemon.config import DEFAULT_ACCOUNT, StoreSettings, load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.ringcentral.directory import stored_directory
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.simulator.scenarios import CallKind
from sscl_daemon.store import Store

EXTENSIONS = "/restapi/v1.0/account/~/extension"
# Well inside the old behaviour's wait: five attempts, each behind a 30 s Retry-After.
READY_WITHIN = 15.0


@dataclass
class Env:
    sim: Simulator
    crm: WebhookReceiverState
    path: Path
    dsn: str


@asynccontextmanager
async def environment(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with fast_simulator(seed=5) as sim, webhook_crm() as (crm, crm_url):
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=tmp_path / "state",
            dsn=pg_dsn,
        )
        yield Env(sim, crm, write_config(tmp_path / "config.toml", config), pg_dsn)


@asynccontextmanager
async def daemon(env: Env) -> AsyncIterator[Daemon]:
    running = Daemon(load_config(env.path))
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        running.stop()
        assert await asyncio.wait_for(task, 30) == 0


async def logged_live(env: Env) -> None:
    """A call placed now reaches the CRM, from live events."""
    call = env.sim.inject(env.sim.factory.make(datetime.now(UTC), CallKind.INBOUND_ANSWERED))
    keys = {log.key for log in call.expected}
    await wait_until(lambda: keys <= set(env.crm.deliveries), 20, "the call in the CRM")
    for key in keys:
        data = env.crm.deliveries[key].payload["data"]
        assert isinstance(data, dict)
        assert data["source"] == CallSource.LIVE.value


@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, 30), (503, None)], ids=["429-retry-after", "503"]
)
async def test_a_throttled_directory_does_not_hold_the_subscription_back(
    pg_dsn: str, tmp_path: Path, status: int, retry_after: int | None
) -> None:
    async with environment(pg_dsn, tmp_path) as env:
        env.sim.fail_rest(EXTENSIONS, status, count=10_000, retry_after_s=retry_after)
        async with daemon(env) as running:
            await asyncio.wait_for(running.ready.wait(), READY_WITHIN)
            await logged_live(env)
            # the directory has not loaded (every read refused) and the daemon logs anyway
            store = await Store.open(StoreSettings(dsn=env.dsn), tmp_path)
            try:
                assert await store.load_directory(DEFAULT_ACCOUNT) is None
            finally:
                await store.close()


async def test_a_paused_platform_at_start_subscribes_as_soon_as_it_answers(
    pg_dsn: str, tmp_path: Path
) -> None:
    async with environment(pg_dsn, tmp_path) as env:
        env.sim.pause(2.0)
        # the extension list stays throttled after the pause: it must not matter
        env.sim.fail_rest(EXTENSIONS, 429, count=10_000, retry_after_s=30)
        async with daemon(env) as running:
            await asyncio.wait_for(running.ready.wait(), READY_WITHIN)
            await logged_live(env)


async def test_the_directory_and_the_recovery_sequence_are_kept_for_the_next_start(
    pg_dsn: str, tmp_path: Path
) -> None:
    async with environment(pg_dsn, tmp_path) as env:
        store = await Store.open(StoreSettings(dsn=env.dsn), tmp_path)
        try:
            async with daemon(env) as running:
                await asyncio.wait_for(running.ready.wait(), READY_WITHIN)
                await logged_live(env)
                await wait_until(
                    lambda: store.load_directory(DEFAULT_ACCOUNT), 10, "the stored directory"
                )
            data = await store.load_directory(DEFAULT_ACCOUNT)
            assert data is not None
            assert len(stored_directory(data)) == len(env.sim.org.extension_records())
            token = await store.load_recovery_token(DEFAULT_ACCOUNT)
            assert token is not None
            assert token.sequence is not None
            assert token.sequence > 0
            # the next start has the directory even while the extension list is throttled
            env.sim.fail_rest(EXTENSIONS, 429, count=10_000, retry_after_s=30)
            async with daemon(env) as running:
                await asyncio.wait_for(running.ready.wait(), READY_WITHIN)
                [runner] = running._runners.values()
                pipeline = runner.pipeline
                assert pipeline is not None
                assert pipeline.tracker.directory is not None
                assert len(pipeline.tracker.directory) == len(env.sim.org.extension_records())
                await logged_live(env)
        finally:
            await store.close()
