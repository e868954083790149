"""Store errors: one exception type with a message an operator can act on.

Everything that can go wrong between the daemon and PostgreSQL (the embedded
server not starting, a bad DSN, a refused connection, a wrong password, a
schema newer than this code) surfaces as :class:`StoreError`. Messages name
the host and database from the DSN and never contain the password.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

# What talking to PostgreSQL can raise besides programming errors: server errors,
# client/protocol errors (a connection whose server died mid-call), and the socket's own.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class StoreError(Exception):
    """PostgreSQL could not be used; the message says what and how to fix it."""


@dataclass(frozen=True)
class DsnTarget:
    """The parts of a DSN worth naming in an error (never the password)."""

    host: str
    port: int | None
    database: str
    user: str

    def describe(self) -> str:
        where = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"PostgreSQL at {where}, database {self.database!r}, user {self.user!r}"


def dsn_target(dsn: str) -> DsnTarget:
    """Parse the host, port, database and user out of a ``postgresql://`` URL."""
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError:
        raise StoreError(
            "store.dsn is not a valid postgresql:// URL "
            "(expected postgresql://USER@HOST:PORT/DATABASE)"
        ) from None
    query = parse_qs(parts.query)
    host = unquote(parts.hostname or "") or (query.get("host") or ["localhost"])[0]
    if port is None and query.get("port"):
        try:
            port = int(query["port"][0])
        except ValueError:
            port = None
    user = unquote(parts.username or "") or (query.get("user") or ["(default)"])[0]
    database = unquote(parts.path.lstrip("/")) or (query.get("dbname") or [user])[0]
    return DsnTarget(host=host, port=port, database=database, user=user)


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


def connect_error(exc: BaseException, dsn: str, password: str | None) -> StoreError:
    """Turn whatever asyncpg raised while connecting into a :class:`StoreError`."""
    target = dsn_target(dsn)
    where = target.describe()
    reason: str
    if isinstance(exc, asyncpg.InvalidPasswordError):
        reason = (
            f"authentication failed for user {target.user!r}: wrong password "
            "(check store.password or the password in store.dsn)"
        )
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        reason = (
            f"database {target.database!r} does not exist "
            f"(create it: createdb -h {target.host} {target.database})"
        )
    elif isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        reason = f"the server refused user {target.user!r}: {exc}"
    elif isinstance(exc, socket.gaierror):
        reason = f"host {target.host!r} not found (check the host name in store.dsn)"
    elif isinstance(exc, ConnectionRefusedError):
        reason = "connection refused (is PostgreSQL running and listening there?)"
    elif isinstance(exc, TimeoutError):
        reason = "no answer within the connect timeout (store.connect_timeout)"
    elif isinstance(exc, OSError):
        reason = f"cannot connect: {exc.strerror or exc}"
    elif isinstance(exc, asyncpg.PostgresError):
        reason = f"the server said: {exc}"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return StoreError(_scrub(f"cannot use {where}: {reason}", password))
