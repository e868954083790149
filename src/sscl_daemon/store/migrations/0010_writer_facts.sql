-- What each instance's writers found out about their CRM at start, so `sscl-daemon status`
-- (another process) can show it: {"ACCOUNT": {"WRITER": {"key_mode": "unique"}}} (HubSpot's
-- key mode, issue 15), rewritten by the daemon whenever it changes; empty until a writer
-- has such a fact.
ALTER TABLE instances ADD COLUMN writer_facts jsonb NOT NULL DEFAULT '{}'::jsonb;
