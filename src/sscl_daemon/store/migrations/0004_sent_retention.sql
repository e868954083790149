-- Retention of settled outbox rows (store.sent_retention_days): the daemon
-- deletes sent rows older than the retention, oldest first, in small batches.
-- This partial index finds them by (account, sent_at) without touching the
-- pending / in-flight / dead rows.
CREATE INDEX outbox_sent_by_time ON outbox (account, sent_at)
    WHERE status = 'sent';
