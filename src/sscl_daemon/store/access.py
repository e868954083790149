"""What every part of the store shares: the pool, database failures as StoreError, NOTIFY.

Where it sits: :class:`~.store.Store` is a façade over the modules that each keep one
kind of state (:mod:`.outbox`, :mod:`.checkpoints`, :mod:`.deadletters`, with
:mod:`.credentials`, :mod:`.leases` and :mod:`.instances`); each of those is a
:class:`PoolUser` working on the façade's one asyncpg pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypeAlias

import asyncpg

from sscl_daemon.store import sql
from sscl_daemon.store.errors import DATABASE_ERRORS, StoreError

# LISTEN/NOTIFY channel: the payload is the writer name that has new due rows.
OUTBOX_CHANNEL = "sscl_outbox"

# A pooled connection (a string: the proxy type cannot be subscripted at run time).
Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"


class PoolUser:
    """A part of the store: it runs its statements on the store's pool."""

    _pool: asyncpg.Pool[asyncpg.Record]


def count(status: str) -> int:
    """Rows affected, from a command tag such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


async def notify_writers(conn: Connection, writers: set[str]) -> None:
    """Announce new due rows for ``writers``; delivered when the transaction commits."""
    if writers:
        await conn.execute(sql.NOTIFY_WRITERS, OUTBOX_CHANNEL, sorted(writers))


@contextlib.asynccontextmanager
async def failures(action: str) -> AsyncIterator[None]:
    """A database error inside becomes a :class:`StoreError` naming ``action``."""
    try:
        yield
    except StoreError:
        raise
    except DATABASE_ERRORS as exc:
        raise StoreError(f"store: {action} failed: {exc}") from exc
