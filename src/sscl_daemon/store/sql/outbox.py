"""The outbox's statements: insert with the checkpoint, claim, settle, retry, prune, read.

Every statement that changes a row's state does one transition (claim, settle, retry),
guarded in SQL (:data:`OWNED`: only the claimer holding the row in flight settles it),
which keeps them safe under concurrent dispatchers without locking in Python.
"""

INSERT_OUTBOX = """
WITH ins AS (
    INSERT INTO outbox (account, call_key, writer, payload, call_ended_at)
    SELECT $1, c.key, w.writer, c.payload::jsonb, c.ended
    FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS c(key, payload, ended)
    CROSS JOIN unnest($5::text[]) AS w(writer)
    ON CONFLICT ON CONSTRAINT outbox_one_log_per_call_and_writer DO NOTHING
    RETURNING writer
)
SELECT writer, count(*) AS n FROM ins GROUP BY writer
"""

# Due: pending rows whose time has come, and in-flight rows whose claim lapsed
# (for those next_attempt_at is the claim expiry). A lapsed claim may have
# reached the CRM, hence "uncertain".
CLAIM_DUE = """
WITH due AS (
    SELECT id FROM outbox
    WHERE writer = $1
      AND status IN ('pending', 'in_flight')
      AND next_attempt_at <= now()
      AND ($5::text IS NULL OR account = $5)
    ORDER BY next_attempt_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox AS o SET
    status = 'in_flight',
    uncertain = o.uncertain OR o.status = 'in_flight',
    last_error = CASE WHEN o.status = 'in_flight'
                      THEN 'claim by ' || o.claimed_by || ' expired'
                      ELSE o.last_error END,
    attempts = o.attempts + 1,
    claimed_by = $3,
    claim_expires_at = now() + make_interval(secs => $4),
    next_attempt_at = now() + make_interval(secs => $4),
    updated_at = now()
FROM due
WHERE o.id = due.id
RETURNING o.id, o.account, o.writer, o.payload::text AS payload, o.attempts, o.uncertain,
          o.claimed_by, o.claim_expires_at, o.last_error
"""

OWNED = "id = $1 AND status = 'in_flight' AND claimed_by = $2"

MARK_SENT = f"""
UPDATE outbox SET status = 'sent', crm_record_id = $3, outcome = $4, sent_at = now(),
    claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
WHERE {OWNED}
"""

# Many rows in one statement, with the same guard as MARK_SENT per row; returns the ids settled.
MARK_SENT_MANY = """
UPDATE outbox AS o SET status = 'sent', crm_record_id = s.record_id, outcome = s.outcome,
    sent_at = now(), claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
FROM unnest($1::bigint[], $3::text[], $4::text[]) AS s(id, record_id, outcome)
WHERE o.id = s.id AND o.status = 'in_flight' AND o.claimed_by = $2
RETURNING o.id
"""

SCHEDULE_RETRY = f"""
UPDATE outbox SET status = 'pending', next_attempt_at = now() + make_interval(secs => $3),
    last_error = $4, uncertain = uncertain OR $5,
    claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
WHERE {OWNED}
"""

MARK_DEAD = f"""
UPDATE outbox SET status = 'dead', last_error = $3,
    claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
WHERE {OWNED}
"""

RETRY_DEAD = """
UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
WHERE status = 'dead'
  AND ($1::text IS NULL OR writer = $1)
  AND ($2::timestamptz IS NULL OR updated_at >= $2)
  AND ($3::text IS NULL OR account = $3)
  AND ($4::bigint IS NULL OR id = $4)
RETURNING writer
"""

EXPIRE_CLAIMS = """
UPDATE outbox SET claim_expires_at = now(), next_attempt_at = now(), updated_at = now()
WHERE status = 'in_flight'
  AND starts_with(claimed_by, $1)
  AND ($2::text IS NULL OR claimed_by <> $2)
  AND ($3::text IS NULL OR account = $3)
RETURNING writer
"""

# Retention: sent rows of account $1 settled before this moment may go: $2 days ago, but
# never within a day of the account's checkpoint (after an outage longer than the
# retention, the start-up reconciliation reads the call log from the checkpoint on and
# needs those keys; LEAST ignores the NULL of an account without checkpoint). Computed
# once per run, so that the DELETE compares with a constant and walks the index.
PRUNE_CUTOFF = """
SELECT LEAST(now() - make_interval(days => $2),
             (SELECT last_event_time FROM checkpoints WHERE account = $1) - interval '1 day')
"""

# Up to $3 of them, oldest first (index outbox_sent_by_time), each found by its id.
PRUNE_SENT = """
DELETE FROM outbox WHERE id = ANY(ARRAY(
    SELECT id FROM outbox
    WHERE account = $1 AND status = 'sent' AND sent_at < $2
    ORDER BY sent_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED))
"""

# $1 the LISTEN/NOTIFY channel, $2 the writers with new due rows.
NOTIFY_WRITERS = "SELECT pg_notify($1, w) FROM unnest($2::text[]) AS w"

SECONDS_UNTIL_DUE = """
SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 FROM outbox
WHERE writer = $1 AND status IN ('pending', 'in_flight') AND ($2::text IS NULL OR account = $2)
"""

LOGGED_KEYS = """
SELECT call_key FROM outbox
WHERE account = $1 AND call_key = ANY($2::text[]) AND writer = ANY($3::text[])
GROUP BY call_key HAVING count(DISTINCT writer) = $4
"""

OUTBOX_COLUMNS = """id, account, call_key, writer, status, attempts, uncertain, next_attempt_at,
claimed_by, crm_record_id, outcome, last_error, created_at, sent_at"""

OUTBOX_ROWS = f"""
SELECT {OUTBOX_COLUMNS} FROM outbox
WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR writer = $2)
    AND ($3::text IS NULL OR status = $3)
ORDER BY id LIMIT $4
"""
