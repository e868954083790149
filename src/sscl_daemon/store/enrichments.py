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

import msgspec

from sscl_daemon.calls.model import CompletedCall, decode_call, encode_call
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


_INSERT = """
INSERT INTO enrichments (account, call_key, writer, kind, crm_record_id, payload, written,
                         next_attempt_at, give_up_at)
SELECT $1, w.call_key, $2, w.kind, w.record_id, w.payload::jsonb, w.written,
       now() + make_interval(secs => $3), now() + make_interval(secs => $4)
FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
     AS w(call_key, kind, record_id, payload, written)
ON CONFLICT ON CONSTRAINT enrichments_once DO NOTHING
"""

# Created logs of the window that should have a row of ``kind`` and have none.
_SWEEP = """
INSERT INTO enrichments (account, call_key, writer, kind, crm_record_id, payload, written,
                         next_attempt_at, give_up_at)
SELECT o.account, o.call_key, o.writer, k.kind, o.crm_record_id, o.payload, NULL,
       now(), o.sent_at + make_interval(secs => $4)
FROM outbox AS o
CROSS JOIN unnest($3::text[]) AS k(kind)
WHERE o.writer = $1 AND o.account = $2 AND o.status = 'sent' AND o.outcome = 'created'
  AND o.crm_record_id IS NOT NULL
  AND o.sent_at > now() - make_interval(secs => $4)
  AND ((k.kind = 'voicemail' AND o.payload->>'result' = 'voicemail')
       OR (k.kind = 'recording' AND jsonb_array_length(
               COALESCE(o.payload->'recording_ids', '[]'::jsonb)) > 0))
  AND NOT EXISTS (SELECT 1 FROM enrichments AS e
                  WHERE e.account = o.account AND e.call_key = o.call_key
                    AND e.writer = o.writer AND e.kind = k.kind)
ON CONFLICT ON CONSTRAINT enrichments_once DO NOTHING
"""

_CLAIM = """
WITH due AS (
    SELECT id FROM enrichments
    WHERE writer = $1 AND account = $5
      AND status IN ('pending', 'in_flight')
      AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE enrichments AS e SET
    status = 'in_flight',
    uncertain = e.uncertain OR e.status = 'in_flight',
    attempts = e.attempts + 1,
    claimed_by = $3,
    claim_expires_at = now() + make_interval(secs => $4),
    next_attempt_at = now() + make_interval(secs => $4),
    updated_at = now()
FROM due
WHERE e.id = due.id
RETURNING e.id, e.account, e.writer, e.kind, e.payload::text AS payload, e.crm_record_id,
          e.written, e.attempts, e.uncertain, e.give_up_at, e.created_at
"""

_OWNED = "id = $1 AND status = 'in_flight' AND claimed_by = $2"

_DONE = f"""
UPDATE enrichments SET status = $3, result = $4, done_at = now(),
    claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
WHERE {_OWNED}
RETURNING account, call_key, writer
"""

# What the next update of the same record compares the note with.
_PASS_WRITTEN = """
UPDATE enrichments SET written = $4, updated_at = now()
WHERE account = $1 AND call_key = $2 AND writer = $3 AND status IN ('pending', 'in_flight')
"""

_RETRY = f"""
UPDATE enrichments SET status = 'pending', next_attempt_at = now() + make_interval(secs => $3),
    last_error = $4, uncertain = uncertain OR $5,
    claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
WHERE {_OWNED}
"""

_PENDING = """
SELECT writer, count(*) AS n FROM enrichments
WHERE status IN ('pending', 'in_flight') AND ($1::text IS NULL OR account = $1)
GROUP BY writer
"""


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
                _INSERT,
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
            status = await conn.execute(_SWEEP, writer, account, list(kinds), float(window))
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
            rows = await conn.fetch(_CLAIM, writer, limit, claimer, float(lease_seconds), account)
        items: list[EnrichmentItem] = []
        for row in sorted(rows, key=lambda r: int(r["id"])):
            try:
                call = decode_call(row["payload"])
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await self.finish(row["id"], claimer, EnrichmentStatus.DEAD, f"undecodable: {exc}")
                continue
            items.append(
                EnrichmentItem(
                    id=row["id"],
                    account=row["account"],
                    writer=row["writer"],
                    kind=row["kind"],
                    call=call,
                    record_id=row["crm_record_id"],
                    written=row["written"],
                    attempts=row["attempts"],
                    uncertain=row["uncertain"],
                    give_up_at=row["give_up_at"],
                    created_at=row["created_at"],
                )
            )
        return items

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
            row = await conn.fetchrow(_DONE, item_id, claimer, status.value, result)
            if row is not None and written is not None:
                await conn.execute(
                    _PASS_WRITTEN, row["account"], row["call_key"], row["writer"], written
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
            status = await conn.execute(_RETRY, item_id, claimer, float(delay), error, uncertain)
        return status.endswith(" 1")

    async def pending(self, account: str | None = None) -> dict[str, int]:
        """Writer -> updates still to do (for ``status`` and the metrics)."""
        async with self._store.reading("counting pending call log updates") as conn:
            rows = await conn.fetch(_PENDING, account)
        return {str(r["writer"]): int(r["n"]) for r in rows}

    async def rows(self, account: str, writer: str) -> list[dict[str, object]]:
        """Every row of ``writer``: key, kind, status, result, attempts, note, last error."""
        async with self._store.reading("reading call log updates") as conn:
            found = await conn.fetch(
                "SELECT id, call_key, kind, status, result, attempts, written, last_error "
                "FROM enrichments WHERE account = $1 AND writer = $2 ORDER BY id",
                account,
                writer,
            )
        return [dict(r) for r in found]
