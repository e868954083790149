"""Retention of the outbox: old sent rows deleted in bounded batches, nothing else ever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from tests.store.sent_rows import WRITER, age_rows, count_rows, sent_rows

from sscl_daemon.store import Checkpoint, LeaseLostError, OutboxStatus, Store
from sscl_daemon.store.outbox import Pruned
from sscl_daemon.store.testing import sample_call

ACCOUNT = "1000"
OTHER = "2000"


async def test_sent_rows_older_than_the_retention_are_deleted_in_bounded_batches(
    store: Store, pg_dsn: str
) -> None:
    await sent_rows(store, pg_dsn, ACCOUNT, 0, 25, days_ago=40)
    newer = await sent_rows(store, pg_dsn, ACCOUNT, 100, 5, days_ago=29)
    theirs = await sent_rows(store, pg_dsn, OTHER, 200, 3, days_ago=40)

    # 25 rows, at most 10 per statement: 10, 10, then 5 (fewer than a batch: done).
    assert await store.prune_sent(ACCOUNT, 30, batch_size=10, pause=0) == Pruned(25, 3)
    assert sorted(r.id for r in await store.outbox_rows(ACCOUNT)) == newer
    assert await count_rows(store, OTHER) == len(theirs)
    assert await store.prune_sent(ACCOUNT, 30, batch_size=10, pause=0) == Pruned(0, 1)


async def test_a_full_last_batch_takes_one_more_statement_to_see_the_end(
    store: Store, pg_dsn: str
) -> None:
    await sent_rows(store, pg_dsn, ACCOUNT, 0, 20, days_ago=31)
    assert await store.prune_sent(ACCOUNT, 30, batch_size=10, pause=0) == Pruned(20, 3)
    assert await count_rows(store, ACCOUNT) == 0


async def test_pending_in_flight_and_dead_rows_are_never_pruned(store: Store, pg_dsn: str) -> None:
    await store.commit_batch(ACCOUNT, [sample_call(i) for i in range(3)], [WRITER], None)
    dead, in_flight = await store.claim_due(WRITER, 2, "test", 60.0, ACCOUNT)
    assert await store.mark_dead(dead.id, "test", "HTTP 400: rejected")
    # Aged far beyond the retention, sent_at included: only the status protects them.
    await age_rows(pg_dsn, [r.id for r in await store.outbox_rows(ACCOUNT)], days_ago=365)

    assert await store.prune_sent(ACCOUNT, 30, batch_size=2, pause=0) == Pruned(0, 1)
    statuses = sorted(r.status for r in await store.outbox_rows(ACCOUNT))
    assert statuses == sorted([OutboxStatus.DEAD, OutboxStatus.IN_FLIGHT, OutboxStatus.PENDING])
    assert in_flight.id in {r.id for r in await store.outbox_rows(ACCOUNT)}


async def test_rows_within_a_day_of_the_checkpoint_are_kept_after_a_long_outage(
    store: Store, pg_dsn: str
) -> None:
    # The daemon was stopped 40 days ago: at start it reads the call log from its
    # checkpoint on, and needs the keys of the calls it logged just before stopping.
    stopped = datetime.now(UTC) - timedelta(days=40)
    await store.commit_batch(ACCOUNT, [], [WRITER], Checkpoint(last_event_time=stopped))
    await sent_rows(store, pg_dsn, ACCOUNT, 0, 4, days_ago=45)
    before_stop = await sent_rows(store, pg_dsn, ACCOUNT, 100, 3, days_ago=40.5)

    assert await store.prune_sent(ACCOUNT, 30, pause=0) == Pruned(4, 1)
    assert sorted(r.id for r in await store.outbox_rows(ACCOUNT)) == before_stop


async def test_a_deposed_lease_holder_prunes_nothing(store: Store, pg_dsn: str) -> None:
    lease = await store.acquire_lease(ACCOUNT, "host-a", 30.0)
    assert lease is not None
    await sent_rows(store, pg_dsn, ACCOUNT, 0, 3, days_ago=60)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("UPDATE leases SET fencing_token = fencing_token + 1")
    finally:
        await conn.close()
    with pytest.raises(LeaseLostError):
        await store.prune_sent(ACCOUNT, 30, pause=0, fence=lease)
    assert await count_rows(store, ACCOUNT) == 3


async def test_prune_needs_a_positive_retention_and_batch(store: Store) -> None:
    with pytest.raises(ValueError, match="cannot prune 0 days"):
        await store.prune_sent(ACCOUNT, 0)
    with pytest.raises(ValueError, match="in batches of 0"):
        await store.prune_sent(ACCOUNT, 30, batch_size=0)
