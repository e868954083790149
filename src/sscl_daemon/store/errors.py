"""Store errors: one exception type with a message an operator can act on.

Everything that can go wrong between the daemon and PostgreSQL (the embedded
server not starting, a bad DSN, a refused connection, a wrong password, a
schema newer than this code) surfaces as :class:`StoreError`. Messages name
the host and database from the DSN and never contain the password (neither
``store.password`` nor one written into the DSN). A ``permanent`` error is a
configuration problem that a restart cannot fix (a login refused, a database
that does not exist, a directory the daemon may not create): the daemon exits
with the status its unit does not restart on.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

import asyncpg

from sscl_daemon.errors import SsclError

# What talking to PostgreSQL can raise besides programming errors: server errors,
# client/protocol errors (a connection whose server died mid-call), and the socket's own.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


class StoreError(SsclError):
    """PostgreSQL could not be used; the message says what and how to fix it.

    ``permanent``: only a change of configuration (or of the server's) can fix it.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


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


def dsn_password(dsn: str) -> str | None:
    """The password written into a DSN, if any (only ever to scrub it from messages)."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        return None
    return unquote(password) if password else None


def scrub(text: str, *passwords: str | None) -> str:
    """``text`` with every given password (raw and URL-quoted) replaced by ``***``."""
    for password in passwords:
        if password:
            for form in {password, quote(password, safe="")}:
                text = text.replace(form, "***")
    return text


def connect_error(exc: BaseException, dsn: str, password: str | None) -> StoreError:
    """Turn whatever asyncpg raised while connecting into a :class:`StoreError`."""
    target = dsn_target(dsn)
    where = target.describe()
    reason: str
    # A refused login or a missing database: only a configuration change fixes these.
    permanent = isinstance(
        exc,
        (
            asyncpg.InvalidPasswordError,
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidCatalogNameError,
            ValueError,
        ),
    )
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
    elif isinstance(exc, ValueError):
        reason = "store.dsn cannot be parsed (expected postgresql://USER@HOST:PORT/DATABASE)"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    message = scrub(f"cannot use {where}: {reason}", password, dsn_password(dsn))
    return StoreError(message, permanent=permanent)
