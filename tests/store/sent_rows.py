"""Outbox rows in every state with a chosen age, for the retention tests (store and daemon)."""

from __future__ import annotations

import asyncpg

from sscl_daemon.store import Outcome, Store
from sscl_daemon.store.testing import sample_call

WRITER = "crm"


async def sent_rows(
    store: Store, dsn: str, account: str, first: int, count: int, days_ago: float
) -> list[int]:
    """``count`` calls committed, claimed and settled (created/existed/skipped in turn), their
    ``sent_at`` moved ``days_ago`` days back; returns the row ids."""
    calls = [sample_call(first + i) for i in range(count)]
    await store.commit_batch(account, calls, [WRITER], None)
    items = await store.claim_due(WRITER, count, "test", 60.0, account)
    assert len(items) == count
    outcomes = [Outcome.CREATED, Outcome.EXISTED, Outcome.SKIPPED]
    settled = [(item.id, f"crm-{item.id}", outcomes[i % 3]) for i, item in enumerate(items)]
    assert len(await store.mark_sent_many(settled, "test")) == count
    ids = [item.id for item in items]
    await age_rows(dsn, ids, days_ago)
    return ids


async def age_rows(dsn: str, ids: list[int], days_ago: float) -> None:
    """Move every timestamp of the rows ``days_ago`` days back (sent_at too, even if unset)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE outbox SET sent_at = now() - make_interval(secs => $2), "
            "created_at = now() - make_interval(secs => $2), "
            "updated_at = now() - make_interval(secs => $2) WHERE id = ANY($1::bigint[])",
            ids,
            days_ago * 86400.0,
        )
    finally:
        await conn.close()


async def count_rows(store: Store, account: str) -> int:
    return len(await store.outbox_rows(account, limit=100_000))
