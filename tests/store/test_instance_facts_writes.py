"""An instance's writer facts and commit failures are written only when they change
(store/instances.py): the daemon says them every lease poll while they are not empty, and an
unchanged poll must leave the ``instances`` row alone (no new row version), while a row the
heartbeat made again (empty) still gets them back. Real PostgreSQL; the row's ``xmin`` (the
transaction that wrote its current version) shows whether an UPDATE touched it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from sscl_daemon.store import Announcement, Store
from sscl_daemon.store.instances import CommitFailure

TTL = 5.0
ME = Announcement("host-a:1", "host-a.example", 1, ("org1", "org2"))
FACTS = {"org1": {"hs": {"key_mode": "unique", "key_property": "sscl_key"}}}
# The same facts, keys in another order (jsonb compares them as equal).
SAME_FACTS = {"org1": {"hs": {"key_property": "sscl_key", "key_mode": "unique"}}}


async def row_version(dsn: str) -> tuple[str, str, str]:
    """``xmin`` of this instance's row, and its two columns as stored."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT xmin::text AS v, writer_facts::text AS f, commit_failures::text AS c"
            " FROM instances WHERE instance_id = $1",
            ME.instance_id,
        )
    finally:
        await conn.close()
    assert row is not None
    return str(row["v"]), str(row["f"]), str(row["c"])


async def test_unchanged_writer_facts_leave_the_row_alone(store: Store, pg_dsn: str) -> None:
    await store.instance_heartbeat(ME, TTL)
    await store.record_writer_facts(ME.instance_id, FACTS)
    written, facts, _ = await row_version(pg_dsn)
    assert '"key_mode": "unique"' in facts

    await store.record_writer_facts(ME.instance_id, FACTS)
    await store.record_writer_facts(ME.instance_id, SAME_FACTS)
    assert (await row_version(pg_dsn))[0] == written

    changed = {"org1": {"hs": {"key_mode": "search"}}}
    await store.record_writer_facts(ME.instance_id, changed)
    version, facts, _ = await row_version(pg_dsn)
    assert version != written
    assert '"key_mode": "search"' in facts


async def test_a_row_made_again_gets_its_facts_back(store: Store, pg_dsn: str) -> None:
    await store.instance_heartbeat(ME, TTL)
    await store.record_writer_facts(ME.instance_id, FACTS)
    # The row is gone (pruned, or left) and the next heartbeat makes it again, empty.
    await store.leave_fleet()
    await store.instance_heartbeat(ME, TTL)
    assert (await row_version(pg_dsn))[1] == "{}"

    await store.record_writer_facts(ME.instance_id, FACTS)
    assert '"key_mode": "unique"' in (await row_version(pg_dsn))[1]


async def test_unchanged_commit_failures_leave_the_row_alone(store: Store, pg_dsn: str) -> None:
    await store.instance_heartbeat(ME, TTL)
    failing = {"org2": CommitFailure(datetime(2026, 12, 2, 11, 0, tzinfo=UTC), "disk full")}
    await store.record_commit_failures(ME.instance_id, failing)
    written, _, failures = await row_version(pg_dsn)
    assert "disk full" in failures

    await store.record_commit_failures(ME.instance_id, failing)
    assert (await row_version(pg_dsn))[0] == written

    await store.record_commit_failures(ME.instance_id, {})
    version, _, failures = await row_version(pg_dsn)
    assert version != written
    assert failures == "{}"
