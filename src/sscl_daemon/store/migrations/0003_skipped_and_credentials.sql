-- Calls the contact policy skips on purpose (no_contact / several_contacts =
-- "skip") are settled rows with outcome 'skipped': not sent, not dead, never retried.
ALTER TABLE outbox DROP CONSTRAINT outbox_outcome_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_outcome_check
    CHECK (outcome IN ('created', 'existed', 'skipped'));

-- Credentials an identity provider rotates (OAuth refresh tokens), kept here so
-- a restart, or a standby on another machine, resumes with the newest one
-- instead of the configured (already revoked) one. "name" says which
-- credential of the account it is, e.g. 'crm:pipedrive:refresh_token'.
CREATE TABLE credentials (
    account     text NOT NULL,
    name        text NOT NULL CHECK (name <> ''),
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, name)
);
