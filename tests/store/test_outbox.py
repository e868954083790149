"""The outbox: atomic commits with the checkpoint, claims, and state transitions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from sscl_daemon.store import (
    Checkpoint,
    DeadLetter,
    DeadLetterKind,
    OutboxStatus,
    Outcome,
    Store,
    StoreError,
)
from sscl_daemon.store.leases import LeaseLostError
from sscl_daemon.store.migrate import available_migrations
from sscl_daemon.store.testing import sample_call

ACCOUNT = "1000"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def checkpoint(minutes: int) -> Checkpoint:
    return Checkpoint(last_event_time=T0 + timedelta(minutes=minutes))


async def execute(dsn: str, sql: str, *args: object) -> None:
    """Change the database behind the store's back (to set up a situation)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_commit_inserts_a_row_per_call_and_writer_with_the_checkpoint(store: Store) -> None:
    calls = [sample_call(i) for i in range(3)]
    letters = [DeadLetter(DeadLetterKind.EVENT, "not JSON", b"\x00garbage")]
    inserted = await store.commit_batch(
        ACCOUNT, calls, ["hubspot", "webhook"], checkpoint(1), letters
    )
    assert inserted == 6
    rows = await store.outbox_rows(ACCOUNT)
    assert sorted((r.call_key, r.writer) for r in rows) == sorted(
        (c.key, w) for c in calls for w in ("hubspot", "webhook")
    )
    assert {r.status for r in rows} == {OutboxStatus.PENDING}
    loaded = await store.load_checkpoint(ACCOUNT)
    assert loaded is not None
    assert loaded.last_event_time == T0 + timedelta(minutes=1)
    [letter] = await store.dead_letters(ACCOUNT)
    assert (letter.kind, letter.reason, letter.payload) == ("event", "not JSON", b"\x00garbage")


async def test_the_same_call_committed_twice_is_one_row_per_writer(store: Store) -> None:
    call = sample_call(7)
    assert (
        await store.commit_batch(ACCOUNT, [call, call], ["hubspot", "webhook"], checkpoint(1)) == 2
    )
    assert await store.commit_batch(ACCOUNT, [call], ["hubspot", "webhook"], checkpoint(2)) == 0
    # Another account's call with the same key is a different call.
    assert await store.commit_batch("2000", [call], ["hubspot"], None) == 1
    assert len(await store.outbox_rows(ACCOUNT)) == 2
    loaded = await store.load_checkpoint(ACCOUNT)
    assert loaded is not None
    assert loaded.last_event_time == T0 + timedelta(minutes=2)


@pytest.mark.parametrize("failing_table", ["checkpoints", "dead_letters"])
async def test_a_failure_mid_batch_stores_nothing(
    store: Store, pg_dsn: str, failing_table: str
) -> None:
    await store.commit_batch(ACCOUNT, [sample_call(1)], ["hubspot"], checkpoint(1))
    # The outbox insert succeeds; a statement after it fails inside the database.
    await execute(
        pg_dsn,
        f"""
        CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
        CREATE TRIGGER fail BEFORE INSERT OR UPDATE ON {failing_table}
        FOR EACH ROW EXECUTE FUNCTION fail();
        """,
    )

    batch = [sample_call(i) for i in range(2, 12)]
    letters = [DeadLetter(DeadLetterKind.EVENT, "bad", b"x")]
    with pytest.raises(StoreError, match="injected failure"):
        await store.commit_batch(ACCOUNT, batch, ["hubspot"], checkpoint(2), letters)

    rows = await store.outbox_rows(ACCOUNT)
    assert [r.call_key for r in rows] == [sample_call(1).key]
    loaded = await store.load_checkpoint(ACCOUNT)
    assert loaded is not None
    assert loaded.last_event_time == T0 + timedelta(minutes=1)
    assert await store.dead_letters(ACCOUNT) == []


async def test_two_concurrent_claimers_never_get_the_same_row(store: Store) -> None:
    calls = [sample_call(i) for i in range(300)]
    await store.commit_batch(ACCOUNT, calls, ["hubspot"], None)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    start = asyncio.Event()

    async def claimer(name: str) -> None:
        await start.wait()
        for _ in range(200):  # bounded: 300 rows in batches of 7 take at most 43 rounds each
            items = await store.claim_due("hubspot", 7, name, lease_seconds=600)
            if not items:
                return
            claimed[name].extend(item.id for item in items)

    tasks = [asyncio.create_task(claimer("a")), asyncio.create_task(claimer("b"))]
    start.set()
    await asyncio.gather(*tasks)

    a, b = set(claimed["a"]), set(claimed["b"])
    # Both had a share, so the claims really ran side by side.
    assert a
    assert b
    assert not a & b
    assert len(a) + len(b) == len(claimed["a"]) + len(claimed["b"]) == 300
    rows = await store.outbox_rows(ACCOUNT)
    assert {(r.status, r.attempts) for r in rows} == {(OutboxStatus.IN_FLIGHT, 1)}


async def test_claim_decodes_the_call_and_only_its_claimer_settles_it(store: Store) -> None:
    call = sample_call(3)
    await store.commit_batch(ACCOUNT, [call], ["hubspot"], None)
    [item] = await store.claim_due("hubspot", 10, "a", lease_seconds=60)
    assert item.call == call
    assert (item.account, item.writer, item.attempts, item.uncertain) == (
        ACCOUNT,
        "hubspot",
        1,
        False,
    )
    assert item.claimed_by == "a"
    assert await store.claim_due("hubspot", 10, "b", lease_seconds=60) == []

    assert not await store.mark_sent(item.id, "b", "crm-1", Outcome.CREATED)
    assert await store.mark_sent(item.id, "a", "crm-1", Outcome.CREATED)
    assert not await store.mark_sent(item.id, "a", "crm-2", Outcome.CREATED)
    assert not await store.schedule_retry(item.id, "a", 0, "late", uncertain=False)
    assert not await store.mark_dead(item.id, "a", "late")
    [row] = await store.outbox_rows(ACCOUNT)
    assert (row.status, row.crm_record_id, row.outcome) == (
        OutboxStatus.SENT,
        "crm-1",
        Outcome.CREATED,
    )
    assert row.sent_at is not None
    assert row.claimed_by is None


async def test_mark_sent_many_settles_only_the_rows_the_claimer_holds(store: Store) -> None:
    calls = [sample_call(n) for n in range(1, 5)]
    await store.commit_batch(ACCOUNT, calls, ["hubspot"], None)
    mine = await store.claim_due("hubspot", 3, "a", lease_seconds=60)
    [theirs] = await store.claim_due("hubspot", 10, "b", lease_seconds=60)
    assert await store.mark_sent_many([], "a") == set()

    settled = await store.mark_sent_many(
        [
            (mine[0].id, "crm-0", Outcome.CREATED),
            (mine[1].id, "crm-1", Outcome.EXISTED),
            (theirs.id, "crm-x", Outcome.CREATED),
        ],
        "a",
    )
    assert settled == {mine[0].id, mine[1].id}
    # Settled once: a repeat, even by the claimer, changes nothing.
    assert await store.mark_sent_many([(mine[0].id, "crm-again", Outcome.CREATED)], "a") == set()
    rows = {r.id: r for r in await store.outbox_rows(ACCOUNT)}
    assert (rows[mine[0].id].status, rows[mine[0].id].crm_record_id, rows[mine[0].id].outcome) == (
        OutboxStatus.SENT,
        "crm-0",
        Outcome.CREATED,
    )
    assert (rows[mine[1].id].crm_record_id, rows[mine[1].id].outcome) == ("crm-1", Outcome.EXISTED)
    assert rows[mine[1].id].claimed_by is None
    assert rows[mine[1].id].sent_at is not None
    assert (rows[mine[2].id].status, rows[mine[2].id].claimed_by) == (OutboxStatus.IN_FLIGHT, "a")
    assert (rows[theirs.id].status, rows[theirs.id].claimed_by) == (OutboxStatus.IN_FLIGHT, "b")


async def test_mark_sent_many_is_refused_whole_once_the_fence_is_deposed(
    store: Store, pg_dsn: str
) -> None:
    lease = await store.acquire_lease(ACCOUNT, "host-a", 30.0)
    assert lease is not None
    await store.commit_batch(ACCOUNT, [sample_call(1), sample_call(2)], ["crm"], None, fence=lease)
    first, second = await store.claim_due("crm", 10, "host-a:1", 60.0, fence=lease)
    assert await store.mark_sent_many(
        [(first.id, "crm-1", Outcome.CREATED)], "host-a:1", fence=lease
    ) == {first.id}

    # Another instance took the account over: its token is the current one now.
    await execute(pg_dsn, "UPDATE leases SET fencing_token = fencing_token + 1")
    with pytest.raises(LeaseLostError):
        await store.mark_sent_many([(second.id, "crm-2", Outcome.CREATED)], "host-a:1", fence=lease)
    rows = {r.id: r.status for r in await store.outbox_rows(ACCOUNT)}
    assert rows == {first.id: OutboxStatus.SENT, second.id: OutboxStatus.IN_FLIGHT}


async def test_retries_wait_their_delay_and_uncertainty_sticks(store: Store, pg_dsn: str) -> None:
    await store.commit_batch(ACCOUNT, [sample_call(1)], ["hubspot"], None)
    [item] = await store.claim_due("hubspot", 1, "a", lease_seconds=60)
    assert await store.schedule_retry(item.id, "a", 3600, "HTTP 503", uncertain=True)
    assert await store.claim_due("hubspot", 1, "a", lease_seconds=60) == []
    wait = await store.seconds_until_due("hubspot")
    assert wait is not None
    assert 3500 < wait <= 3600
    [row] = await store.outbox_rows(ACCOUNT)
    assert (row.status, row.last_error, row.uncertain) == (OutboxStatus.PENDING, "HTTP 503", True)

    await execute(pg_dsn, "UPDATE outbox SET next_attempt_at = now() - interval '1 s'")
    [again] = await store.claim_due("hubspot", 1, "a", lease_seconds=60)
    assert (again.attempts, again.uncertain, again.last_error) == (2, True, "HTTP 503")
    # A later attempt that surely did not reach the CRM does not clear the doubt.
    assert await store.schedule_retry(again.id, "a", 0, "connection refused", uncertain=False)
    [third] = await store.claim_due("hubspot", 1, "a", lease_seconds=60)
    assert (third.attempts, third.uncertain) == (3, True)


async def test_dead_rows_stay_parked_until_retry_dead(store: Store) -> None:
    await store.commit_batch(
        ACCOUNT, [sample_call(1), sample_call(2)], ["hubspot", "webhook"], None
    )
    for writer in ("hubspot", "webhook"):
        for item in await store.claim_due(writer, 10, "a", lease_seconds=60):
            assert await store.mark_dead(item.id, "a", "HTTP 400: invalid phone")
    assert await store.claim_due("hubspot", 10, "a", lease_seconds=60) == []
    status = await store.status()
    assert (status.writer("hubspot").dead, status.writer("webhook").dead) == (2, 2)

    assert (
        await store.retry_dead(writer="hubspot", since=datetime.now(UTC) + timedelta(hours=1)) == 0
    )
    assert await store.retry_dead(writer="nobody") == 0
    assert await store.retry_dead(writer="hubspot") == 2
    items = await store.claim_due("hubspot", 10, "a", lease_seconds=60)
    assert [i.attempts for i in items] == [1, 1]
    assert await store.claim_due("webhook", 10, "a", lease_seconds=60) == []
    assert await store.retry_dead() == 2


async def test_an_expired_claim_comes_back_as_uncertain(store: Store) -> None:
    await store.commit_batch(ACCOUNT, [sample_call(1)], ["hubspot"], None)
    # A zero lease lapses at once: as if claimer "a" had crashed mid-attempt.
    [first] = await store.claim_due("hubspot", 1, "a", lease_seconds=0)
    assert not first.uncertain
    [second] = await store.claim_due("hubspot", 1, "b", lease_seconds=60)
    assert second.id == first.id
    assert (second.attempts, second.uncertain, second.claimed_by) == (2, True, "b")
    assert second.last_error == "claim by a expired"
    # The crashed claimer's late answer is refused; the new claimer's is taken.
    assert not await store.mark_sent(first.id, "a", "crm-a", Outcome.CREATED)
    assert await store.mark_sent(second.id, "b", "crm-b", Outcome.EXISTED)


async def test_claims_of_an_earlier_incarnation_can_be_ended_at_start(store: Store) -> None:
    await store.commit_batch(ACCOUNT, [sample_call(1), sample_call(2)], ["hubspot"], None)
    [mine] = await store.claim_due("hubspot", 1, "host-a:100:aa", lease_seconds=600)
    [other] = await store.claim_due("hubspot", 1, "host-b:7:cc", lease_seconds=600)
    assert await store.claim_due("hubspot", 10, "host-a:200:bb", lease_seconds=600) == []

    assert await store.expire_claims("host-a:", keep="host-a:200:bb") == 1
    [again] = await store.claim_due("hubspot", 10, "host-a:200:bb", lease_seconds=600)
    assert again.id == mine.id
    assert again.uncertain
    assert again.id != other.id
    # The current claimer's own claims are kept.
    assert await store.expire_claims("host-a:", keep="host-a:200:bb") == 0


async def test_claims_are_per_writer_and_optionally_per_account(store: Store) -> None:
    await store.commit_batch("1000", [sample_call(1)], ["hubspot", "webhook"], None)
    await store.commit_batch("2000", [sample_call(2)], ["hubspot"], None)
    mine = await store.claim_due("hubspot", 10, "a", lease_seconds=60, account="2000")
    assert [(i.account, i.call.key) for i in mine] == [("2000", sample_call(2).key)]
    rest = await store.claim_due("hubspot", 10, "a", lease_seconds=60)
    assert [i.account for i in rest] == ["1000"]
    assert [i.writer for i in await store.claim_due("webhook", 10, "a", 60)] == ["webhook"]


async def test_an_undecodable_payload_is_parked_not_returned(store: Store, pg_dsn: str) -> None:
    await store.commit_batch(ACCOUNT, [sample_call(1), sample_call(2)], ["hubspot"], None)
    await execute(
        pg_dsn, "UPDATE outbox SET payload = '{\"key\": 5}' WHERE call_key = $1", sample_call(1).key
    )
    items = await store.claim_due("hubspot", 10, "a", lease_seconds=60)
    assert [i.call.key for i in items] == [sample_call(2).key]
    [dead] = await store.outbox_rows(ACCOUNT, status=OutboxStatus.DEAD)
    assert dead.call_key == sample_call(1).key
    assert dead.last_error is not None
    assert dead.last_error.startswith("undecodable outbox payload")


async def test_status_counts(store: Store) -> None:
    await store.commit_batch(
        ACCOUNT, [sample_call(i) for i in range(5)], ["hubspot"], checkpoint(3)
    )
    await store.add_dead_letters(
        ACCOUNT, [DeadLetter(DeadLetterKind.CALL_LOG_RECORD, "no id", b"{}")]
    )
    await store.save_snapshot(ACCOUNT, b"snap")
    items = await store.claim_due("hubspot", 3, "a", lease_seconds=60)
    await store.mark_sent(items[0].id, "a", "1", Outcome.CREATED)
    await store.mark_dead(items[1].id, "a", "bad")

    status = await store.status()
    hubspot = status.writer("hubspot")
    assert (hubspot.pending, hubspot.in_flight, hubspot.sent, hubspot.dead, hubspot.due) == (
        2,
        1,
        1,
        1,
        2,
    )
    assert hubspot.oldest_pending_age is not None
    assert hubspot.oldest_pending_age >= 0
    assert status.dead_letters == {"call_log_record": 1}
    [account] = status.accounts
    assert account.account == ACCOUNT
    assert account.last_event_time == T0 + timedelta(minutes=3)
    assert account.checkpoint_age is not None
    assert account.snapshot_taken_at is not None
    assert status.schema_version == len(available_migrations())
    assert status.writer("absent").pending == 0


async def test_snapshots_are_saved_and_replaced(store: Store) -> None:
    assert await store.load_snapshot(ACCOUNT) is None
    await store.save_snapshot(ACCOUNT, b"\x00one")
    await store.save_snapshot(ACCOUNT, b"\x00two")
    assert await store.load_snapshot(ACCOUNT) == b"\x00two"
    assert await store.load_snapshot("2000") is None


async def test_recovery_token_and_checkpoint_do_not_overwrite_each_other(store: Store) -> None:
    assert await store.load_recovery_token(ACCOUNT) is None
    assert await store.load_checkpoint(ACCOUNT) is None
    expires = T0 + timedelta(minutes=3)
    await store.save_recovery_token(ACCOUNT, "wsc-secret-token", expires, "session-1")
    assert await store.load_checkpoint(ACCOUNT) is None
    await store.commit_batch(ACCOUNT, [], [], checkpoint(5))
    token = await store.load_recovery_token(ACCOUNT)
    assert token is not None
    assert (token.token, token.expires_at, token.oauth_session) == (
        "wsc-secret-token",
        expires,
        "session-1",
    )
    assert "wsc-secret-token" not in repr(token)
    await store.save_recovery_token(ACCOUNT, "wsc-2", expires, "session-2")
    loaded = await store.load_checkpoint(ACCOUNT)
    assert loaded is not None
    assert loaded.last_event_time == T0 + timedelta(minutes=5)
    await store.clear_recovery_token(ACCOUNT)
    assert await store.load_recovery_token(ACCOUNT) is None


async def test_a_commit_wakes_the_writers_notifier(store: Store) -> None:
    hubspot = store.work_notifier("hubspot")
    webhook = store.work_notifier("webhook")
    try:
        assert not await hubspot.wait(0.01)  # also starts listening
        await store.commit_batch(ACCOUNT, [sample_call(1)], ["hubspot"], None)
        assert await hubspot.wait(10)
        assert not await webhook.wait(0.05)
        # Nothing new: the commit of a known call announces nothing.
        await store.commit_batch(ACCOUNT, [sample_call(1)], ["hubspot"], None)
        assert not await hubspot.wait(0.05)
        [item] = await store.claim_due("hubspot", 1, "a", 60)
        await store.mark_dead(item.id, "a", "bad")
        await store.retry_dead()
        assert await hubspot.wait(10)
    finally:
        hubspot.close()
        webhook.close()


async def test_a_lost_listener_wakes_waiters_and_is_replaced(store: Store, pg_dsn: str) -> None:
    hubspot = store.work_notifier("hubspot")
    try:
        assert not await hubspot.wait(0.01)  # starts listening
        await execute(
            pg_dsn,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        # Losing the listener may have hidden an announcement: the waiter is told to look.
        assert await hubspot.wait(10)
        assert not await hubspot.wait(0.01)  # listening again
        await store.commit_batch(ACCOUNT, [sample_call(1)], ["hubspot"], None)
        assert await hubspot.wait(10)
    finally:
        hubspot.close()
