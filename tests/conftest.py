"""Shared fixtures: a real PostgreSQL for every test that asks for one.

``pg_dsn`` is a fresh, migrated database per test (copied from a template),
``empty_pg_dsn`` a fresh one without schema, ``store`` an open
:class:`sscl_daemon.store.Store` on ``pg_dsn``. The server is
``$SSCL_TEST_DSN`` or one embedded server for the whole session, started only
if some test needs it. Without a server the tests that need one fail with a
single message saying what is missing; they never skip.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sscl_daemon.config import StoreSettings
from sscl_daemon.store import Store
from sscl_daemon.store.testing import PostgresForTests, PostgresUnavailable


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresForTests]:
    try:
        databases = PostgresForTests.start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
async def pg_dsn(pg_server: PostgresForTests) -> AsyncIterator[str]:
    dsn = await pg_server.create_database()
    try:
        yield dsn
    finally:
        await pg_server.drop_database(dsn)


@pytest.fixture
async def empty_pg_dsn(pg_server: PostgresForTests) -> AsyncIterator[str]:
    """A fresh database without any schema (for migration tests)."""
    dsn = await pg_server.create_database(migrated=False)
    try:
        yield dsn
    finally:
        await pg_server.drop_database(dsn)


@pytest.fixture
async def store(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(StoreSettings(dsn=pg_dsn, pool_max_size=4), tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def embedded_state_dir() -> Iterator[Path]:
    """A state directory for tests that start the embedded server themselves.

    Not under pytest's ``tmp_path``: when tests run as root the server runs as
    ``nobody``, and every new pytest session on the machine resets
    ``/tmp/pytest-of-root`` to mode 0700, which would lock it out mid-test.
    """
    path = Path(tempfile.mkdtemp(prefix="sscl-state-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
