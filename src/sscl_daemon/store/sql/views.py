"""The read-only statements behind ``status``, the metrics and the admin console.

``status`` and the metrics count the outbox, the checkpoints and the dead letters
(``Store.status``); the console (:mod:`..views`) reads the newest :data:`SEARCH_WINDOW`
outbox rows for a search, and the rows still moving or parked plus a recent period of sent
ones for its figures, each through an index, so a month of retained sent rows is never
scanned.
"""

WRITER_STATS = """
SELECT writer,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'in_flight') AS in_flight,
       count(*) FILTER (WHERE status = 'sent' AND outcome IS DISTINCT FROM 'skipped') AS sent,
       count(*) FILTER (WHERE status = 'sent' AND outcome = 'skipped') AS skipped,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) AS due,
       extract(epoch FROM now() - min(created_at)
               FILTER (WHERE status IN ('pending', 'in_flight')))::float8 AS oldest_pending_age
FROM outbox
WHERE ($1::text IS NULL OR account = $1)
GROUP BY writer
ORDER BY writer
"""

# The newest error of each writer among its unsettled rows (retries to come, dead ones).
LAST_ERRORS = """
SELECT DISTINCT ON (writer) writer, last_error, updated_at
FROM outbox
WHERE status IN ('pending', 'in_flight', 'dead') AND last_error IS NOT NULL
  AND ($1::text IS NULL OR account = $1)
ORDER BY writer, updated_at DESC
"""

ACCOUNT_STATS = """
SELECT account, c.last_event_time,
       extract(epoch FROM now() - c.updated_at)::float8 AS checkpoint_age,
       c.recovery_token_expires_at, s.taken_at AS snapshot_taken_at
FROM checkpoints AS c
FULL JOIN session_snapshots AS s USING (account)
WHERE ($1::text IS NULL OR account = $1)
ORDER BY account
"""

DEAD_LETTER_COUNTS = """
SELECT kind, count(*) AS n FROM dead_letters
WHERE ($1::text IS NULL OR account = $1) GROUP BY kind ORDER BY kind
"""

# Outbox rows (newest first) a search of the Calls page looks through.
SEARCH_WINDOW = 200_000

_CALL_COLUMNS = """id, account, call_key, writer, status, outcome, crm_record_id, last_error,
attempts, sent_at, updated_at, payload"""

# $1 search text (exact session id / extension), $2 its digits (part of a number),
# $3 result, $4 writer, $5 extension number, $6 rows to read.
RECENT_CALLS = f"""
SELECT {_CALL_COLUMNS} FROM outbox
WHERE id > (SELECT coalesce(max(id), 0) FROM outbox) - {SEARCH_WINDOW}
  AND ($1::text IS NULL
       OR payload->>'telephony_session_id' = $1
       OR payload->>'extension_number' = $1
       OR payload->>'internal_number' = $1
       OR ($2 <> '' AND regexp_replace(coalesce(payload->>'external_number', ''), '\\D', '', 'g')
                        LIKE '%' || $2 || '%'))
  AND ($3::text IS NULL OR payload->>'result' = $3)
  AND ($4::text IS NULL OR writer = $4)
  AND ($5::text IS NULL OR payload->>'extension_number' = $5)
ORDER BY id DESC
LIMIT $6
"""

DEAD_CALLS = f"""
SELECT {_CALL_COLUMNS} FROM outbox
WHERE status = 'dead' AND ($1::text IS NULL OR writer = $1)
ORDER BY updated_at DESC, id DESC
LIMIT $2
"""

# The rows still moving or parked, and the sent rows of a recent period ($1) of the
# accounts $2: the first found through outbox_by_status, the others through
# outbox_sent_by_time, so a month of retained sent rows is never scanned.
_LIVE_OR_SENT_SINCE = """(status IN ('pending', 'in_flight', 'dead')
       OR (status = 'sent' AND account = ANY($2::text[]) AND sent_at >= $1))"""

# $1 the start of "today" (UTC midnight). A skipped row is settled like a sent one.
WRITER_FIGURES = f"""
SELECT writer,
       count(*) FILTER (WHERE status IN ('pending', 'in_flight')) AS depth,
       extract(epoch FROM now() - min(created_at)
               FILTER (WHERE status IN ('pending', 'in_flight')))::float8 AS oldest_pending_age,
       count(*) FILTER (WHERE status = 'sent' AND outcome IS DISTINCT FROM 'skipped')
           AS sent_today,
       count(*) FILTER (WHERE status = 'sent' AND outcome = 'skipped') AS skipped_today,
       count(*) FILTER (WHERE status = 'dead' AND updated_at >= $1) AS dead_today,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       (array_agg(last_error ORDER BY updated_at DESC)
            FILTER (WHERE last_error IS NOT NULL AND status <> 'sent'))[1] AS last_error
FROM outbox
WHERE {_LIVE_OR_SENT_SINCE}
GROUP BY writer
ORDER BY writer
"""

CHECKPOINT_TIMES = "SELECT account, last_event_time FROM checkpoints ORDER BY account"

# Calls (not call logs: one call may go to several writers) per hour and result.
HOURLY_CALLS = f"""
SELECT date_trunc('hour', call_ended_at) AS hour, payload->>'result' AS result,
       count(DISTINCT (account, call_key)) AS calls
FROM outbox
WHERE {_LIVE_OR_SENT_SINCE} AND call_ended_at >= $1
GROUP BY 1, 2
ORDER BY 1, 2
"""

# $3 the bucket bounds in seconds: bucket i counts latencies in [bounds[i-1], bounds[i]).
LATENCY_BUCKETS = """
SELECT width_bucket(extract(epoch FROM sent_at - call_ended_at)::float8, $3::float8[]) AS bucket,
       count(*) AS n
FROM outbox
WHERE status = 'sent' AND account = ANY($2::text[]) AND sent_at >= $1
  AND outcome IS DISTINCT FROM 'skipped'
GROUP BY 1
ORDER BY 1
"""
