-- The daemon instances sharing this store's accounts (fair sharing of the leases).
-- A running daemon registers its row at start, renews heartbeat_at every lease poll
-- and deletes the row when it stops. A row is live while its heartbeat is younger than
-- the lease TTL and its instance lock (an advisory lock on the lease connection) is
-- held; dead rows are ignored and pruned after an hour. ``accounts`` are the accounts
-- the instance is configured for (shares are computed over them).
CREATE TABLE instances (
    instance_id  text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    accounts     text[] NOT NULL DEFAULT '{}',
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
