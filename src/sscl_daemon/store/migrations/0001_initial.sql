-- The first schema of sscl-daemon's store. Every table has an "account" column
-- (the RingCentral account id or a configured label) so that several accounts
-- can share one database.

-- Where the event stream of an account stands, and how to resume the WebSocket
-- session without a gap (the gateway's recovery token is valid for a short time
-- and only within the OAuth session that obtained it).
CREATE TABLE checkpoints (
    account                    text PRIMARY KEY,
    last_event_time            timestamptz,
    last_event_uuid            text,
    last_sequence              bigint,
    recovery_token             text,
    recovery_token_expires_at  timestamptz,
    oauth_session              text,
    updated_at                 timestamptz NOT NULL DEFAULT now()
);

-- The tracker's in-flight sessions, so a restart resumes calls already under way.
CREATE TABLE session_snapshots (
    account   text PRIMARY KEY,
    data      bytea NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
);

-- The outbox and ledger: one row per call log per writer. The unique key is
-- what makes "no call logged twice" hold across restarts and re-deliveries.
-- While a row is in flight its next_attempt_at equals its claim expiry, so one
-- index finds both due rows and rows whose claimer died.
CREATE TABLE outbox (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account           text NOT NULL,
    call_key          text NOT NULL,
    writer            text NOT NULL,
    payload           jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'in_flight', 'sent', 'dead')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    claimed_by        text,
    claim_expires_at  timestamptz,
    -- An attempt may have reached the CRM without us learning the answer:
    -- the next attempt must look for an existing record before creating one.
    uncertain         boolean NOT NULL DEFAULT false,
    crm_record_id     text,
    outcome           text CHECK (outcome IN ('created', 'existed')),
    last_error        text,
    call_ended_at     timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    sent_at           timestamptz,
    CONSTRAINT outbox_one_log_per_call_and_writer UNIQUE (account, call_key, writer),
    CONSTRAINT outbox_claim_consistent
        CHECK ((status = 'in_flight') = (claimed_by IS NOT NULL AND claim_expires_at IS NOT NULL))
);

CREATE INDEX outbox_due ON outbox (writer, next_attempt_at, id)
    WHERE status IN ('pending', 'in_flight');
CREATE INDEX outbox_by_status ON outbox (writer, status);

-- What could not be processed but carries data worth keeping: undecodable
-- events, call-log records that made no sense, calls a CRM rejected for good.
CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account     text NOT NULL,
    kind        text NOT NULL CHECK (kind <> ''),
    reason      text NOT NULL,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_letters_by_time ON dead_letters (account, created_at);

-- Who may process an account (for an active/standby pair). The fencing token
-- grows with every change of holder so a stale holder's writes can be refused.
CREATE TABLE leases (
    account        text PRIMARY KEY,
    holder         text NOT NULL,
    expires_at     timestamptz NOT NULL,
    fencing_token  bigint NOT NULL DEFAULT 1,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
