"""The fleet's statements: account leases (advisory lock + fencing token) and instances.

An account's lease is its advisory lock, keyed by :data:`_LOCK_KEY`, held by the session
that also holds the ``leases`` row (:mod:`..leases`); an instance announces itself in
``instances`` and holds its own lock, keyed by :data:`_INSTANCE_KEY`, while it lives
(:mod:`..instances`). The fleet view recognises both locks by the same two keys.
"""

# How long a contender waits for a stale holder's session to end after terminating it.
TERMINATE_WAIT_MS = 2000

_LOCK_KEY = "hashtextextended('sscl-lease:' || $1, 0)"

TRY_LEASE_LOCK = f"SELECT pg_try_advisory_lock({_LOCK_KEY})"

UNLOCK_LEASE = f"SELECT pg_advisory_unlock({_LOCK_KEY})"

# pg_locks shows a bigint advisory key as its high and low 32 bits.
_LOCK_HELD = """
    l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND l.classid::bigint = (k.key >> 32) & 4294967295
    AND l.objid::bigint = k.key & 4294967295
"""

# A stale holder: the row expired while the session holding the lock did nothing since
# before the expiry (frozen, or cut off). A session that took the lock after the row
# expired (a contender between its lock and its TAKE) has been busy since, so it is spared.
TERMINATE_STALE = f"""
SELECT pg_terminate_backend(l.pid, {TERMINATE_WAIT_MS})
FROM leases AS s
CROSS JOIN LATERAL (SELECT {_LOCK_KEY.replace("$1", "s.account")} AS key) AS k
JOIN pg_locks AS l ON {_LOCK_HELD}
JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE s.account = $1 AND s.expires_at < now() AND l.pid <> pg_backend_pid()
  AND a.state_change < s.expires_at
"""

TAKE_LEASE = """
INSERT INTO leases AS s (account, holder, expires_at, fencing_token, updated_at)
VALUES ($1, $2, now() + make_interval(secs => $3), 1, now())
ON CONFLICT (account) DO UPDATE SET
    holder = EXCLUDED.holder,
    expires_at = EXCLUDED.expires_at,
    fencing_token = s.fencing_token + 1,
    updated_at = now()
RETURNING fencing_token, updated_at AS acquired_at, expires_at
"""

RENEW_LEASE = """
UPDATE leases SET expires_at = now() + make_interval(secs => $3)
WHERE account = $1 AND fencing_token = $2
RETURNING expires_at
"""

# Expire the row and free the lock in one statement: the expiry (the statement's start)
# comes before the lock is free, and whoever takes the lock next is busy after it, so
# nobody ever sees this holder as stale. A newer token (the lock was lost) is left alone.
GIVE_UP_LEASE = f"""
WITH gave AS (
    UPDATE leases SET expires_at = least(expires_at, now())
    WHERE account = $1 AND fencing_token = $2
    RETURNING account
)
SELECT pg_advisory_unlock({_LOCK_KEY}) FROM (SELECT count(*) FROM gave) AS g
"""

LEASE_HOLDERS = f"""
SELECT s.account, s.holder, s.updated_at AS acquired_at, s.expires_at, s.fencing_token,
       s.expires_at > now() AS current,
       EXISTS (SELECT 1 FROM pg_locks AS l WHERE {_LOCK_HELD}) AS connected
FROM leases AS s
CROSS JOIN LATERAL (SELECT {_LOCK_KEY.replace("$1", "s.account")} AS key) AS k
WHERE ($1::text IS NULL OR s.account = $1)
ORDER BY s.account
"""

CURRENT_FENCING_TOKEN = "SELECT fencing_token FROM leases WHERE account = $1 FOR SHARE"

_INSTANCE_KEY = "hashtextextended('sscl-instance:' || $1, 0)"

LOCK_INSTANCE = f"SELECT pg_try_advisory_lock({_INSTANCE_KEY})"

UNLOCK_INSTANCE = f"SELECT pg_advisory_unlock({_INSTANCE_KEY})"

# Registers (``$5`` true: a new incarnation, started now) or renews the heartbeat, and
# prunes long-dead rows in the same round trip.
HEARTBEAT = """
WITH pruned AS (
    DELETE FROM instances
    WHERE heartbeat_at < now() - make_interval(secs => $6) AND instance_id <> $1
)
INSERT INTO instances AS i (instance_id, host, pid, accounts, started_at, heartbeat_at)
VALUES ($1, $2, $3, $4, now(), now())
ON CONFLICT (instance_id) DO UPDATE SET
    host = EXCLUDED.host,
    pid = EXCLUDED.pid,
    accounts = EXCLUDED.accounts,
    started_at = CASE WHEN $5 THEN now() ELSE i.started_at END,
    heartbeat_at = now()
"""

LEAVE_FLEET = "DELETE FROM instances WHERE instance_id = $1"

# The daemon says these every lease poll while they are not empty (a row the heartbeat made
# again starts empty); a value equal to the stored one matches no row, so an unchanged poll
# writes nothing (no new row version, no WAL) -- jsonb equality ignores key order.
RECORD_COMMIT_FAILURES = """
UPDATE instances SET commit_failures = $2::jsonb
WHERE instance_id = $1 AND commit_failures IS DISTINCT FROM $2::jsonb
"""

RECORD_WRITER_FACTS = """
UPDATE instances SET writer_facts = $2::jsonb
WHERE instance_id = $1 AND writer_facts IS DISTINCT FROM $2::jsonb
"""

# pg_locks shows a bigint advisory key as two oids (high and low 32 bits); shifting the
# high half back wraps exactly like the signed key, so the keys compare as bigints.
FLEET = f"""
WITH locks AS MATERIALIZED (
    SELECT (l.classid::bigint << 32) | l.objid::bigint AS key
    FROM pg_locks AS l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
),
held AS (
    SELECT s.holder, array_agg(s.account ORDER BY s.account) AS accounts
    FROM leases AS s
    WHERE s.expires_at > now()
      AND {_LOCK_KEY.replace("$1", "s.account")} IN (SELECT key FROM locks)
    GROUP BY s.holder
)
SELECT i.instance_id, i.host, i.pid, i.accounts, i.started_at, i.heartbeat_at,
       -- Read through to_jsonb so that status still reads a database before migration 0008.
       coalesce(to_jsonb(i) -> 'commit_failures', '{{}}'::jsonb)::text AS commit_failures,
       coalesce(to_jsonb(i) -> 'writer_facts', '{{}}'::jsonb)::text AS writer_facts,
       extract(epoch FROM now() - i.heartbeat_at)::float8 AS heartbeat_age,
       (i.heartbeat_at > now() - make_interval(secs => $1)
        AND {_INSTANCE_KEY.replace("$1", "i.instance_id")} IN (SELECT key FROM locks))
           AS live,
       coalesce(h.accounts, '{{}}') AS held
FROM instances AS i
LEFT JOIN held AS h ON h.holder = i.instance_id
ORDER BY i.started_at, i.instance_id
"""
