-- Enrichments (issue 15): the updates of a logged call's CRM record as RingCentral makes
-- the call's recording, voicemail and its transcription available. One row per (account,
-- call, writer, kind), claimed and settled like an outbox row, so each update is done
-- once, across crashes and by one instance at a time.
CREATE TABLE enrichments (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account           text NOT NULL,
    call_key          text NOT NULL,
    writer            text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('recording', 'voicemail')),
    -- The CRM record the create made (the outbox row's crm_record_id).
    crm_record_id     text NOT NULL,
    -- The CompletedCall, as in the outbox.
    payload           jsonb NOT NULL,
    -- What the daemon last wrote into the record's note; NULL when not known (then the
    -- note is never rewritten, what is new goes beside it).
    written           text,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'in_flight', 'sent', 'dead', 'expired')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    -- Media that is not there by then is not coming: the row expires.
    give_up_at        timestamptz NOT NULL,
    claimed_by        text,
    claim_expires_at  timestamptz,
    uncertain         boolean NOT NULL DEFAULT false,
    result            text,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    done_at           timestamptz,
    CONSTRAINT enrichments_once UNIQUE (account, call_key, writer, kind),
    CONSTRAINT enrichments_claim_consistent
        CHECK ((status = 'in_flight') = (claimed_by IS NOT NULL AND claim_expires_at IS NOT NULL))
);

CREATE INDEX enrichments_due ON enrichments (writer, next_attempt_at, id)
    WHERE status IN ('pending', 'in_flight');
