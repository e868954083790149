"""The state directory and every file the daemon makes in it are the service's alone.

Issue 18 item 13 / issue 19: the state directory (the embedded database's parent, the
jsonl file with call data) was created 0755 and the embedded server's log 0644. After a
real run (embedded store, a call logged into the jsonl writer's file in the state
directory), nothing in it may be readable, writable or searchable by others, except
what the embedded server's own user needs when the daemon runs as root: search (x) on
the way to its directories, and the read-only copy of the server's binaries.
"""

from __future__ import annotations

import asyncio
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from tests.daemon.harness import daemon_config, fast_simulator, webhook_crm, write_config
from tests.daemon.helpers import wait_until

from sscl_daemon.config import load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.simulator.scenarios import CallKind

AS_ROOT = os.geteuid() == 0


def loose(path: Path, root: Path) -> str | None:
    """Why ``path`` is not private enough, or None."""
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        return None
    relative = path.relative_to(root)
    if relative.parts[:2] == ("postgres", "pginstall"):
        # Root's read-only copy of the server binaries for the server's user (root only).
        return None if AS_ROOT and not mode & 0o022 else f"{relative}: {oct(mode)}"
    allowed = 0
    if AS_ROOT and stat.S_ISDIR(info.st_mode) and relative.parts in ((), ("postgres",)):
        allowed = 0o011 if relative.parts else 0o001  # search, on the way to data/ and socket/
    return None if not mode & 0o077 & ~allowed else f"{relative}: {oct(mode)}"


async def test_every_file_in_the_state_directory_is_private(embedded_state_dir: Path) -> None:
    state = embedded_state_dir / "state"
    async with fast_simulator(seed=23) as sim, webhook_crm() as (crm, crm_url):
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=state,
            dsn="embedded",
            extra={"ringcentral": {"record_notifications": "notifications.jsonl"}},
        )
        path = write_config(embedded_state_dir / "config.toml", config)
        daemon = Daemon(load_config(path), handle_signals=False)
        task = asyncio.create_task(daemon.run())
        try:
            await asyncio.wait_for(daemon.ready.wait(), 30)
            call = sim.inject(sim.factory.make(datetime.now(UTC), CallKind.INBOUND_ANSWERED))
            keys = {log.key for log in call.expected}
            await wait_until(lambda: keys <= set(crm.deliveries), 30, "the call in the CRM")
            await wait_until(lambda: (state / "calls.jsonl").exists(), 10, "the jsonl file")
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 60) == 0
    found = [state, *state.rglob("*")]
    assert state / "calls.jsonl" in found
    assert state / "postgres" / "server.log" in found
    problems = [problem for item in found if (problem := loose(item, state)) is not None]
    assert problems == []
