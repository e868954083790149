"""The outbox and ledger: one row per call log per writer, from pending to settled.

Where it sits: a part of the :class:`~.store.Store` façade. Rows are inserted with the
checkpoint by ``Store.commit_batch``; the dispatcher (``dispatch.py``) claims due rows
(``FOR UPDATE SKIP LOCKED`` with a claim lease) and records how each attempt ended. Every
state change is one statement (:mod:`.sql`) guarded in SQL: only the claimer that holds a
row in flight can settle it. The daemon's retention deletes old sent rows
(:meth:`Outbox.prune_sent`, ``daemon/retention.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sscl_daemon.store import sql
from sscl_daemon.store.access import PoolUser, count, decoded, from_row, notify_writers, outcome_of
from sscl_daemon.store.leases import Lease
from sscl_daemon.store.model import OutboxItem, OutboxRow, OutboxStatus, Outcome

# Retention: rows per DELETE and the pause between two (a batch takes milliseconds).
PRUNE_BATCH = 10_000
PRUNE_PAUSE = 0.5


@dataclass(frozen=True)
class Pruned:
    """What one :meth:`Outbox.prune_sent` run deleted, in how many statements."""

    rows: int
    batches: int


class Outbox(PoolUser):
    """The ``outbox`` table: the dispatcher's side and the reads of its rows."""

    async def claim_due(
        self,
        writer: str,
        limit: int,
        claimer: str,
        lease_seconds: float,
        account: str | None = None,
        *,
        fence: Lease | None = None,
    ) -> list[OutboxItem]:
        """Claim up to ``limit`` due rows of ``writer`` for ``lease_seconds`` (one statement).

        Rows another claimer holds are skipped, never waited for. A row whose
        previous claim lapsed comes back marked ``uncertain``. ``claimer`` must be
        unique per dispatcher incarnation (e.g. host, pid and a random suffix).
        With a ``fence`` only rows of the fence's account are claimed, and only
        while its lease is current.
        """
        if fence is not None:
            account = account or fence.account
        async with self.transaction(f"claiming outbox rows for {writer!r}", fence, account) as conn:
            rows = await conn.fetch(
                sql.CLAIM_DUE, writer, limit, claimer, float(lease_seconds), account
            )
        claimed = await decoded(
            rows,
            lambda i, error: self.mark_dead(i, claimer, f"undecodable outbox payload: {error}"),
        )
        return [from_row(OutboxItem, row, call=call) for row, call in claimed]

    async def _settle(self, action: str, fence: Lease | None, query: str, *args: object) -> bool:
        async with self.transaction(action, fence) as conn:
            return count(await conn.execute(query, *args)) == 1

    async def mark_sent(
        self,
        item_id: int,
        claimer: str,
        crm_record_id: str | None,
        outcome: Outcome,
        *,
        fence: Lease | None = None,
    ) -> bool:
        """Record the CRM's answer. False if ``claimer`` no longer holds the row; with a
        ``fence``, :class:`~sscl_daemon.store.leases.LeaseLostError` once it is deposed."""
        return await self._settle(
            "marking a call sent",
            fence,
            sql.MARK_SENT,
            item_id,
            claimer,
            crm_record_id,
            outcome.value,
        )

    async def mark_sent_many(
        self,
        items: Sequence[tuple[int, str | None, Outcome]],
        claimer: str,
        *,
        fence: Lease | None = None,
    ) -> set[int]:
        """:meth:`mark_sent` for many ``(item id, CRM record id, outcome)`` in ONE transaction.

        Returns the ids settled; a row ``claimer`` no longer holds is left alone
        and missing from the result. With a ``fence``,
        :class:`~sscl_daemon.store.leases.LeaseLostError` once it is deposed (nothing settled).
        """
        if not items:
            return set()
        async with self.transaction("marking calls sent", fence) as conn:
            rows = await conn.fetch(
                sql.MARK_SENT_MANY,
                [item_id for item_id, _, _ in items],
                claimer,
                [record_id for _, record_id, _ in items],
                [outcome.value for _, _, outcome in items],
            )
        return {int(r["id"]) for r in rows}

    async def schedule_retry(
        self,
        item_id: int,
        claimer: str,
        delay_seconds: float,
        error: str,
        uncertain: bool,
        *,
        fence: Lease | None = None,
    ) -> bool:
        """Back to pending after ``delay_seconds``. ``uncertain`` is sticky: once an attempt
        may have reached the CRM, every later attempt must check first."""
        return await self._settle(
            "scheduling a retry",
            fence,
            sql.SCHEDULE_RETRY,
            item_id,
            claimer,
            float(delay_seconds),
            error,
            uncertain,
        )

    async def mark_dead(
        self, item_id: int, claimer: str, reason: str, *, fence: Lease | None = None
    ) -> bool:
        """Park the row (no more attempts) until :meth:`retry_dead`."""
        return await self._settle(
            "parking a call as dead", fence, sql.MARK_DEAD, item_id, claimer, reason
        )

    async def retry_dead(
        self,
        writer: str | None = None,
        since: datetime | None = None,
        account: str | None = None,
        item_id: int | None = None,
    ) -> int:
        """Move dead outbox rows (of ``writer``, dead since ``since``; or the one row
        ``item_id``) back to pending."""
        async with self.transaction("retrying dead calls") as conn:
            rows = await conn.fetch(sql.RETRY_DEAD, writer, since, account, item_id)
            await notify_writers(conn, {str(r["writer"]) for r in rows})
        return len(rows)

    async def expire_claims(
        self, claimer_prefix: str, keep: str | None = None, account: str | None = None
    ) -> int:
        """End the claims of earlier incarnations of this daemon now instead of at lease end.

        Rows in flight under a claimer starting with ``claimer_prefix`` (other than
        ``keep``, this process) become due at once and are claimed again as
        ``uncertain``. Call it at start when no other live process claims under
        that prefix (e.g. prefix ``"<instance_name>:"``); returns the rows released.
        """
        async with self.transaction("expiring earlier claims") as conn:
            rows = await conn.fetch(sql.EXPIRE_CLAIMS, claimer_prefix, keep, account)
            await notify_writers(conn, {str(r["writer"]) for r in rows})
        return len(rows)

    async def prune_sent(
        self,
        account: str,
        older_than_days: int,
        *,
        batch_size: int = PRUNE_BATCH,
        pause: float = PRUNE_PAUSE,
        fence: Lease | None = None,
    ) -> Pruned:
        """Delete ``account``'s sent rows settled more than ``older_than_days`` days ago.

        Batches of at most ``batch_size`` rows, each its own short transaction, ``pause``
        seconds apart, so the daemon's commits never queue behind a long delete. Pending,
        in-flight and dead rows are never touched, nor rows within a day of the account's
        checkpoint (see :data:`sql.PRUNE_SENT`). With a ``fence``,
        :class:`~sscl_daemon.store.leases.LeaseLostError` once it is deposed.
        """
        if older_than_days < 1 or batch_size < 1:
            raise ValueError(f"cannot prune {older_than_days} days in batches of {batch_size}")
        action = f"pruning sent calls of account {account!r}"
        async with self.connection(action) as conn:
            cutoff = await conn.fetchval(sql.PRUNE_CUTOFF, account, older_than_days)
        rows = batches = 0
        while True:
            async with self.transaction(action, fence, account) as conn:
                deleted = count(await conn.execute(sql.PRUNE_SENT, account, cutoff, batch_size))
            rows, batches = rows + deleted, batches + 1
            if deleted < batch_size:
                return Pruned(rows, batches)
            await asyncio.sleep(pause)

    async def seconds_until_due(self, writer: str, account: str | None = None) -> float | None:
        """How long until the next row of ``writer`` is due (0 if one is due now; None if none)."""
        async with self.connection("reading the next due time") as conn:
            value = await conn.fetchval(sql.SECONDS_UNTIL_DUE, writer, account)
        return None if value is None else max(0.0, float(value))

    async def logged_keys(
        self, account: str, keys: Sequence[str], writers: Sequence[str]
    ) -> set[str]:
        """Those of ``keys`` already in ``account``'s outbox for every one of ``writers``
        (whatever their state: a call there is logged or on its way)."""
        if not keys or not writers:
            return set()
        async with self.connection("reading the outbox keys") as conn:
            rows = await conn.fetch(
                sql.LOGGED_KEYS,
                account,
                list(keys),
                list(dict.fromkeys(writers)),
                len(set(writers)),
            )
        return {str(r["call_key"]) for r in rows}

    async def outbox_rows(
        self,
        account: str | None = None,
        writer: str | None = None,
        status: OutboxStatus | None = None,
        limit: int = 1000,
    ) -> list[OutboxRow]:
        async with self.connection("reading the outbox") as conn:
            rows = await conn.fetch(
                sql.OUTBOX_ROWS, account, writer, status.value if status else None, limit
            )
        return [
            from_row(OutboxRow, r, status=OutboxStatus(r["status"]), outcome=outcome_of(r))
            for r in rows
        ]
