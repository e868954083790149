"""The store watch's decisions, with a store stand-in and a hand-moved clock (no waiting).

The live cases are in ``test_wedge_scenarios.py`` (postmaster SIGKILL, a restarted or
vanished server, a full disk) and ``test_store_outage.py`` (cut connections); these pin
the rules: a failure is noticed once, a recovery resets the outage, and the daemon is
given up exactly once, when the outage has lasted the limit.
"""

from __future__ import annotations

from typing import cast

from sscl_daemon.daemon.storewatch import StoreWatch
from sscl_daemon.store import Store, StoreError


class FlakyStore:
    """Answers ``schema_version`` or fails, as the test says; no embedded server."""

    embedded_server = None

    def __init__(self) -> None:
        self.up = True

    async def schema_version(self) -> int:
        if not self.up:
            raise StoreError("store: reading the schema version failed: connection refused")
        return 6


async def test_an_outage_shorter_than_the_limit_heals_and_a_longer_one_gives_up_once() -> None:
    now = [100.0]
    given_up: list[str] = []
    store = FlakyStore()
    watch = StoreWatch(cast(Store, store), given_up.append, limit=120.0, clock=lambda: now[0])
    assert await watch.check()
    assert watch.healthy

    store.up = False
    assert not await watch.check()
    assert not watch.healthy
    now[0] += 119.0
    assert not await watch.check()
    assert given_up == []
    store.up = True
    assert await watch.check()
    assert watch.healthy

    # A new outage counts from its own start, not the earlier one's.
    store.up = False
    now[0] += 1.0
    assert not await watch.check()
    now[0] += 119.9
    assert not await watch.check()
    assert given_up == []
    now[0] += 0.1
    assert not await watch.check()
    assert watch.gave_up
    assert len(given_up) == 1
    assert "unusable for 120 s (limit 120 s)" in given_up[0]
    assert "connection refused" in given_up[0]
    now[0] += 30.0
    await watch.check()
    assert len(given_up) == 1
