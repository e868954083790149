"""Reaching the store's server: the state directory, the embedded database, the pool.

Where it sits: :meth:`Store.open <.store.Store.open>` and :meth:`Store.attach
<.store.Store.attach>` use these to get from the configuration to a pool of connections
(embedded server under the state directory, or the server named by ``store.dsn``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from sscl_daemon.config import StoreSettings
from sscl_daemon.store import sql
from sscl_daemon.store.embedded import EmbeddedServer
from sscl_daemon.store.errors import DATABASE_ERRORS, StoreError, connect_error

# The daemon's database on the embedded server.
EMBEDDED_DATABASE = "sscl"
# No statement of ours takes long; one that does means the server or network is stuck.
_COMMAND_TIMEOUT = 60.0

# A DSN asyncpg cannot parse surfaces as ValueError when the pool first connects.
_CONNECT_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, ValueError)


async def _reset_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Before a connection goes back to the pool: the full reset only if something is open.

    The store's statements leave no session state behind (no SET, LISTEN or cursor;
    the migration lock is released explicitly; the listener and the leases have
    connections of their own), so the default reset query on every release is a
    round trip that changes nothing, except after a transaction left open.
    """
    if conn.is_in_transaction():
        await conn.execute(conn.get_reset_query())


async def create_pool(
    dsn: str, password: str | None, settings: StoreSettings
) -> asyncpg.Pool[asyncpg.Record]:
    try:
        return await asyncpg.create_pool(
            dsn,
            password=password,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.connect_timeout,
            command_timeout=_COMMAND_TIMEOUT,
            max_inactive_connection_lifetime=300.0,
            reset=_reset_connection,
            server_settings={"application_name": "sscl-daemon", "jit": "off"},
        )
    except _CONNECT_ERRORS as exc:
        raise connect_error(exc, dsn, password) from None


def private_state_dir(state_dir: Path) -> None:
    """The state directory exists and only the service may enter it (0700).

    The embedded server's files, the jsonl call data and recordings live there. When the
    server runs as another user (the daemon is root) it gets search permission back on
    the way to its own directory (:mod:`.embedded`).
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        state_dir.chmod(0o700)
    except OSError as exc:
        raise StoreError(
            f"cannot create or protect the state directory {state_dir}: {exc.strerror} "
            "(check daemon.state_dir and $STATE_DIRECTORY)",
            permanent=True,
        ) from None


async def require_database(server: EmbeddedServer, connect_timeout: float) -> None:
    """The daemon's database exists on the embedded ``server`` (a command never creates it)."""
    async with _admin(server.dsn(), connect_timeout) as conn:
        exists = await conn.fetchval(sql.DATABASE_EXISTS, EMBEDDED_DATABASE)
    if not exists:
        raise StoreError(
            f"the embedded PostgreSQL in {server.root} has no database {EMBEDDED_DATABASE!r}: "
            "the daemon has not run with this daemon.state_dir",
            permanent=True,
        )


async def ensure_database(admin_dsn: str, database: str, connect_timeout: float) -> None:
    """Create ``database`` on the embedded server the first time."""
    async with _admin(admin_dsn, connect_timeout) as conn:
        exists = await conn.fetchval(sql.DATABASE_EXISTS, database)
        if not exists:
            await conn.execute(sql.CREATE_DATABASE.format(database=database))


@contextlib.asynccontextmanager
async def _admin(
    admin_dsn: str, connect_timeout: float
) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A connection to the embedded server's maintenance database, closed after use."""
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=connect_timeout)
    except DATABASE_ERRORS as exc:
        raise connect_error(exc, admin_dsn, None) from None
    try:
        yield conn
    finally:
        await conn.close()
