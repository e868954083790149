"""HubSpot's key mode in ``status`` (issue 15): a real daemon (in this process) with the
simulator, the HubSpot stand-in and PostgreSQL reads the key property's definition when it
starts -- before any call, once -- records the mode in its instance row, and ``sscl-daemon
status`` (text and ``--json``) says which mode the writer works in: ``unique`` when the
portal's key property has unique values, else ``search`` (search by key before creating)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.daemon.harness import daemon_config, fast_simulator, write_config
from tests.daemon.helpers import wait_until

from sscl_daemon.commands.status import KEY_MODES, as_json, collect, render
from sscl_daemon.config import load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.simulator.crm import hubspot as hs_sim
from sscl_daemon.simulator.crm.common import serve
from sscl_daemon.simulator.scenarios import CallKind

DEFINITION = "/crm/v3/properties/calls/"


@pytest.mark.parametrize("mode", ["unique", "search"])
async def test_status_shows_the_key_mode_read_at_start(
    mode: str, pg_dsn: str, tmp_path: Path
) -> None:
    hs = hs_sim.HubSpotState(key_unique=mode == "unique")
    async with fast_simulator(seed=23) as sim, serve(hs_sim.create_app(hs)) as hs_url:
        config = daemon_config(
            sim_url=sim.base_url, crm_url="", crm_secret="", state_dir=tmp_path / "s", dsn=pg_dsn
        )
        config["writers"] = {
            "crm": {"type": "hubspot", "base_url": hs_url, "access_token": hs_sim.PRIVATE_TOKEN}
        }
        settings = load_config(write_config(tmp_path / "config.toml", config))
        daemon = Daemon(settings, handle_signals=False)
        task = asyncio.create_task(daemon.run())
        try:
            await asyncio.wait_for(daemon.ready.wait(), 30)
            store = daemon.store
            assert store is not None

            async def recorded() -> bool:
                return any(
                    "default" in i.writer_facts
                    for i in await store.instances(settings.daemon.lease_ttl)
                )

            await wait_until(recorded, 30, "the key mode in the instance row")
            # Read at start: no call yet, one read of the property's definition.
            assert hs.calls == {}
            assert hs.count("GET", DEFINITION) == 1
            report = await collect(settings)
            line = f"key mode of crm (default): {mode} ({KEY_MODES[mode]})"
            assert line in render(report).splitlines()
            shown = json.loads(json.dumps(as_json(report)))["writer_facts"]
            assert shown == {"default": {"crm": {"key_mode": mode}}}

            # The first call is written in that mode without reading the definition again.
            placed = sim.inject(sim.factory.make(datetime.now(UTC), CallKind.INBOUND_ANSWERED))
            await wait_until(lambda: len(hs.calls) == len(placed.expected), 30, "the call")
            assert hs.count("GET", DEFINITION) == 1
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 60) == 0
