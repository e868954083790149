"""Fair sharing decisions (pure), the balancer's pacing, and a lease loop's handover.

The fleet is given as rows the way the store reports them; the balancer runs
against a stand-in store whose heartbeat answers with a scripted fleet, and a
hand-driven clock. The handover runs a real lease loop on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from tests.daemon.helpers import wait_until

from sscl_daemon.commands.status import render_instances
from sscl_daemon.config import ConfigError, StoreSettings, parse_config
from sscl_daemon.daemon.balance import (
    PERSISTENCE,
    Balancer,
    admits,
    fair_share,
    release_order,
    shares,
    surplus,
)
from sscl_daemon.daemon.lease import LeaseLoop
from sscl_daemon.store import Announcement, InstanceInfo, Store, StoreError

ORGS = tuple(f"org{n}" for n in range(1, 7))
NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
ME = Announcement("a:1", "a", 1, ORGS)


def row(
    name: str,
    held: Sequence[str] = (),
    *,
    live: bool = True,
    accounts: Sequence[str] = ORGS,
) -> InstanceInfo:
    return InstanceInfo(name, name, 1, tuple(accounts), tuple(held), NOW, NOW, 0.5, live)


@pytest.mark.parametrize(
    ("accounts", "live", "share"),
    [(6, 3, 2), (4, 2, 2), (5, 2, 3), (1, 2, 1), (6, 4, 2), (3, 0, 3)],
)
def test_fair_share_is_the_rounded_up_quotient(accounts: int, live: int, share: int) -> None:
    assert fair_share(accounts, live) == share


def test_shares_count_live_instances_and_always_this_one() -> None:
    fleet = [row("b:2", ORGS[:4]), row("c:3", ORGS[4:], live=False)]
    view = shares(fleet, ME)  # this instance has no row yet
    assert view.counts == {"a:1": 0, "b:2": 4}
    assert view.share == 3
    assert view.takers("org1") == []  # b is above its share
    assert shares([*fleet, row("a:1", ORGS[4:])], ME).mine == 2


def test_an_instance_below_its_share_takes_free_accounts() -> None:
    fleet = [row("a:1", ORGS[:1]), row("b:2", ORGS[1:3]), row("c:3")]
    assert admits(fleet, ME, "org6")


def test_an_instance_at_its_share_leaves_a_free_account_to_one_below() -> None:
    fleet = [row("a:1", ORGS[:2]), row("b:2", ORGS[2:4]), row("c:3", ORGS[4:5])]
    assert not admits(fleet, ME, "org6")
    # ... unless that instance cannot take it (not configured for it) ...
    fleet[2] = row("c:3", ORGS[4:5], accounts=ORGS[4:5])
    assert admits(fleet, ME, "org6")
    # ... or is dead: then nobody else needs it, and an orphan is never left waiting.
    fleet[2] = row("c:3", live=False)
    assert admits(fleet, ME, "org6")


def test_accounts_configured_on_any_live_instance_make_the_share() -> None:
    fleet = [row("a:1", ORGS[:3]), row("b:2", ORGS[3:4], accounts=(*ORGS, "org7", "org8"))]
    assert shares(fleet, ME).share == 4


def test_surplus_names_one_account_by_stable_hash_when_someone_is_below() -> None:
    fleet = [row("a:1", ORGS[:4]), row("b:2")]
    first = surplus(fleet, ME, ORGS[:4])
    assert first == min(ORGS[:4], key=release_order)
    assert surplus(fleet, ME, tuple(reversed(ORGS[:4]))) == first  # order does not matter
    rest = tuple(a for a in ORGS[:4] if a != first)
    assert surplus(fleet, ME, rest) == min(rest, key=release_order)  # only served ones


def test_no_surplus_at_the_share_or_without_a_taker() -> None:
    assert surplus([row("a:1", ORGS[:3]), row("b:2", ORGS[3:5])], ME, ORGS[:3]) is None
    # 4 accounts over 3 instances: 2/2/0 is fair (share 2), nothing moves.
    four = ORGS[:4]
    me = Announcement("a:1", "a", 1, four)
    fleet = [
        row(n, h, accounts=four) for n, h in [("a:1", four[:2]), ("b:2", four[2:]), ("c:3", ())]
    ]
    assert surplus(fleet, me, four[:2]) is None
    # Above the share, but the one below is not configured for any of our accounts.
    fleet = [row("a:1", ORGS[:5]), row("b:2", ORGS[5:], accounts=ORGS[5:])]
    assert surplus(fleet, ME, ORGS[:5]) is None


@dataclass
class FakeLoop:
    serving: bool = True
    handing_over: bool = False
    handed: int = 0

    def hand_over(self) -> None:
        self.handed += 1
        self.handing_over = True


@dataclass
class FakeStore:
    fleets: list[list[InstanceInfo] | StoreError]
    left: int = 0
    beats: list[Announcement] = field(default_factory=list)

    async def instance_heartbeat(self, instance: Announcement, ttl: float) -> list[InstanceInfo]:
        self.beats.append(instance)
        answer = self.fleets.pop(0) if len(self.fleets) > 1 else self.fleets[0]
        if isinstance(answer, StoreError):
            raise answer
        return answer

    async def leave_fleet(self) -> None:
        self.left += 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def balancer(
    store: FakeStore, loops: dict[str, FakeLoop], clock: Clock, enabled: bool = True
) -> Balancer:
    return Balancer(cast(Store, store), ME, loops, ttl=3.0, poll=2.0, enabled=enabled, clock=clock)


async def test_a_surplus_moves_one_account_after_it_persisted_then_waits_a_ttl() -> None:
    loops = {name: FakeLoop() for name in ORGS[:4]}
    store = FakeStore([[row("a:1", ORGS[:4]), row("b:2")]])
    clock = Clock()
    b = balancer(store, loops, clock)
    assert b.interval == 1.0  # a third of the TTL: heartbeats well within a TTL
    for _ in range(PERSISTENCE - 1):
        assert await b.check() is None
    moved = await b.check()
    assert moved == min(ORGS[:4], key=release_order)
    assert [loop.handed for loop in loops.values()].count(1) == 1
    # While that handover runs, and for a TTL after it, nothing else moves.
    for _ in range(PERSISTENCE + 1):
        assert await b.check() is None
    loops[moved].handing_over = False
    loops[moved].serving = False
    for _ in range(PERSISTENCE + 1):
        assert await b.check() is None
    clock.now += 3.0
    second = await b.check()
    assert second is not None
    assert second != moved
    assert store.beats == [ME] * len(store.beats)


async def test_a_passing_surplus_or_a_failed_heartbeat_starts_the_count_again() -> None:
    loops = {name: FakeLoop() for name in ORGS[:4]}
    uneven = [row("a:1", ORGS[:4]), row("b:2")]
    even = [row("a:1", ORGS[:2]), row("b:2", ORGS[2:4])]
    failed = StoreError("store: the instance heartbeat failed: connection reset")
    script: list[list[InstanceInfo] | StoreError] = []
    for interruption in (even, failed):
        script += [uneven] * (PERSISTENCE - 1) + [interruption]
    store = FakeStore([*script, uneven])
    b = balancer(store, loops, Clock())
    for _ in script:
        assert await b.check() is None
    for _ in range(PERSISTENCE - 1):
        assert await b.check() is None
    assert await b.check() is not None


async def test_disabled_balancing_announces_but_never_moves_or_refuses() -> None:
    loops = {name: FakeLoop() for name in ORGS[:4]}
    store = FakeStore([[row("a:1", ORGS[:4]), row("b:2")]])
    b = balancer(store, loops, Clock(), enabled=False)
    for _ in range(PERSISTENCE * 2):
        assert await b.check() is None
    assert len(store.beats) == PERSISTENCE * 2
    assert b.admit("org5") is None
    await b.leave()
    assert store.left == 1


def test_admit_asks_about_its_own_account() -> None:
    b = balancer(FakeStore([[]]), {}, Clock())
    check = b.admit("org6")
    assert check is not None
    fleet = [row("a:1", ORGS[:2]), row("b:2", ORGS[2:4]), row("c:3", ORGS[4:5])]
    assert not check(fleet)
    assert check([row("a:1", ORGS[:1]), *fleet[1:]])


def test_status_lists_live_instances_with_their_accounts_and_the_gone_ones() -> None:
    fleet = [
        row("a:1", ORGS[:3]),
        row("b:2", ORGS[3:4]),
        row("c:3"),
        dataclasses.replace(row("z:9"), live=False, heartbeat_age=400.0),
    ]
    lines = render_instances(fleet, 6.0)
    assert lines[0] == "instances (live: heartbeat within 6 s; fair share 2 of 6 accounts over 3)"
    assert lines[1].split()[:6] == ["a:1", "holds", "3", "accounts", "(org1,", "org2,"]
    assert lines[2].split()[:4] == ["b:2", "holds", "1", "account"]
    assert lines[3].split()[:4] == ["c:3", "holds", "0", "accounts;"]
    assert lines[4].split()[:5] == ["z:9", "gone", "(last", "heartbeat", "6.7"]
    assert render_instances([], 6.0)[0].endswith("none is running)")


class SlowRunner:
    """An account runtime whose graceful stop lasts until the test lets it finish."""

    def __init__(self) -> None:
        self.lost = asyncio.Event()
        self.shutting_down = asyncio.Event()
        self.finish = asyncio.Event()

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        self.shutting_down.set()
        await self.finish.wait()

    async def abort(self) -> None:
        raise AssertionError("a handover must stop the account gracefully, not abort it")


async def test_a_handover_drains_with_the_lease_renewed_then_leaves_the_account_free(
    store: Store, pg_dsn: str, tmp_path: Path
) -> None:
    runner = SlowRunner()
    admitted = [True]
    loop = LeaseLoop(
        store,
        "org1",
        "a:1",
        lambda lease, may_write: runner,
        on_change=lambda: None,
        ttl=1.0,
        poll=0.05,
        admit=lambda fleet: admitted[0],
    )
    task = asyncio.create_task(loop.run())
    other = await Store.open(StoreSettings(dsn=pg_dsn, pool_max_size=2), tmp_path)
    try:
        await wait_until(lambda: loop.serving, 10, "the loop to serve the account")
        admitted[0] = False  # from now on the fleet says: leave it to another instance
        loop.hand_over()
        await wait_until(runner.shutting_down.is_set, 5, "the graceful stop to begin")
        assert loop.handing_over
        [before] = await other.lease_holders("org1")

        async def renewed_past_a_ttl() -> bool:
            [now] = await other.lease_holders("org1")
            return now.expires_at > before.expires_at + timedelta(seconds=1.0)

        # Draining for longer than a TTL: renewed meanwhile, so nobody may take it yet.
        await wait_until(renewed_past_a_ttl, 10, "renewals during the drain")
        assert await other.acquire_lease("org1", "b:2", 1.0) is None
        runner.finish.set()

        async def taken() -> bool:
            return await other.acquire_lease("org1", "b:2", 5.0) is not None

        await wait_until(taken, 10, "the other instance to take the account")
        [after] = await other.lease_holders("org1")
        assert (after.holder, after.token) == ("b:2", before.token + 1)
        assert not loop.held
        assert not loop.handing_over
    finally:
        loop.stop()
        await asyncio.wait_for(task, 10)
        await other.close()


def test_the_switch_is_a_validated_boolean_on_by_default() -> None:
    base = {
        "ringcentral": {"client_id": "cid", "client_secret": "x", "jwt": "j"},
        "writers": {"log": {"type": "jsonl", "path": "calls.jsonl"}},
    }
    assert parse_config(base).daemon.balance is True
    assert parse_config({**base, "daemon": {"balance": False}}).daemon.balance is False
    with pytest.raises(ConfigError, match=r"daemon\.balance"):
        parse_config({**base, "daemon": {"balance": "yes"}})
