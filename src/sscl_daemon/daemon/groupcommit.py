"""Group commit: completed calls and the checkpoint that produced them, a batch at a time.

The pipeline adds each event's results (calls, the checkpoint after the
event, dead letters) and goes on; a committer task writes everything added
so far in one transaction every ``commit_interval_ms``, or at once when
``commit_max_batch`` calls are waiting. Throughput then does not cost one
transaction per call and latency stays a few milliseconds. Memory is
bounded: while one batch is being written and the next one is full,
:meth:`GroupCommitter.add` waits, so a slow database holds back the event
stream instead of growing a queue. Checkpoint-only batches (events that
completed no call) are written less often, ``checkpoint_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sscl_daemon import metrics
from sscl_daemon.calls.model import CompletedCall

C = TypeVar("C")
D = TypeVar("D")


@dataclass
class Batch(Generic[C, D]):
    """What one transaction writes."""

    calls: list[CompletedCall] = field(default_factory=list)
    checkpoint: C | None = None
    dead_letters: list[D] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.calls or self.dead_letters or self.checkpoint is not None)


class GroupCommitter(Generic[C, D]):
    def __init__(
        self,
        commit: Callable[[Batch[C, D]], Awaitable[None]],
        *,
        interval: float,
        max_batch: int,
        checkpoint_interval: float = 1.0,
    ) -> None:
        self._commit = commit
        self.interval = interval
        self.max_batch = max_batch
        self._checkpoint_interval = max(checkpoint_interval, interval)
        self._pending: Batch[C, D] = Batch()
        self._pending_since: float | None = None
        self._urgent = False
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.committed_calls = 0

    def _has_items(self) -> bool:
        return bool(self._pending.calls or self._pending.dead_letters)

    async def add(
        self,
        calls: Iterable[CompletedCall] = (),
        checkpoint: C | None = None,
        dead_letters: Iterable[D] = (),
    ) -> None:
        """Queue one event's results; waits while a full batch is already waiting."""
        while not self._space.is_set():
            await self._space.wait()
        # Called for every event: plain attribute tests, no method calls on the common path.
        pending = self._pending
        had_items = bool(pending.calls or pending.dead_letters)
        was_empty = not had_items and pending.checkpoint is None
        if calls:
            pending.calls.extend(calls)
        if dead_letters:
            pending.dead_letters.extend(dead_letters)
        if checkpoint is not None:
            pending.checkpoint = checkpoint
        has_items = bool(pending.calls or pending.dead_letters)
        if not has_items and pending.checkpoint is None:
            return
        if self._idle.is_set():
            self._idle.clear()
        if self._pending_since is None:
            self._pending_since = asyncio.get_running_loop().time()
        full = len(pending.calls) >= self.max_batch
        if full:
            self._space.clear()
        # The committer only needs waking when its deadline moves: a first item (or a first
        # call after checkpoints only) or a full batch. Waking it per event would cost every
        # event a trip through the committer's loop.
        if was_empty or full or (has_items and not had_items):
            self._wake.set()

    def _deadline(self) -> float:
        assert self._pending_since is not None
        if self._urgent or len(self._pending.calls) >= self.max_batch:
            return self._pending_since
        wait = self.interval if self._has_items() else self._checkpoint_interval
        return self._pending_since + wait

    async def flush(self) -> None:
        """Commit whatever is pending now and wait until it is written."""
        if not self._pending and self._idle.is_set():
            return
        self._urgent = True
        self._wake.set()
        await self._idle.wait()

    async def run(self) -> None:
        """The committer task: runs until cancelled; a failed commit raises (the supervisor retries)."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._urgent = False
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._deadline() - loop.time()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            batch, self._pending = self._pending, Batch()
            self._pending_since = None
            # One batch in the transaction and one filling up: the bound on memory.
            self._space.set()
            try:
                await self._commit(batch)
            except BaseException:
                # Put the batch back in front so nothing is lost when the task is restarted.
                self._restore(batch)
                raise
            self.committed_calls += len(batch.calls)
            if batch.calls:
                metrics.COMMIT_BATCH.observe(len(batch.calls))

    def _restore(self, batch: Batch[C, D]) -> None:
        newer = self._pending
        batch.calls.extend(newer.calls)
        batch.dead_letters.extend(newer.dead_letters)
        if newer.checkpoint is not None:
            batch.checkpoint = newer.checkpoint
        self._pending = batch
        self._pending_since = asyncio.get_running_loop().time()
        if len(batch.calls) >= self.max_batch:
            self._space.clear()
