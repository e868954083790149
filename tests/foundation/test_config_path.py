"""Which file every command reads, and the run command's checks before the daemon starts.

Issue 18 items 1-3 and 8: one default path (/etc/sscl-daemon/config.toml), overridden by
$SSCL_DAEMON_CONFIG and by --config; check-config takes --config too (the positional file
is kept); problems a restart cannot fix exit with the unit's final status.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from sscl_daemon.cli import main
from sscl_daemon.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    Need,
    add_config_argument,
    config_path,
    load_for_command,
)
from sscl_daemon.exitcodes import EXIT_CONFIG

CONFIG = """
[daemon]
state_dir = "{state}"
[ringcentral]
client_id = "cid"
client_secret = "credential:rc-client-secret"
jwt = "credential:rc-jwt"
[writers.log]
type = "jsonl"
path = "calls.jsonl"
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    file = tmp_path / "config.toml"
    file.write_text(CONFIG.format(state=tmp_path / "state"))
    return file


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_argument(parser)
    return parser.parse_args(argv)


def test_the_file_is_the_option_else_the_variable_else_the_default(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Path("/etc/sscl-daemon/config.toml") == DEFAULT_CONFIG_PATH
    assert config_path(parsed().config) == DEFAULT_CONFIG_PATH
    monkeypatch.setenv(CONFIG_ENV, str(config))
    assert config_path(parsed().config) == config
    assert config_path(parsed("--config", "/elsewhere.toml").config) == Path("/elsewhere.toml")
    assert config_path(parsed("-c", "/x.toml").config) == Path("/x.toml")


def test_load_for_command_reads_the_variables_file_and_only_needed_secrets(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18 item 1: status-like commands load a file whose credentials they cannot read."""
    monkeypatch.setenv(CONFIG_ENV, str(config))
    settings = load_for_command(parsed(), needs=Need.STORE)
    assert settings.source == config
    assert settings.account().ringcentral.client_id == "cid"


def test_check_config_uses_the_default_path_and_says_which_file(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18 item 8: every command, check-config included, has the same default."""
    monkeypatch.setenv(CONFIG_ENV, str(config.parent / "absent.toml"))
    assert main(["check-config"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"invalid configuration {config.parent / 'absent.toml'}" in err
    assert "cannot read the file" in err


def test_check_config_reads_credentials_from_the_credentials_directory(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18 item 1: the README's config checked from a shell, outside systemd."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in ("rc-client-secret", "rc-jwt"):
        (credentials / name).write_text(f"{name}-value")
        (credentials / name).chmod(0o600)
    text = config.read_text().replace(
        "[daemon]\n", f'[daemon]\ncredentials_dir = "{credentials}"\n'
    )
    config.write_text(text)
    for argv in (["--config", str(config)], [str(config)]):
        assert main(["check-config", *argv]) == 0
        out = capsys.readouterr().out
        assert f"{config}: OK" in out
        assert f"credentials (credential:NAME): {credentials}" in out
        assert "rc-jwt-value" not in out
    assert main(["check-config", str(config), "--config", str(config)]) == EXIT_CONFIG
    assert "not both" in capsys.readouterr().err


def test_run_refuses_a_state_directory_it_cannot_create(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Issue 18 item 3: exit with the final status and say what to fix, not exit 1 for ever."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in ("rc-client-secret", "rc-jwt"):
        (credentials / name).write_text("value")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config.write_text(CONFIG.format(state=blocker / "state"))
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"cannot create the state directory {blocker / 'state'}" in err
    assert "StateDirectory=" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any directory")
def test_run_refuses_a_state_directory_it_cannot_write(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in ("rc-client-secret", "rc-jwt"):
        (credentials / name).write_text("value")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    state = tmp_path / "state"
    state.mkdir(mode=0o500)
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG
    assert f"the state directory {state} is not writable" in capsys.readouterr().err


def test_run_without_readable_credentials_exits_with_the_final_status(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "empty"))
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "ringcentral.jwt: cannot read credential 'rc-jwt'" in err
    assert "LoadCredential=rc-jwt:" in err


def test_run_warns_at_start_about_a_secret_everyone_can_read(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 18 item 13: the warning reaches the journal at every start (stderr)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    text = CONFIG.format(state=blocker / "state")
    text = text.replace('"credential:rc-client-secret"', '"inline-client-secret"')
    config.write_text(text.replace('"credential:rc-jwt"', '"inline-jwt"'))
    config.chmod(0o644)
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG  # stopped by the state dir
    err = capsys.readouterr().err
    warning = (
        f"warning: {config} holds secrets written inline (ringcentral.client_secret, "
        "ringcentral.jwt) and every user can read it (mode 0644)"
    )
    assert warning in err
    assert "inline-client-secret" not in err
    assert "inline-jwt" not in err
