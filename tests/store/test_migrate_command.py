"""``sscl-daemon migrate``: on a configured server and on the embedded default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from sscl_daemon.cli import main
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


def test_migrate_without_config_uses_the_embedded_server(embedded_state_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sscl_daemon", "migrate"],
        cwd=embedded_state_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "applied 0001_initial" in done.stdout
    data_dir = str((embedded_state_dir / "state" / "postgres" / "data").resolve())
    assert (embedded_state_dir / "state" / "postgres" / "data" / "PG_VERSION").exists()
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if data_dir in (p.info["cmdline"] or [])
    ]
    assert leftovers == []
