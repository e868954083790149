"""What every part of the store shares: the pool, database failures as StoreError, NOTIFY.

Where it sits: :class:`~.store.Store` is a façade over the modules that each keep one
kind of state (:mod:`.outbox`, :mod:`.checkpoints`, :mod:`.deadletters`, with
:mod:`.credentials`, :mod:`.leases` and :mod:`.instances`); each of those is a
:class:`PoolUser` working on the façade's one asyncpg pool, through
:meth:`PoolUser.connection` or :meth:`PoolUser.transaction` (fenced by an account's
lease when the write must not outlive it).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import msgspec

from sscl_daemon.calls.model import CompletedCall, decode_call
from sscl_daemon.store import sql
from sscl_daemon.store.errors import DATABASE_ERRORS, StoreError
from sscl_daemon.store.leases import Lease, check_fence
from sscl_daemon.store.model import Outcome

# LISTEN/NOTIFY channel: the payload is the writer name that has new due rows.
OUTBOX_CHANNEL = "sscl_outbox"

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Row = TypeVar("Row", bound=DataclassInstance)

# A pooled connection (a string: the proxy type cannot be subscripted at run time).
Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
# A pooled connection or a dedicated one (the lease keeper's): what the lease, instance and
# migration statements run on.
AnyConnection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)


class PoolUser:
    """A part of the store: it runs its statements on the store's pool."""

    _pool: asyncpg.Pool[asyncpg.Record]

    @contextlib.asynccontextmanager
    async def connection(self, action: str) -> AsyncIterator[Connection]:
        """A pooled connection (no transaction); a failure is a StoreError naming ``action``."""
        async with failures(action), self._pool.acquire() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def transaction(
        self, action: str, fence: Lease | None = None, account: str | None = None
    ) -> AsyncIterator[Connection]:
        """A pooled connection in a transaction; a failure is a StoreError naming ``action``.

        With a ``fence`` (the lease of ``account``, when given), the transaction first
        checks that the lease is still current (:func:`~.leases.check_fence`, which raises
        :class:`~.leases.LeaseLostError` once another instance took the account over).
        """
        async with failures(action), self._pool.acquire() as conn, conn.transaction():
            if fence is not None:
                await check_fence(conn, fence, account)
            yield conn


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


def from_row(cls: type[Row], row: asyncpg.Record, **given: Any) -> Row:
    """A ``cls`` (a dataclass) from the row's columns named as its fields; ``given`` (values
    converted, or read under another name) win over the row's. Fields the row lacks keep
    their defaults."""
    columns = set(row.keys())
    taken = {
        f.name: row[f.name]
        for f in dataclasses.fields(cls)
        if f.name in columns and f.name not in given
    }
    return cls(**taken, **given)


def outcome_of(row: asyncpg.Record) -> Outcome | None:
    """A row's ``outcome`` column (NULL until the row is settled)."""
    return Outcome(row["outcome"]) if row["outcome"] else None


async def decoded(
    rows: Iterable[asyncpg.Record], park: Callable[[int, str], Awaitable[object]]
) -> list[tuple[asyncpg.Record, CompletedCall]]:
    """Claimed rows in id order, each with the call of its ``payload``.

    A payload this version cannot read is parked with the reason (``park(id, error)``)
    instead of failing every claim forever, and left out.
    """
    found: list[tuple[asyncpg.Record, CompletedCall]] = []
    for row in sorted(rows, key=lambda r: int(r["id"])):
        try:
            found.append((row, decode_call(row["payload"])))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await park(row["id"], str(exc))
    return found
