"""Dead letters: input kept with the reason it could not be used (never fatal, never lost).

Where it sits: a part of the :class:`~.store.Store` façade. The pipeline, the group
committer and the reconciler add them (the committer inside its batch's transaction,
with :func:`insert_dead_letters`); ``sscl-daemon status`` and the console read them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sscl_daemon.store import sql
from sscl_daemon.store.access import Connection, PoolUser, from_row
from sscl_daemon.store.model import DeadLetter, StoredDeadLetter


async def insert_dead_letters(
    conn: Connection, account: str, letters: Sequence[DeadLetter]
) -> None:
    """Insert ``letters`` on ``conn`` (in the caller's transaction, if any)."""
    await conn.execute(
        sql.INSERT_DEAD_LETTERS,
        account,
        [letter.kind.value for letter in letters],
        [letter.reason for letter in letters],
        [letter.payload for letter in letters],
    )


class DeadLetters(PoolUser):
    """The ``dead_letters`` table."""

    async def add_dead_letters(self, account: str, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        async with self.connection("storing dead letters") as conn:
            await insert_dead_letters(conn, account, letters)

    async def dead_letters(
        self, account: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[StoredDeadLetter]:
        """The newest dead letters first."""
        async with self.connection("reading dead letters") as conn:
            rows = await conn.fetch(sql.DEAD_LETTERS, account, kind, limit)
        return [from_row(StoredDeadLetter, r, payload=bytes(r["payload"])) for r in rows]
