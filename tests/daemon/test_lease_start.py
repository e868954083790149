"""The lease stays current through a slow account start (issue 19).

Right after a restart the dispatcher logged "account lease not current; not writing" for
rows of the instance that did hold the lease: the lease was renewed only once the runner
had started, and a start longer than a TTL let it lapse while the dispatchers already ran.
"""

from __future__ import annotations

import asyncio

from tests.daemon.helpers import wait_until

from sscl_daemon.daemon.lease import LeaseLoop
from sscl_daemon.store import Store

TTL = 1.0


class SlowStart:
    """A runner whose start lasts several TTLs and asks, at its end, whether it may write."""

    def __init__(self) -> None:
        self.lost = asyncio.Event()
        self.may_write: list[bool] = []
        self.check = lambda: False

    async def start(self) -> None:
        await asyncio.sleep(TTL * 2.5)
        self.may_write.append(self.check())

    async def shutdown(self) -> None:
        return None

    async def abort(self) -> None:
        return None


async def test_a_start_longer_than_the_ttl_keeps_the_lease_current(store: Store) -> None:
    runner = SlowStart()

    def make(_lease: object, may_write: object) -> SlowStart:
        runner.check = may_write  # type: ignore[assignment]
        return runner

    loop = LeaseLoop(store, "acme", "a:1", make, on_change=lambda: None, ttl=TTL, poll=0.05)
    task = asyncio.create_task(loop.run())
    try:
        await wait_until(lambda: loop.serving, 10, "the account started")
        assert runner.may_write == [True]
        assert not runner.lost.is_set()
        [held] = await store.lease_holders("acme")
        assert held.holder == "a:1"
    finally:
        loop.stop()
        await asyncio.wait_for(task, 10)
