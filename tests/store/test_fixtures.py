"""The test-database fixtures: no server means a failure with one clear message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sscl_daemon.store.testing import TEST_DSN_ENV, PostgresForTests, PostgresUnavailable

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
