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
