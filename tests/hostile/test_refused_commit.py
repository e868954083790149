"""One item the store refuses is dead-lettered alone and the rest of its batch commits
(real PostgreSQL): a 3,000-character key (btree index row size), a NUL character in a call
(jsonb) and in a dead letter's reason (text). A failing store isolates nothing: the batch
is kept, the committer raises and says it is failing until a commit succeeds.

On f315870 the first of these blocked every commit: the committer retried the whole
batch for ever and none of the real calls was written.
"""

from __future__ import annotations

import asyncio
import random
import string
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from tests.daemon.helpers import make_call

from sscl_daemon import metrics
from sscl_daemon.calls.model import CompletedCall, decode_call
from sscl_daemon.config import StoreSettings
from sscl_daemon.daemon.groupcommit import STORE_ISOLATION, Batch, GroupCommitter
from sscl_daemon.daemon.pipeline import make_committer
from sscl_daemon.store import Checkpoint, DeadLetter, DeadLetterKind, Store, StoreError

ACCOUNT = "acc-1"
WRITERS = ("crm",)
AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
Committer = GroupCommitter[Checkpoint, DeadLetter]


@pytest.fixture
async def opened(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(StoreSettings(dsn=pg_dsn, pool_max_size=4), tmp_path)
    try:
        yield store
    finally:
        await store.close()


def poison_key(n: int) -> CompletedCall:
    # Random letters: PostgreSQL compresses index entries, and a run of one letter fits.
    letters = random.Random(n).choices(string.ascii_letters + string.digits, k=3000)
    tsid = "s-" + "".join(letters)
    return msgspec.structs.replace(make_call(n), telephony_session_id=tsid, key=f"{tsid}:ext-1")


def poison_nul(n: int) -> CompletedCall:
    return msgspec.structs.replace(make_call(n), external_name="ACME\x00CORP")


async def _commit_all(committer: Committer, *adds: Batch[Checkpoint, DeadLetter]) -> None:
    task = asyncio.create_task(committer.run())
    try:
        for batch in adds:
            await committer.add(batch.calls, batch.checkpoint, batch.dead_letters)
        await asyncio.wait_for(committer.flush(), 20)
        assert not task.done(), "the committer stopped"
    finally:
        task.cancel()


async def _outbox_keys(store: Store) -> list[str]:
    return [row.call_key for row in await store.outbox_rows(ACCOUNT)]


async def test_refused_items_are_dead_lettered_alone_and_the_rest_commits(opened: Store) -> None:
    committer = make_committer(opened, ACCOUNT, lambda: WRITERS, interval=0.01, max_batch=1000)
    real = [make_call(n) for n in range(40)]
    calls = [*real[:10], poison_key(100), *real[10:25], poison_nul(101), *real[25:]]
    bad_reason = DeadLetter(DeadLetterKind.EVENT, "odd \x00 reason", b"\x00raw")
    fine_letter = DeadLetter(DeadLetterKind.EVENT, "cannot decode", b"{")
    batch: Batch[Checkpoint, DeadLetter] = Batch(calls, Checkpoint(AT), [fine_letter, bad_reason])
    await _commit_all(committer, batch)

    assert sorted(await _outbox_keys(opened)) == sorted(c.key for c in real)
    checkpoint = await opened.load_checkpoint(ACCOUNT)
    assert checkpoint is not None
    assert checkpoint.last_event_time == AT
    letters = {(d.kind, d.payload): d.reason for d in await opened.dead_letters(ACCOUNT)}
    assert len(letters) == 4
    key_reason = letters[DeadLetterKind.CALL.value, msgspec.json.encode(calls[10])]
    assert "index row size" in key_reason
    assert key_reason.startswith(f"the store refused this call ({calls[10].key[:20]}")
    assert len(key_reason) <= 1000
    nul = letters[DeadLetterKind.CALL.value, msgspec.json.encode(calls[26])]
    assert "\x00" not in nul
    assert decode_call(msgspec.json.encode(calls[26])).external_name == "ACME\x00CORP"
    assert letters[DeadLetterKind.EVENT.value, b"{"] == "cannot decode"
    odd = letters[DeadLetterKind.EVENT.value, b"\x00raw"]
    assert odd.startswith("odd \\x00 reason (the store refused this dead letter: ")


async def test_health_counts_refusals_and_the_batches_after_commit(opened: Store) -> None:
    refused = metrics.COMMIT_REFUSED.labels(kind="call")._value.get()
    committer = make_committer(opened, ACCOUNT, lambda: WRITERS, interval=0.01, max_batch=10)
    first = Batch[Checkpoint, DeadLetter]([poison_key(1), make_call(2)], Checkpoint(AT))
    later = Batch[Checkpoint, DeadLetter]([make_call(n) for n in range(3, 30)], Checkpoint(AT))
    await _commit_all(committer, first, later)
    health = committer.health()
    assert health.refused == 1
    assert not health.failing
    assert metrics.COMMIT_REFUSED.labels(kind="call")._value.get() == refused + 1
    assert len(await _outbox_keys(opened)) == 28


class FlakyStore:
    """Commits through a real store, failing as told first."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False
        self.refuse_once: set[str] = set()
        self.attempts = 0
        # When set: a commit waits there for ever (a hung server), after saying so.
        self.hang: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, batch: Batch[Checkpoint, DeadLetter]) -> None:
        self.attempts += 1
        if self.hang is not None:
            self.entered.set()
            await self.hang.wait()
        if self.down:
            # What the store raises when PostgreSQL cannot be reached.
            raise StoreError("store: committing failed") from ConnectionRefusedError(111, "x")
        for call in batch.calls:
            if call.key in self.refuse_once:
                self.refuse_once.discard(call.key)
                raise ValueError("a passing refusal")  # healed by the retry
        await self.store.commit_batch(
            ACCOUNT, batch.calls, WRITERS, batch.checkpoint, batch.dead_letters
        )


async def test_a_failing_store_isolates_nothing_keeps_the_batch_and_says_so(
    opened: Store,
) -> None:
    flaky = FlakyStore(opened)
    committer: Committer = GroupCommitter(
        flaky, interval=0.001, max_batch=100, isolation=STORE_ISOLATION
    )
    failing_before = metrics.COMMITS_FAILING._value.get()
    flaky.down = True
    calls = [make_call(n) for n in range(8)]
    await committer.add(calls, Checkpoint(AT))
    with pytest.raises(StoreError):
        await asyncio.wait_for(committer.run(), 5)
    assert flaky.attempts == 1, "a failing store is not bisected"
    health = committer.health()
    assert health.failing
    assert health.failing_since is not None
    assert health.last_error == "store: committing failed"
    assert metrics.COMMITS_FAILING._value.get() == failing_before + 1
    assert await _outbox_keys(opened) == []
    assert await opened.dead_letters(ACCOUNT) == []

    flaky.down = False
    flaky.refuse_once = {calls[3].key}
    await _commit_all(committer)
    assert sorted(await _outbox_keys(opened)) == sorted(c.key for c in calls)
    assert await opened.dead_letters(ACCOUNT) == [], "a failure a retry heals is no refusal"
    assert not committer.health().failing
    assert metrics.COMMITS_FAILING._value.get() == failing_before


async def test_a_committer_stopped_while_failing_leaves_the_failing_gauge(opened: Store) -> None:
    flaky = FlakyStore(opened)
    flaky.down = True
    committer: Committer = GroupCommitter(
        flaky, interval=0.001, max_batch=100, isolation=STORE_ISOLATION
    )
    failing_before = metrics.COMMITS_FAILING._value.get()
    await committer.add([make_call(1)], Checkpoint(AT))
    with pytest.raises(StoreError):
        await asyncio.wait_for(committer.run(), 5)
    assert metrics.COMMITS_FAILING._value.get() == failing_before + 1
    # Restarted by its supervisor, still failing: counted once.
    with pytest.raises(StoreError):
        await asyncio.wait_for(committer.run(), 5)
    assert metrics.COMMITS_FAILING._value.get() == failing_before + 1
    # The account is handed over while a commit hangs: its committer is cancelled for good.
    flaky.hang = asyncio.Event()
    task = asyncio.create_task(committer.run())
    await asyncio.wait_for(flaky.entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metrics.COMMITS_FAILING._value.get() == failing_before
    assert committer.health().failing
