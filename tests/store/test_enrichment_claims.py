"""Enrichment claims share the outbox's claim helper (store/access.decoded): id order, and a
payload this version cannot read is parked as dead with its reason, never handed out."""

from __future__ import annotations

import asyncpg

from sscl_daemon.store import Store
from sscl_daemon.store.enrichments import Enrichments, EnrichmentStatus, Wanted
from sscl_daemon.store.testing import sample_call

ACCOUNT = "1000"
WRITER = "crm"


async def test_an_undecodable_enrichment_is_parked_and_the_rest_claimed_in_id_order(
    store: Store, pg_dsn: str
) -> None:
    rows = Enrichments(store)
    calls = [sample_call(i) for i in (1, 2, 3)]
    wanted = [Wanted(call, f"rec-{n}", "recording", None) for n, call in enumerate(calls)]
    await rows.enqueue(ACCOUNT, WRITER, wanted, first_delay=0.0, window=3600.0)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "UPDATE enrichments SET payload = '{\"key\": 5}' WHERE call_key = $1", calls[1].key
        )
    finally:
        await conn.close()

    items = await rows.claim_due(ACCOUNT, WRITER, 10, "claimer-a", 60.0)

    assert [i.call.key for i in items] == [calls[0].key, calls[2].key]
    assert [i.id for i in items] == sorted(i.id for i in items)
    assert [(i.record_id, i.kind, i.attempts) for i in items] == [
        ("rec-0", "recording", 1),
        ("rec-2", "recording", 1),
    ]
    parked = {str(r["call_key"]): r for r in await rows.rows(ACCOUNT, WRITER)}
    assert parked[calls[1].key]["status"] == EnrichmentStatus.DEAD
    assert str(parked[calls[1].key]["result"]).startswith("undecodable: ")
    assert await rows.pending(ACCOUNT) == {WRITER: 2}
