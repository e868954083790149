"""A running daemon with its console, for the console's tests: the simulator, the webhook
CRM stand-in, a real PostgreSQL, and the admin endpoint on a loopback port."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.daemon.harness import daemon_config, fast_simulator, webhook_crm, write_config

from sscl_daemon.config import load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.sdnotify import Notifier
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState

ADMIN_TOKEN = "console-admin-token-for-tests-0123456789"
# Debian's Chromium; Playwright never downloads a browser of its own here.
CHROMIUM = os.environ.get("SSCL_CHROMIUM", "/usr/bin/chromium")


@dataclass
class RunningConsole:
    sim: Simulator
    crm: WebhookReceiverState
    daemon: Daemon
    config_path: Path
    base_url: str


@asynccontextmanager
async def running_console(
    pg_dsn: str,
    tmp_path: Path,
    *,
    token: str | None = ADMIN_TOKEN,
    blocklist: list[str] | None = None,
    extra: Mapping[str, Mapping[str, object]] | None = None,
) -> AsyncIterator[RunningConsole]:
    async with fast_simulator(seed=17) as sim, webhook_crm() as (crm, crm_url):
        admin: dict[str, object] = {"port": 0}
        if token is not None:
            admin["token"] = token
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=tmp_path / "state",
            dsn=pg_dsn,
            blocklist=blocklist,
            extra={"admin": admin, **(extra or {})},
        )
        path = write_config(tmp_path / "config.toml", config)
        daemon = Daemon(load_config(path), notifier=Notifier(None), handle_signals=False)
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 30)
        try:
            yield RunningConsole(sim, crm, daemon, path, f"http://127.0.0.1:{daemon.admin_port}")
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 30) == 0
