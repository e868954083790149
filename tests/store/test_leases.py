"""Account leases on a real PostgreSQL: contention, takeover, fencing, many accounts.

Two (or three) stores on the same database stand for daemon instances on different
machines. Takeover is waited for by polling ``acquire_lease`` with a deadline, the
way a standby does; the bound asserted is the issue's 10 s.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from sscl_daemon.config import StoreSettings
from sscl_daemon.store import (
    Announcement,
    Checkpoint,
    InstanceInfo,
    Lease,
    LeaseLostError,
    OutboxStatus,
    Outcome,
    Store,
)
from sscl_daemon.store.instances import PRUNE_AFTER
from sscl_daemon.store.testing import sample_call

ACCOUNT = "1000"
TTL = 3.0
TAKEOVER_BOUND = 10.0
POLL = 0.1

# Only this database's locks: tests running side by side hold the same account's key in theirs.
HOLDER_PIDS = """
SELECT l.pid FROM pg_locks AS l,
     (SELECT hashtextextended('sscl-lease:' || $1, 0) AS key) AS k
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = (k.key >> 32) & 4294967295
  AND l.objid::bigint = k.key & 4294967295
"""


async def open_store(dsn: str, tmp_path: Path) -> Store:
    return await Store.open(StoreSettings(dsn=dsn, pool_max_size=2), tmp_path)


@pytest.fixture
async def other(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A second instance on the same database."""
    opened = await open_store(pg_dsn, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


async def terminate_holder(dsn: str, account: str) -> int:
    """Cut the lease connection of whoever holds ``account`` (as a failing network would)."""
    conn = await asyncpg.connect(dsn)
    try:
        pids = [int(r["pid"]) for r in await conn.fetch(HOLDER_PIDS, account)]
        assert len(pids) == 1, pids
        assert await conn.fetchval("SELECT pg_terminate_backend($1, 5000)", pids[0])
        return pids[0]
    finally:
        await conn.close()


async def take_over(store: Store, account: str, holder: str) -> tuple[Lease, float]:
    """Poll like a standby until the lease is ours; returns it and the seconds it took."""
    started = time.monotonic()
    async with asyncio.timeout(TAKEOVER_BOUND):
        while True:
            lease = await store.acquire_lease(account, holder, TTL)
            if lease is not None:
                return lease, time.monotonic() - started
            await asyncio.sleep(POLL)


async def test_two_holders_contend_and_only_one_wins(store: Store, other: Store) -> None:
    results = await asyncio.gather(
        store.acquire_lease(ACCOUNT, "host-a", TTL), other.acquire_lease(ACCOUNT, "host-b", TTL)
    )
    won = [lease for lease in results if lease is not None]
    assert len(won) == 1
    assert won[0].token == 1
    # The loser keeps losing while the winner lives, and so does a second try by the winner.
    loser = other if results[0] is not None else store
    winner = store if loser is other else other
    assert await loser.acquire_lease(ACCOUNT, "host-c", TTL) is None
    assert await winner.acquire_lease(ACCOUNT, "host-d", TTL) is None
    [info] = await loser.lease_holders()
    assert (info.account, info.holder, info.token) == (ACCOUNT, won[0].holder, 1)
    assert info.held
    assert info.current
    assert info.connected
    assert info.acquired_at <= info.expires_at


async def test_terminated_connection_hands_the_lease_over_with_a_higher_token(
    store: Store, other: Store, pg_dsn: str
) -> None:
    first = await store.acquire_lease(ACCOUNT, "host-a", TTL)
    assert first is not None
    assert await other.acquire_lease(ACCOUNT, "host-b", TTL) is None
    await terminate_holder(pg_dsn, ACCOUNT)
    second, seconds = await take_over(other, ACCOUNT, "host-b")
    print(f"takeover after the holder's connection was cut: {seconds:.3f} s")
    assert second.token > first.token
    assert not await store.renew_lease(first)
    [info] = await store.lease_holders()
    assert (info.holder, info.token) == ("host-b", second.token)


async def test_sigkilled_holder_process_is_replaced_within_the_bound(
    other: Store, pg_dsn: str, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, pathlib, sys
        from sscl_daemon.config import StoreSettings
        from sscl_daemon.store import Store

        async def main() -> None:
            store = await Store.open(StoreSettings(dsn={pg_dsn!r}), pathlib.Path({str(tmp_path)!r}))
            lease = await store.acquire_lease({ACCOUNT!r}, "doomed", {TTL})
            print("token", lease.token if lease else None, flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.decode().strip() == "token 1", line
        assert await other.acquire_lease(ACCOUNT, "standby", TTL) is None
        process.send_signal(signal.SIGKILL)
        lease, seconds = await take_over(other, ACCOUNT, "standby")
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 10)
    print(f"takeover after SIGKILL of the holder: {seconds:.3f} s")
    assert lease.token == 2


async def test_deposed_holder_cannot_write(store: Store, other: Store, pg_dsn: str) -> None:
    first = await store.acquire_lease(ACCOUNT, "host-a", TTL)
    assert first is not None
    cp = Checkpoint(last_event_time=datetime(2026, 1, 5, 10, tzinfo=UTC))
    assert await store.commit_batch(ACCOUNT, [sample_call(1)], ["crm"], cp, fence=first) == 1
    [claimed] = await store.claim_due("crm", 10, "host-a:1", 60.0, fence=first)

    await terminate_holder(pg_dsn, ACCOUNT)
    second, _ = await take_over(other, ACCOUNT, "host-b")

    later = Checkpoint(last_event_time=datetime(2026, 1, 5, 11, tzinfo=UTC))
    with pytest.raises(LeaseLostError, match="no longer current"):
        await store.commit_batch(ACCOUNT, [sample_call(2)], ["crm"], later, fence=first)
    with pytest.raises(LeaseLostError):
        await store.mark_sent(claimed.id, "host-a:1", "crm-1", Outcome.CREATED, fence=first)
    with pytest.raises(LeaseLostError):
        await store.schedule_retry(claimed.id, "host-a:1", 1.0, "boom", True, fence=first)
    with pytest.raises(LeaseLostError):
        await store.mark_dead(claimed.id, "host-a:1", "bad", fence=first)
    with pytest.raises(LeaseLostError):
        await store.claim_due("crm", 10, "host-a:1", 60.0, fence=first)
    with pytest.raises(LeaseLostError):
        await store.save_snapshot(ACCOUNT, b"old", fence=first)
    with pytest.raises(LeaseLostError):
        await store.save_recovery_token(
            ACCOUNT, "wsc", datetime(2026, 1, 5, 12, tzinfo=UTC), "oauth", fence=first
        )
    # Nothing of the refused writes landed: one call, the first checkpoint, the row in flight.
    rows = await other.outbox_rows()
    assert [(r.call_key, r.status) for r in rows] == [(sample_call(1).key, OutboxStatus.IN_FLIGHT)]
    loaded = await other.load_checkpoint(ACCOUNT)
    assert loaded is not None
    assert loaded.last_event_time == cp.last_event_time
    assert await other.load_snapshot(ACCOUNT) is None
    assert await other.load_recovery_token(ACCOUNT) is None
    # The new holder writes normally.
    assert await other.commit_batch(ACCOUNT, [sample_call(2)], ["crm"], later, fence=second) == 1
    await other.save_snapshot(ACCOUNT, b"new", fence=second)
    assert await other.load_snapshot(ACCOUNT) == b"new"


async def test_a_fence_only_covers_its_own_account(store: Store) -> None:
    lease = await store.acquire_lease(ACCOUNT, "host-a", TTL)
    assert lease is not None
    with pytest.raises(ValueError, match="not of '2000'"):
        await store.commit_batch("2000", [sample_call(1)], ["crm"], None, fence=lease)
    assert await store.outbox_rows() == []


async def test_fenced_write_without_any_lease_row_is_refused(store: Store, other: Store) -> None:
    lease = await store.acquire_lease(ACCOUNT, "host-a", TTL)
    assert lease is not None
    forged = Lease(ACCOUNT, "host-a", lease.token + 1, TTL, lease.acquired_at, lease.expires_at)
    with pytest.raises(LeaseLostError, match=f"token {lease.token}"):
        await other.commit_batch(ACCOUNT, [sample_call(1)], ["crm"], None, fence=forged)
    unknown = Lease("9999", "host-a", 1, TTL, lease.acquired_at, lease.expires_at)
    with pytest.raises(LeaseLostError, match="no lease row"):
        await other.save_snapshot("9999", b"x", fence=unknown)


async def test_many_accounts_are_leased_independently(
    store: Store, other: Store, pg_dsn: str, tmp_path: Path
) -> None:
    accounts = [f"acc-{n}" for n in range(6)]
    for account in accounts[:3]:
        assert await store.acquire_lease(account, "host-a", TTL) is not None
    for account in accounts[3:]:
        assert await other.acquire_lease(account, "host-b", TTL) is not None
    for account in accounts:
        assert await store.acquire_lease(account, "host-a", TTL) is None
        assert await other.acquire_lease(account, "host-b", TTL) is None
    infos = await store.lease_holders()
    assert [(i.account, i.holder, i.held) for i in infos] == [
        (a, "host-a" if n < 3 else "host-b", True) for n, a in enumerate(accounts)
    ]
    # host-a dies: a third instance picks up exactly its accounts, host-b keeps its own.
    third = await open_store(pg_dsn, tmp_path)
    try:
        conn = await asyncpg.connect(pg_dsn)
        try:
            pids = {int(r["pid"]) for a in accounts[:3] for r in await conn.fetch(HOLDER_PIDS, a)}
            assert len(pids) == 1  # one lease connection carries all of an instance's leases
            await conn.execute("SELECT pg_terminate_backend($1, 5000)", pids.pop())
        finally:
            await conn.close()
        moved = [await take_over(third, account, "host-c") for account in accounts[:3]]
        assert [lease.token for lease, _ in moved] == [2, 2, 2]
        for account in accounts[3:]:
            assert await third.acquire_lease(account, "host-c", TTL) is None
        holders = {i.account: i.holder for i in await other.lease_holders()}
        assert holders == {a: "host-c" if n < 3 else "host-b" for n, a in enumerate(accounts)}
    finally:
        await third.close()


async def test_renewal_extends_and_reports_loss(store: Store, other: Store, pg_dsn: str) -> None:
    lease = await store.acquire_lease(ACCOUNT, "host-a", TTL)
    assert lease is not None
    [before] = await store.lease_holders(ACCOUNT)
    assert await store.renew_lease(lease)
    [after] = await store.lease_holders(ACCOUNT)
    assert after.expires_at > before.expires_at
    assert after.acquired_at == before.acquired_at
    assert after.token == before.token
    await terminate_holder(pg_dsn, ACCOUNT)
    await take_over(other, ACCOUNT, "host-b")
    assert not await store.renew_lease(lease)
    assert not await store.renew_lease(lease)  # stays lost; re-acquiring is the way back
    assert await store.acquire_lease(ACCOUNT, "host-a", TTL) is None


async def test_lost_connection_without_a_rival_is_taken_back_by_the_renewal(
    store: Store, other: Store, pg_dsn: str
) -> None:
    """A store blip is not a lost lease: the renewal locks it again with the same token."""
    lease = await store.acquire_lease(ACCOUNT, "host-a", TTL)
    assert lease is not None
    await terminate_holder(pg_dsn, ACCOUNT)
    assert await store.renew_lease(lease)
    [info] = await other.lease_holders(ACCOUNT)
    assert (info.token, info.held) == (lease.token, True)
    assert await other.acquire_lease(ACCOUNT, "host-b", TTL) is None


async def test_release_hands_over_at_once_and_tokens_never_go_back(
    store: Store, other: Store
) -> None:
    tokens = []
    for holder, mine in [("host-a", store), ("host-b", other), ("host-a", store)]:
        lease = await mine.acquire_lease(ACCOUNT, holder, TTL)
        assert lease is not None
        tokens.append(lease.token)
        await mine.release_lease(lease)
        [info] = await mine.lease_holders(ACCOUNT)
        assert not info.held
        assert not await mine.renew_lease(lease)
    assert tokens == [1, 2, 3]


async def test_expired_holder_that_stopped_heartbeating_is_deposed(
    store: Store, other: Store
) -> None:
    """A frozen holder keeps its connection (and lock) but not its lease after the TTL."""
    frozen = await store.acquire_lease(ACCOUNT, "host-a", 1.0)
    assert frozen is not None
    assert await other.acquire_lease(ACCOUNT, "host-b", TTL) is None
    lease, seconds = await take_over(other, ACCOUNT, "host-b")
    print(f"takeover from a holder that stopped renewing (ttl 1 s): {seconds:.3f} s")
    assert lease.token == frozen.token + 1
    assert not await store.renew_lease(frozen)
    with pytest.raises(LeaseLostError):
        await store.save_snapshot(ACCOUNT, b"stale", fence=frozen)


async def test_ttl_below_a_second_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match=r"at least 1\.0 s"):
        await store.acquire_lease(ACCOUNT, "host-a", 0.2)


# ---- instances (fair sharing) ----------------------------------------------------------

ACCOUNTS = tuple(f"org{n}" for n in range(1, 9))


def announcement(name: str, accounts: tuple[str, ...] = ACCOUNTS) -> Announcement:
    return Announcement(name, f"{name}.example", 4242, accounts)


def by_id(fleet: list[InstanceInfo]) -> dict[str, InstanceInfo]:
    return {info.instance_id: info for info in fleet}


async def test_instances_see_each_other_with_the_accounts_each_holds(
    store: Store, other: Store
) -> None:
    a, b = announcement("host-a"), announcement("host-b", ACCOUNTS[:2])
    await store.instance_heartbeat(a, TTL)
    # Eight accounts: their lock keys cover both signs of the bigint, which the view must
    # map back from pg_locks' two halves.
    mine = [await store.acquire_lease(account, "host-a", TTL) for account in ACCOUNTS[:5]]
    for account in ACCOUNTS[5:]:
        assert await other.acquire_lease(account, "host-b", TTL) is not None
    fleet = by_id(await other.instance_heartbeat(b, TTL))
    assert set(fleet) == {"host-a", "host-b"}
    assert fleet["host-a"].held == ACCOUNTS[:5]
    assert fleet["host-b"].held == ACCOUNTS[5:]
    assert fleet["host-a"].live
    assert fleet["host-b"].live
    assert (fleet["host-b"].host, fleet["host-b"].pid) == ("host-b.example", 4242)
    assert fleet["host-b"].accounts == ACCOUNTS[:2]
    assert fleet["host-a"].started_at <= fleet["host-b"].started_at
    # A released lease no longer counts.
    assert mine[0] is not None
    await store.release_lease(mine[0])
    assert by_id(await store.instances(TTL))["host-a"].held == ACCOUNTS[1:5]


async def test_an_instance_whose_connection_dies_stops_counting_at_once(
    store: Store, other: Store, pg_dsn: str
) -> None:
    await store.instance_heartbeat(announcement("host-a"), TTL)
    assert await store.acquire_lease(ACCOUNT, "host-a", TTL) is not None
    await other.instance_heartbeat(announcement("host-b"), TTL)
    await terminate_holder(pg_dsn, ACCOUNT)
    gone = by_id(await other.instance_heartbeat(announcement("host-b"), TTL))["host-a"]
    assert not gone.live  # its heartbeat is fresh, but its instance lock went with the session
    assert gone.held == ()
    # Its next heartbeat reconnects and takes the instance lock again.
    await store.instance_heartbeat(announcement("host-a"), TTL)
    assert by_id(await other.instances(TTL))["host-a"].live


async def test_an_instance_that_stops_beating_is_dead_after_the_ttl_and_pruned_later(
    store: Store, other: Store, pg_dsn: str
) -> None:
    await store.instance_heartbeat(announcement("host-a"), TTL)
    await other.instance_heartbeat(announcement("host-b"), TTL)
    conn = await asyncpg.connect(pg_dsn)
    try:
        # A frozen process: its session (and lock) lives, its heartbeat ages.
        await conn.execute(
            "UPDATE instances SET heartbeat_at = now() - make_interval(secs => $1) "
            "WHERE instance_id = 'host-a'",
            TTL + 0.5,
        )
        fleet = by_id(await other.instance_heartbeat(announcement("host-b"), TTL))
        assert not fleet["host-a"].live
        assert fleet["host-a"].heartbeat_age >= TTL
        assert fleet["host-b"].live
        await conn.execute(
            "UPDATE instances SET heartbeat_at = now() - make_interval(secs => $1) "
            "WHERE instance_id = 'host-a'",
            PRUNE_AFTER + 1,
        )
    finally:
        await conn.close()
    assert set(by_id(await other.instance_heartbeat(announcement("host-b"), TTL))) == {"host-b"}


async def test_leaving_removes_the_instance_and_a_new_incarnation_starts_afresh(
    store: Store, other: Store
) -> None:
    await store.instance_heartbeat(announcement("host-a"), TTL)
    first = by_id(await other.instance_heartbeat(announcement("host-b"), TTL))["host-a"]
    await store.leave_fleet()
    assert set(by_id(await other.instances(TTL))) == {"host-b"}
    again = by_id(await store.instance_heartbeat(announcement("host-a", ACCOUNTS[:1]), TTL))
    assert again["host-a"].started_at > first.started_at
    assert again["host-a"].accounts == ACCOUNTS[:1]
    assert again["host-a"].live
    await store.close()  # closing leaves too
    assert set(by_id(await other.instances(TTL))) == {"host-b"}


async def test_admission_sees_the_fleet_and_a_refusal_leaves_the_account_free(
    store: Store, other: Store
) -> None:
    await store.instance_heartbeat(announcement("host-a"), TTL)
    await other.instance_heartbeat(announcement("host-b"), TTL)
    seen: list[set[str]] = []

    def refuse(fleet: Sequence[InstanceInfo]) -> bool:
        seen.append({info.instance_id for info in fleet if info.live})
        return False

    assert await store.acquire_lease(ACCOUNT, "host-a", TTL, refuse) is None
    assert seen == [{"host-a", "host-b"}]
    assert await store.lease_holders() == []  # no row written, no token spent
    lease = await other.acquire_lease(ACCOUNT, "host-b", TTL, lambda fleet: True)
    assert lease is not None
    assert lease.token == 1
    # Asked only for a free account: a held one is refused before the fleet is read.
    assert await store.acquire_lease(ACCOUNT, "host-a", TTL, refuse) is None
    assert len(seen) == 1


async def test_a_release_never_looks_like_a_frozen_holder_to_a_contender(
    store: Store, other: Store
) -> None:
    """While an instance gives one account up, a contender polling for it must not take it
    for a frozen holder (row expired, lock still held) and cut the lease connection that
    carries the instance's other accounts."""
    keep = await store.acquire_lease("keep", "host-a", TTL)
    assert keep is not None
    stop = asyncio.Event()
    taken: list[Lease] = []

    async def contend() -> None:
        while not stop.is_set():
            lease = await other.acquire_lease("moving", "host-b", TTL)
            if lease is not None:
                taken.append(lease)
                await other.release_lease(lease)
            await asyncio.sleep(0)

    contender = asyncio.create_task(contend())
    try:
        for _ in range(60):
            lease = await store.acquire_lease("moving", "host-a", TTL)
            if lease is not None:
                await store.release_lease(lease)
            assert await store.renew_lease(keep), "the lease connection was cut"
    finally:
        stop.set()
        await contender
    assert taken, "the contender never got the account"
