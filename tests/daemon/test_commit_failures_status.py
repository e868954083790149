"""Failing commits shown by another process: ``status`` reads them from the instance's row.

A real daemon (in this process) with the simulator, the webhook stand-in and PostgreSQL;
a trigger makes the store refuse the daemon's commits (as a full disk does, SQLSTATE
53100) while its other writes (heartbeat, leases) go through. ``sscl-daemon status``
then says since when the account's commits fail and why; once the store takes them
again the line goes and the calls reach the CRM.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import asyncpg
from tests.daemon.helpers import wait_until
from tests.daemon.test_store_outage import running_daemon

from sscl_daemon.commands.status import as_json, collect, render
from sscl_daemon.config import load_config

REFUSE = """
CREATE FUNCTION refuse_commits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100';
END $$;
CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_commits();
CREATE TRIGGER refuse_checkpoints BEFORE INSERT OR UPDATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_commits();
"""
ACCEPT = """
DROP TRIGGER refuse_outbox ON outbox;
DROP TRIGGER refuse_checkpoints ON checkpoints;
"""


async def test_status_says_since_when_an_accounts_commits_fail(pg_dsn: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="sscl-commits-"))
    try:
        await _check(pg_dsn, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _check(pg_dsn: str, workdir: Path) -> None:
    async with running_daemon(pg_dsn, workdir) as run:
        await run.delivered(run.place(1, salt=0))
        store = run.daemon.store
        assert store is not None
        settings = load_config(workdir / "config.toml")
        ttl = settings.daemon.lease_ttl

        async def failing() -> bool:
            (me,) = await store.instances(ttl)
            return "default" in me.commit_failures

        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(REFUSE)
            keys = run.place(2, salt=10)
            await wait_until(failing, 30, "the commit failure recorded")
            report = await collect(settings)
            text = render(report)
            line = next(line for line in text.splitlines() if "commits failing" in line)
            assert line.lstrip().startswith("default: commits failing since ")
            assert " ago (" in line  # "12 s ago (07:31:02 UTC)"
            assert "No space left on device" in line
            (instance,) = json.loads(json.dumps(as_json(report)))["instances"]
            assert "No space left on device" in instance["commit_failures"]["default"]["error"]

            await conn.execute(ACCEPT)
            await run.delivered(keys)

            async def recovered() -> bool:
                return not await failing()

            await wait_until(recovered, 30, "the commit failure cleared")
            assert "commits failing" not in render(await collect(settings))
        finally:
            await conn.close()
