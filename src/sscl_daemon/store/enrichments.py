"""The enrichment rows (migration 0007): one per update of a logged call's CRM record
(dispatch / the enrichment runner -> here -> Postgres).

Rows are made two ways, both idempotent on ``(account, call_key, writer, kind)``:
:meth:`Enrichments.enqueue` right after a create was recorded (with the note the writer
wrote), and :meth:`Enrichments.sweep`, which finds created logs of the last hours that should
have rows and have none (a crash between recording the create and enqueueing) -- those get
``written = NULL``, so their note is never rewritten. Claims, retries and settlements mirror
the outbox's (``FOR UPDATE SKIP LOCKED``, a claim that lapses comes back uncertain, every
settlement guarded by the claimer and fenced by the account lease).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sscl_daemon.calls.model import CompletedCall, encode_call
from sscl_daemon.store import sql
from sscl_daemon.store.access import decoded, from_row
from sscl_daemon.store.leases import Lease
from sscl_daemon.store.store import Store


class EnrichmentStatus(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SENT = "sent"
    DEAD = "dead"
    # The media never came within the row's window.
    EXPIRED = "expired"


@dataclass(frozen=True)
class EnrichmentItem:
    """One claimed enrichment row."""

    id: int
    account: str
    writer: str
    kind: str
    call: CompletedCall
    record_id: str
    written: str | None
    attempts: int
    uncertain: bool
    give_up_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class Wanted:
    """An enrichment to make: the kind, for the logged call ``call`` (record ``record_id``)."""

    call: CompletedCall
    record_id: str
    kind: str
    written: str | None


class Enrichments:
    """The enrichment rows of one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def enqueue(
        self,
        account: str,
        writer: str,
        wanted: Sequence[Wanted],
        *,
        first_delay: float,
        window: float,
        fence: Lease | None = None,
    ) -> None:
        """Rows for ``wanted`` (those already there are kept), due in ``first_delay``
        seconds, given up ``window`` seconds from now."""
        if not wanted:
            return
        async with self._store.transaction("queueing call log updates", fence) as conn:
            await conn.execute(
                sql.INSERT_ENRICHMENTS,
                account,
                writer,
                float(first_delay),
                float(window),
                [w.call.key for w in wanted],
                [w.kind for w in wanted],
                [w.record_id for w in wanted],
                [encode_call(w.call).decode() for w in wanted],
                [w.written for w in wanted],
            )

    async def sweep(
        self,
        account: str,
        writer: str,
        kinds: Sequence[str],
        window: float,
        *,
        fence: Lease | None = None,
    ) -> int:
        """Rows for created logs of the last ``window`` seconds that lack them; how many."""
        if not kinds:
            return 0
        async with self._store.transaction("finding call logs to update", fence) as conn:
            status = await conn.execute(
                sql.SWEEP_ENRICHMENTS, writer, account, list(kinds), float(window)
            )
        return int(status.split()[-1])

    async def claim_due(
        self,
        account: str,
        writer: str,
        limit: int,
        claimer: str,
        lease_seconds: float,
        *,
        fence: Lease | None = None,
    ) -> list[EnrichmentItem]:
        async with self._store.transaction("claiming call log updates", fence) as conn:
            rows = await conn.fetch(
                sql.CLAIM_DUE_ENRICHMENTS, writer, limit, claimer, float(lease_seconds), account
            )
        claimed = await decoded(
            rows,
            lambda i, error: self.finish(
                i, claimer, EnrichmentStatus.DEAD, f"undecodable: {error}"
            ),
        )
        return [
            from_row(EnrichmentItem, row, call=call, record_id=row["crm_record_id"])
            for row, call in claimed
        ]

    async def finish(
        self,
        item_id: int,
        claimer: str,
        status: EnrichmentStatus,
        result: str,
        *,
        written: str | None = None,
        fence: Lease | None = None,
    ) -> bool:
        """Settle the row as sent, expired or dead. With ``written`` (the note the update
        left), the record's other pending updates compare with it from now on."""
        async with self._store.transaction("settling a call log update", fence) as conn:
            row = await conn.fetchrow(sql.FINISH_ENRICHMENT, item_id, claimer, status.value, result)
            if row is not None and written is not None:
                await conn.execute(
                    sql.PASS_WRITTEN, row["account"], row["call_key"], row["writer"], written
                )
        return row is not None

    async def retry(
        self,
        item_id: int,
        claimer: str,
        delay: float,
        error: str,
        uncertain: bool,
        *,
        fence: Lease | None = None,
    ) -> bool:
        async with self._store.transaction("scheduling a call log update", fence) as conn:
            status = await conn.execute(
                sql.RETRY_ENRICHMENT, item_id, claimer, float(delay), error, uncertain
            )
        return status.endswith(" 1")

    async def pending(self, account: str | None = None) -> dict[str, int]:
        """Writer -> updates still to do (for ``status`` and the metrics)."""
        async with self._store.connection("counting pending call log updates") as conn:
            rows = await conn.fetch(sql.PENDING_ENRICHMENTS, account)
        return {str(r["writer"]): int(r["n"]) for r in rows}

    async def rows(self, account: str, writer: str) -> list[dict[str, object]]:
        """Every row of ``writer``: key, kind, status, result, attempts, note, last error."""
        async with self._store.connection("reading call log updates") as conn:
            found = await conn.fetch(sql.ENRICHMENT_ROWS, account, writer)
        return [dict(r) for r in found]
