"""Where an account's event stream stands: checkpoint, recovery point, snapshot, directory.

Where it sits: a part of the :class:`~.store.Store` façade. The group committer writes
the checkpoint together with the calls (``Store.commit_batch``); the account runner
saves the WebSocket recovery point, the tracker's snapshot and the extension directory,
and reads them all back at start. Writes that take a ``fence`` refuse to run once the
account's lease went to another instance.
"""

from __future__ import annotations

from datetime import datetime

from sscl_daemon.store import sql
from sscl_daemon.store.access import PoolUser
from sscl_daemon.store.leases import Lease
from sscl_daemon.store.model import Checkpoint, RecoveryToken


class Checkpoints(PoolUser):
    """The ``checkpoints``, ``session_snapshots`` and ``directories`` tables."""

    async def load_checkpoint(self, account: str) -> Checkpoint | None:
        async with self.connection("loading the checkpoint") as conn:
            row = await conn.fetchrow(sql.LOAD_CHECKPOINT, account)
        if row is None or row["last_event_time"] is None:
            return None
        return Checkpoint(last_event_time=row["last_event_time"], updated_at=row["updated_at"])

    async def save_recovery_token(
        self,
        account: str,
        token: str,
        expires_at: datetime,
        oauth_session: str,
        *,
        sequence: int | None = None,
        fence: Lease | None = None,
    ) -> None:
        async with self.transaction("saving the recovery token", fence, account) as conn:
            await conn.execute(
                sql.SAVE_RECOVERY_TOKEN, account, token, expires_at, oauth_session, sequence
            )

    async def load_recovery_token(self, account: str) -> RecoveryToken | None:
        async with self.connection("loading the recovery token") as conn:
            row = await conn.fetchrow(sql.LOAD_RECOVERY_TOKEN, account)
        if row is None:
            return None
        return RecoveryToken(
            token=row["recovery_token"],
            expires_at=row["recovery_token_expires_at"],
            oauth_session=row["oauth_session"] or "",
            updated_at=row["updated_at"],
            sequence=row["recovery_sequence"],
        )

    async def clear_recovery_token(self, account: str) -> None:
        async with self.connection("clearing the recovery token") as conn:
            await conn.execute(sql.CLEAR_RECOVERY_TOKEN, account)

    async def save_directory(
        self, account: str, data: bytes, *, fence: Lease | None = None
    ) -> None:
        async with self.transaction("saving the extension directory", fence, account) as conn:
            await conn.execute(sql.SAVE_DIRECTORY, account, data)

    async def load_directory(self, account: str) -> bytes | None:
        async with self.connection("loading the extension directory") as conn:
            data = await conn.fetchval(sql.LOAD_DIRECTORY, account)
        return bytes(data) if data is not None else None

    async def save_snapshot(self, account: str, data: bytes, *, fence: Lease | None = None) -> None:
        async with self.transaction("saving the snapshot", fence, account) as conn:
            await conn.execute(sql.SAVE_SNAPSHOT, account, data)

    async def load_snapshot(self, account: str) -> bytes | None:
        async with self.connection("loading the snapshot") as conn:
            value = await conn.fetchval(sql.LOAD_SNAPSHOT, account)
        return None if value is None else bytes(value)
