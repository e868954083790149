-- Daemon instances sharing the accounts of one store (fair sharing of the leases).
-- Each running daemon upserts its row every lease-renewal interval; a row whose
-- heartbeat is older than the lease TTL belongs to a dead instance and is ignored.
CREATE TABLE instances (
    instance_id  text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
