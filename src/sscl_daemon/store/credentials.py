"""Rotated credentials in Postgres: the ``credentials`` table (migration 0003).

Where it sits: an identity provider that rotates refresh tokens revokes the old one at
each refresh, so the newest token must outlive the process and be readable by whichever
instance holds the account next (a standby on another machine shares the database, not
the state directory). The CRM writers' OAuth clients (``crm/oauth.py``, attached in
``crm/wiring.py``) and the RingCentral authenticator (``daemon/accounts.py``) each get a
:class:`CredentialVault` -- one row, ``(account, name)`` -- which they read once at start
and write every time the provider hands out a new token.

Values are never part of an error message or a repr; an error names the account, the
credential and the database error's class only. The values are stored as they are: whoever
can read the database can use them, like the call data next to them (see README,
"Security").
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from sscl_daemon.store import sql
from sscl_daemon.store.errors import DATABASE_ERRORS, StoreError

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    from sscl_daemon.store.store import Store

    Connection = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]


def credential_name(kind: str, *issued_for: str) -> str:
    """``kind`` plus a fingerprint of what the credential was issued for (client id, ...).

    A stored token is then only found by the configuration it belongs to: another client
    id or a newly configured token starts afresh instead of using a stale stored value.
    """
    if not issued_for:
        return kind
    seed = "\0".join(issued_for).encode()
    return f"{kind}:{hashlib.sha256(seed).hexdigest()[:16]}"


@contextlib.asynccontextmanager
async def failures(action: str, account: str, name: str) -> AsyncIterator[None]:
    """Database errors as StoreError naming the credential, never its value."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        raise StoreError(
            f"store: {action} credential {name!r} of account {account!r} failed"
            f" ({type(exc).__name__})"
        ) from None


async def load(conn: Connection, account: str, name: str) -> str | None:
    value = await conn.fetchval(sql.LOAD_CREDENTIAL, account, name)
    return None if value is None else str(value)


async def save(conn: Connection, account: str, name: str, value: str) -> None:
    await conn.execute(sql.SAVE_CREDENTIAL, account, name, value)


class CredentialVault:
    """One credential of one account; what ``crm.oauth.TokenVault`` asks for."""

    def __init__(self, store: Store, account: str, name: str) -> None:
        self._store = store
        self.account = account
        self.name = name

    def __repr__(self) -> str:
        return f"CredentialVault(account={self.account!r}, name={self.name!r})"

    async def load(self) -> str | None:
        return await self._store.load_credential(self.account, self.name)

    async def save(self, value: str) -> None:
        await self._store.save_credential(self.account, self.name, value)
