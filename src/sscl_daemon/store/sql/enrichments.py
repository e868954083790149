"""The enrichment rows' statements (migration 0007): queue, sweep, claim, settle, retry.

Claims and settlements mirror the outbox's (:mod:`.outbox`): ``FOR UPDATE SKIP LOCKED``, a
claim that lapses comes back uncertain, a settlement guarded by the same :data:`OWNED`.
"""

from sscl_daemon.store.sql.outbox import OWNED

INSERT_ENRICHMENTS = """
INSERT INTO enrichments (account, call_key, writer, kind, crm_record_id, payload, written,
                         next_attempt_at, give_up_at)
SELECT $1, w.call_key, $2, w.kind, w.record_id, w.payload::jsonb, w.written,
       now() + make_interval(secs => $3), now() + make_interval(secs => $4)
FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
     AS w(call_key, kind, record_id, payload, written)
ON CONFLICT ON CONSTRAINT enrichments_once DO NOTHING
"""

# Created logs of the window that should have a row of ``kind`` and have none.
SWEEP_ENRICHMENTS = """
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

CLAIM_DUE_ENRICHMENTS = """
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

FINISH_ENRICHMENT = f"""
UPDATE enrichments SET status = $3, result = $4, done_at = now(),
    claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
WHERE {OWNED}
RETURNING account, call_key, writer
"""

# What the next update of the same record compares the note with.
PASS_WRITTEN = """
UPDATE enrichments SET written = $4, updated_at = now()
WHERE account = $1 AND call_key = $2 AND writer = $3 AND status IN ('pending', 'in_flight')
"""

RETRY_ENRICHMENT = f"""
UPDATE enrichments SET status = 'pending', next_attempt_at = now() + make_interval(secs => $3),
    last_error = $4, uncertain = uncertain OR $5,
    claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
WHERE {OWNED}
"""

PENDING_ENRICHMENTS = """
SELECT writer, count(*) AS n FROM enrichments
WHERE status IN ('pending', 'in_flight') AND ($1::text IS NULL OR account = $1)
GROUP BY writer
"""

# Every row of one writer, for tests and inspection.
ENRICHMENT_ROWS = """
SELECT id, call_key, kind, status, result, attempts, written, last_error
FROM enrichments WHERE account = $1 AND writer = $2 ORDER BY id
"""
