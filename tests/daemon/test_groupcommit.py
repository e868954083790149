"""Group commit batching: interval, size bound, backpressure, flush, failure keeps the batch."""

from __future__ import annotations

import asyncio

import pytest
from tests.daemon.helpers import make_call

from sscl_daemon.daemon.groupcommit import Batch, GroupCommitter


class Sink:
    """Records committed batches; can be held closed to simulate a slow database."""

    def __init__(self) -> None:
        self.batches: list[Batch[int, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.committed = asyncio.Event()
        self.fail_next = False

    async def __call__(self, batch: Batch[int, str]) -> None:
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database connection lost")
        self.batches.append(batch)
        self.committed.set()


async def _start(sink: Sink, **kw: float) -> tuple[GroupCommitter[int, str], asyncio.Task[None]]:
    committer: GroupCommitter[int, str] = GroupCommitter(
        sink,
        interval=kw.get("interval", 0.005),
        max_batch=int(kw.get("max_batch", 100)),
        checkpoint_interval=kw.get("checkpoint_interval", 1.0),
    )
    return committer, asyncio.create_task(committer.run())


async def test_calls_added_together_land_in_one_transaction_with_the_last_checkpoint() -> None:
    sink = Sink()
    committer, task = await _start(sink, interval=0.05)
    try:
        for n in range(3):
            await committer.add([make_call(n)], checkpoint=n, dead_letters=[f"bad-{n}"])
        await asyncio.wait_for(committer.flush(), 5)
        assert len(sink.batches) == 1
        batch = sink.batches[0]
        assert [c.key for c in batch.calls] == ["s-0:ext-1", "s-1:ext-1", "s-2:ext-1"]
        assert batch.checkpoint == 2
        assert batch.dead_letters == ["bad-0", "bad-1", "bad-2"]
    finally:
        task.cancel()


async def test_a_lone_call_is_committed_after_the_interval_without_flush() -> None:
    sink = Sink()
    committer, task = await _start(sink, interval=0.005)
    try:
        await committer.add([make_call(1)], checkpoint=1)
        await asyncio.wait_for(sink.committed.wait(), 5)
        assert [len(b.calls) for b in sink.batches] == [1]
    finally:
        task.cancel()


async def test_full_batches_apply_backpressure_instead_of_queueing() -> None:
    sink = Sink()
    sink.gate.clear()  # the database is stuck
    committer, task = await _start(sink, max_batch=4, interval=10.0)
    try:
        for n in range(4):
            await committer.add([make_call(n)], checkpoint=n)
        # The first full batch is now in the (stuck) transaction; a second one may fill up.
        for n in range(4, 8):
            await asyncio.wait_for(committer.add([make_call(n)], checkpoint=n), 5)
        blocked = asyncio.create_task(committer.add([make_call(8)], checkpoint=8))
        await asyncio.sleep(0.05)
        assert not blocked.done(), "a third batch must wait for the database"
        sink.gate.set()
        await asyncio.wait_for(blocked, 5)
        await asyncio.wait_for(committer.flush(), 5)
        assert [len(b.calls) for b in sink.batches] == [4, 4, 1]
        assert [b.checkpoint for b in sink.batches] == [3, 7, 8]
    finally:
        task.cancel()


async def test_checkpoint_only_progress_waits_for_the_checkpoint_interval() -> None:
    sink = Sink()
    committer, task = await _start(sink, interval=0.001, checkpoint_interval=30.0)
    try:
        await committer.add(checkpoint=41)
        await asyncio.sleep(0.05)
        assert sink.batches == []
        await asyncio.wait_for(committer.flush(), 5)
        assert [(b.calls, b.checkpoint) for b in sink.batches] == [([], 41)]
    finally:
        task.cancel()


async def test_a_failed_commit_keeps_the_batch_for_the_restarted_task() -> None:
    sink = Sink()
    sink.fail_next = True
    committer, task = await _start(sink, interval=0.001)
    await committer.add([make_call(1)], checkpoint=1)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(task, 5)
    await committer.add([make_call(2)], checkpoint=2)
    task = asyncio.create_task(committer.run())  # what the supervisor does
    try:
        await asyncio.wait_for(committer.flush(), 5)
        assert [[c.key for c in b.calls] for b in sink.batches] == [["s-1:ext-1", "s-2:ext-1"]]
        assert sink.batches[0].checkpoint == 2
    finally:
        task.cancel()
