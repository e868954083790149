"""The extension directory: loaded from the simulator, reloaded, kept on a failed reload."""

from __future__ import annotations

import asyncio

import pytest
from tests.ringcentral.harness import client, simulator

from sscl_daemon.calls.directory import Directory
from sscl_daemon.ringcentral.directory import keep_fresh, load_directory


async def test_directory_loads_and_a_failed_reload_keeps_the_last_one() -> None:
    async with simulator() as sim, client(sim) as made:
        directory = await load_directory(made.rest)
        records = sim.org.extension_records()
        assert len(directory) == len(records)
        user = sim.org.users[0]
        assert directory.is_user(user.id) is True
        assert directory.by_number(user.extension_number) is not None
        assert directory.is_user(sim.org.ivr.id) is False

        reloads: list[Directory] = []
        naps = 0

        async def sleep(_seconds: float) -> None:
            nonlocal naps
            naps += 1
            if naps == 2:
                # the second reload is refused (and not retried: a 403 is not transient)
                sim.fail_rest("/restapi/v1.0/account/~/extension", 403, count=1)
            if naps > 3:
                raise asyncio.CancelledError

        with pytest.raises(asyncio.CancelledError):
            await keep_fresh(made.rest, 3600.0, reloads.append, sleep=sleep)
        assert len(reloads) == 2
        assert all(len(d) == len(records) for d in reloads)
