"""The command dispatcher (sscl_daemon.cli)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sscl_daemon import __version__
from sscl_daemon.cli import main


def test_help_lists_available_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "check-config" in out
    assert "validate a configuration file" in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: sscl-daemon COMMAND" in capsys.readouterr().out


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_version_through_the_console_script_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sscl_daemon", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == f"sscl-daemon {__version__}"
