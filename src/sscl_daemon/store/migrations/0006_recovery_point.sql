-- The WebSocket recovery point is the token plus the sequence of the last frame the
-- stored state saw: a restart that recovers the session compares it with the replay to
-- notice notifications the gateway no longer had (an incomplete replay is a gap).
ALTER TABLE checkpoints ADD COLUMN recovery_sequence bigint;

-- The last extension directory loaded, so that a restart subscribes at once with it
-- instead of waiting for a (possibly throttled) extension-list read.
CREATE TABLE directories (
    account    text PRIMARY KEY,
    data       bytea NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now()
);
