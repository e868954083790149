"""The test-database fixtures: no server means a failure with one clear message."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sscl_daemon.store.testing import (
    TEST_DSN_ENV,
    PostgresForTests,
    PostgresUnavailable,
    _remove_abandoned_workdirs,
)

ROOT = Path(__file__).resolve().parents[2]


def refused_dsn() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://sscl:pw-not-shown@127.0.0.1:{port}/sscl"


def test_an_unreachable_test_server_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_DSN_ENV, refused_dsn())
    with pytest.raises(PostgresUnavailable) as caught:
        PostgresForTests.start()
    message = str(caught.value)
    assert message.startswith("No PostgreSQL for the tests: SSCL_TEST_DSN cannot be used")
    assert "connection refused" in message
    assert "pw-not-shown" not in message


def test_a_test_needing_postgres_fails_instead_of_skipping() -> None:
    env = {**os.environ, TEST_DSN_ENV: refused_dsn()}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/store/test_outbox.py::test_snapshots_are_saved_and_replaced",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout
    assert "1 error" in done.stdout
    assert "skipped" not in done.stdout
    assert "No PostgreSQL for the tests" in done.stdout


def make_workdir(age: float) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="sscl-test-pg-"))
    (workdir / "postgres").mkdir()
    (workdir / "postgres" / "server.lock").write_text("12345\n")
    then = time.time() - age
    os.utime(workdir, (then, then))
    return workdir


def test_directories_of_killed_sessions_are_removed() -> None:
    abandoned = make_workdir(age=3600)
    recent = make_workdir(age=0)
    busy = make_workdir(age=3600)
    with (busy / "postgres" / "server.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            _remove_abandoned_workdirs()
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
    try:
        assert not abandoned.exists()
        assert recent.exists()
        assert busy.exists()
    finally:
        for path in (abandoned, recent, busy):
            shutil.rmtree(path, ignore_errors=True)
