-- Each instance's failing commits, per account it holds, so `sscl-daemon status`
-- (another process) can say "commits failing since ...": the daemon writes
-- {"ACCOUNT": {"since": ISO time, "error": "..."}} whenever that set changes;
-- empty while every commit succeeds.
ALTER TABLE instances ADD COLUMN commit_failures jsonb NOT NULL DEFAULT '{}'::jsonb;
