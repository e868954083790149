"""The statements of what one account keeps between runs and beside its outbox.

The checkpoint, the recovery point (WebSocket recovery token), the tracker's snapshot, the
directory, the rotated credentials and the dead letters (:mod:`..checkpoints`,
:mod:`..credentials`, :mod:`..deadletters`).
"""

SAVE_CHECKPOINT = """
INSERT INTO checkpoints (account, last_event_time, updated_at)
VALUES ($1, $2, now())
ON CONFLICT (account) DO UPDATE SET
    last_event_time = EXCLUDED.last_event_time,
    updated_at = now()
"""

LOAD_CHECKPOINT = """
SELECT last_event_time, updated_at FROM checkpoints WHERE account = $1
"""

SAVE_RECOVERY_TOKEN = """
INSERT INTO checkpoints
    (account, recovery_token, recovery_token_expires_at, oauth_session, recovery_sequence)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account) DO UPDATE SET
    recovery_token = EXCLUDED.recovery_token,
    recovery_token_expires_at = EXCLUDED.recovery_token_expires_at,
    oauth_session = EXCLUDED.oauth_session,
    recovery_sequence = EXCLUDED.recovery_sequence
"""

LOAD_RECOVERY_TOKEN = """
SELECT recovery_token, recovery_token_expires_at, oauth_session, updated_at, recovery_sequence
FROM checkpoints WHERE account = $1 AND recovery_token IS NOT NULL
"""

CLEAR_RECOVERY_TOKEN = """
UPDATE checkpoints SET recovery_token = NULL, recovery_token_expires_at = NULL,
    oauth_session = NULL
WHERE account = $1
"""

SAVE_DIRECTORY = """
INSERT INTO directories (account, data, loaded_at) VALUES ($1, $2, now())
ON CONFLICT (account) DO UPDATE SET data = EXCLUDED.data, loaded_at = now()
"""

LOAD_DIRECTORY = "SELECT data FROM directories WHERE account = $1"

SAVE_SNAPSHOT = """
INSERT INTO session_snapshots (account, data, taken_at) VALUES ($1, $2, now())
ON CONFLICT (account) DO UPDATE SET data = EXCLUDED.data, taken_at = now()
"""

LOAD_SNAPSHOT = "SELECT data FROM session_snapshots WHERE account = $1"

LOAD_CREDENTIAL = "SELECT value FROM credentials WHERE account = $1 AND name = $2"

SAVE_CREDENTIAL = """
INSERT INTO credentials (account, name, value) VALUES ($1, $2, $3)
ON CONFLICT (account, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
"""

INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (account, kind, reason, payload)
SELECT $1, d.kind, d.reason, d.payload
FROM unnest($2::text[], $3::text[], $4::bytea[]) AS d(kind, reason, payload)
"""

DEAD_LETTERS = """
SELECT id, account, kind, reason, payload, created_at FROM dead_letters
WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR kind = $2)
ORDER BY id DESC LIMIT $3
"""
