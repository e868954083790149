"""The README and the unit say what the code does: exit statuses, licence (issue 18 item 10).

``README.md`` "Troubleshooting" lists every exit status in a table; it must name exactly
the statuses of ``sscl_daemon.exitcodes``, mark as not restarted exactly the final ones,
and the unit must not restart on exactly those.
"""

from __future__ import annotations

import re
from pathlib import Path

from sscl_daemon import exitcodes
from sscl_daemon.daemon import app

ROOT = Path(__file__).resolve().parents[2]


def readme_statuses() -> dict[int, str]:
    section = (ROOT / "README.md").read_text().split("## Troubleshooting\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+) \| (.+) \|$", section, flags=re.MULTILINE)
    return {int(status): restart for status, _, restart in rows}


def code_statuses() -> dict[str, int]:
    return {name: value for name, value in vars(exitcodes).items() if name.startswith("EXIT_")}


def test_the_readme_lists_every_exit_status_of_the_code() -> None:
    listed = readme_statuses()
    assert sorted(listed) == sorted(code_statuses().values())
    not_restarted = {status for status, restart in listed.items() if "**not** restarted" in restart}
    assert not_restarted == set(exitcodes.FINAL)


def test_the_daemon_uses_the_same_constants() -> None:
    for name, value in code_statuses().items():
        assert getattr(app, name, value) == value, name


def test_the_unit_does_not_restart_on_the_final_statuses() -> None:
    unit = (ROOT / "systemd" / "sscl-daemon.service").read_text()
    (line,) = [x for x in unit.splitlines() if x.startswith("RestartPreventExitStatus=")]
    assert sorted(int(v) for v in line.split("=", 1)[1].split()) == sorted(exitcodes.FINAL)


def test_the_license_file_is_the_one_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
