-- Which path produced each call log (issue 13): 'live' (telephony-session events),
-- 'call_log' (the RingCentral call log after a gap), 'live+call_log' (both), or
-- 'backfill'. The payload already carries it; a generated column lets status and
-- operators count and filter by it without decoding every payload.
ALTER TABLE outbox
    ADD COLUMN source text GENERATED ALWAYS AS (coalesce(payload->>'source', 'live')) STORED;
