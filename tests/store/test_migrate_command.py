"""``sscl-daemon migrate``: on a configured server and on the embedded default."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from sscl_daemon.cli import main
from sscl_daemon.config import StoreSettings
from sscl_daemon.exitcodes import EXIT_CONFIG
from sscl_daemon.store import Store
from sscl_daemon.store.migrate import available_migrations


def test_migrate_applies_then_has_nothing_to_do(
    empty_pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sscl.toml"
    config.write_text(f'[store]\ndsn = "{empty_pg_dsn}"\n')
    assert main(["migrate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "applied 0001_initial" in out
    version = len(available_migrations())
    assert f"schema now at version {version}" in out

    assert main(["migrate", "--config", str(config)]) == 0
    assert f"schema already at version {version}, nothing to do" in capsys.readouterr().out


async def test_migrate_without_config_uses_the_default_file_and_its_embedded_store(
    embedded_state_dir: Path,
) -> None:
    """The file comes from $SSCL_DAEMON_CONFIG; the database is the daemon's, never a new one."""
    state = embedded_state_dir / "state"
    config = embedded_state_dir / "config.toml"
    config.write_text(f'[daemon]\nstate_dir = "{state}"\n')
    env = {**os.environ, "SSCL_DAEMON_CONFIG": str(config)}
    command = [sys.executable, "-m", "sscl_daemon", "migrate"]
    refused = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == EXIT_CONFIG
    assert f"no embedded database in {state.resolve() / 'postgres' / 'data'}" in refused.stderr
    assert not state.exists()

    # The daemon's first start makes the database; migrate then finds it up to date.
    await (await Store.open(StoreSettings(dsn="embedded"), state)).close()
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stdout
    data_dir = str((state / "postgres" / "data").resolve())
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if data_dir in (p.info["cmdline"] or [])
    ]
    assert leftovers == []
