"""The outbox says which path produced each call log (issue 13; migration 0005)."""

from __future__ import annotations

import asyncpg
import msgspec

from sscl_daemon.calls.model import CallSource
from sscl_daemon.store import Store
from sscl_daemon.store.testing import sample_call

ACCOUNT = "1000"


async def test_the_outbox_source_column_follows_each_call(store: Store, pg_dsn: str) -> None:
    sources = [CallSource.LIVE, CallSource.CALL_LOG, CallSource.LIVE_CALL_LOG]
    calls = [
        msgspec.structs.replace(
            sample_call(i), source=source, approximate=("talk_ms",) if i else ()
        )
        for i, source in enumerate(sources)
    ]
    await store.commit_batch(ACCOUNT, calls, ["jsonl"], None, [])
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch(
            "SELECT call_key, source, payload->'approximate' AS approximate FROM outbox "
            "WHERE account = $1",
            ACCOUNT,
        )
    finally:
        await conn.close()
    assert {r["call_key"]: r["source"] for r in rows} == {c.key: c.source.value for c in calls}
    # the payload keeps the fields given as estimates, for the writers' documents
    assert {r["call_key"]: r["approximate"] for r in rows} == {
        c.key: msgspec.json.encode(list(c.approximate)).decode() for c in calls
    }
