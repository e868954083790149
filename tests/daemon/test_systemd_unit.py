"""The systemd unit: systemd-analyze accepts it and it carries what the daemon relies on.

The unit, the sysusers.d file and the README's install steps must agree: the user and
group, the paths ExecStart= and Documentation= name, the final exit statuses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sscl_daemon.exitcodes import FINAL

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "sscl-daemon.service"
SYSUSERS = ROOT / "systemd" / "sscl-daemon.sysusers"
README = ROOT / "README.md"


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
    assert "DynamicUser" not in d  # a dynamic user has no group to read the config through
    assert d["User"] == d["Group"] == ["sscl-daemon"]
    assert d["StateDirectory"] == ["sscl-daemon"]
    assert d["StateDirectoryMode"] == ["0700"]
    assert d["RestartPreventExitStatus"] == [" ".join(str(code) for code in FINAL)]
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


def _install_block() -> str:
    section = README.read_text().split("## Install under systemd\n", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_installs_what_the_unit_names() -> None:
    d = _directives()
    block = _install_block()
    executable = d["ExecStart"][0].split()[0]
    assert f"ln -s /opt/sscl-daemon/bin/sscl-daemon {executable}" in block
    (documentation,) = d["Documentation"]
    assert documentation.startswith("file://")
    assert f"install -D -m 0644 README.md {documentation.removeprefix('file://')}" in block
    assert "install -m 0644 systemd/sscl-daemon.sysusers /etc/sysusers.d/sscl-daemon.conf" in block
    assert "install -m 0644 systemd/sscl-daemon.service /etc/systemd/system/" in block
    config = d["ExecStart"][0].split("--config ", 1)[1]
    assert f"config.example.toml {config}" in block
    for value in d["LoadCredential"]:
        source = value.split(":", 1)[1]
        assert source in block, f"the README does not create {source}"


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers missing")
def test_sysusers_creates_the_units_user_and_group(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    group = (tmp_path / "etc" / "group").read_text()
    (user,) = [line for line in passwd.splitlines() if line.startswith("sscl-daemon:")]
    assert user.endswith(":/var/lib/sscl-daemon:/usr/sbin/nologin")
    assert any(line.startswith("sscl-daemon:") for line in group.splitlines())
