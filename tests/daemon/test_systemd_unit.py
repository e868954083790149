"""The systemd unit: systemd-analyze accepts it and it carries what the daemon relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "sscl-daemon.service"


def _directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_unit_has_the_service_contract() -> None:
    d = _directives()
    assert d["Type"] == ["notify"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert d["Restart"] == ["on-failure"]
    assert "WatchdogSec" in d
    assert d["DynamicUser"] == ["yes"]
    assert d["StateDirectory"] == ["sscl-daemon"]
    assert any(v.startswith("rc-jwt:") for v in d["LoadCredential"])
    for hardening in ("ProtectSystem", "NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert hardening in d, hardening
    assert d["ProtectSystem"] == ["strict"]
    assert "@system-service" in d["SystemCallFilter"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed on this machine (install the 'systemd' package)",
)
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    # verify insists that ExecStart= exists: point it at this environment's entry point.
    entry = Path(sys.executable).parent / "sscl-daemon"
    assert entry.exists(), f"{entry} missing: install the package (pip install -e .)"
    unit = tmp_path / "sscl-daemon.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/sscl-daemon", str(entry)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "sscl-daemon.service" not in result.stderr, result.stderr
