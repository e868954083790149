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

One item the store refuses (a call whose key exceeds an index's row size, a string
PostgreSQL cannot hold...) must not block the others: with an :class:`Isolation`, a
transaction that fails for a reason tied to its data is retried in halves, down to the
item that fails alone; that item is committed as a dead letter with the reason and the
rest, then the checkpoint, commit as usual. A failure of the store itself (unreachable,
out of space, shutting down, the lease lost) isolates nothing: the batch is kept and the
committer raises, for its supervisor to retry. :meth:`GroupCommitter.health` says whether
commits are failing, for readiness and status.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import asyncpg

from sscl_daemon import metrics
from sscl_daemon.calls.model import CompletedCall, encode_call
from sscl_daemon.logging import get_logger
from sscl_daemon.store import DeadLetter, DeadLetterKind, StoreError

log = get_logger(__name__)

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


@dataclass(frozen=True)
class Isolation(Generic[D]):
    """How a committer tells a refused item from a failing store, and parks the item."""

    # An item the store refused alone, and why -> the dead letter that keeps it.
    quarantine: Callable[[CompletedCall | D, str], D]
    # True when a failure is the store's, not the data's: nothing is isolated then.
    store_failing: Callable[[BaseException], bool]


@dataclass(frozen=True)
class CommitHealth:
    """What readiness and status show about a committer."""

    # The last transaction failed and none succeeded since (the batch is kept, retried).
    failing: bool
    # Wall-clock time (time.time()) of the first failure of the current run of them.
    failing_since: float | None
    last_error: str | None
    # Items the store refused alone and that were dead-lettered, since the start.
    refused: int


# SQLSTATE classes of a refusal tied to the data sent: data exception (a string too long,
# a character the encoding cannot hold), integrity constraint violation, program limit
# exceeded (an index row too big). Every other server error (connection, insufficient
# resources such as a full disk, operator intervention, a missing table...) would refuse
# any item alike, so it is the store's failure.
_REFUSAL_CLASSES = frozenset({"22", "23", "54"})
# A reason is kept readable and bounded whatever the failure said.
_MAX_REASON = 1000


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or while handling (a chain can loop: stop there)."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and all(cause is not s for s in seen):
        seen.append(cause)
        yield cause
        cause = cause.__cause__ or cause.__context__


def store_failing(exc: BaseException) -> bool:
    """Whether a failed commit is the store's fault (retry it all) rather than an item's.

    A PostgreSQL error is an item's when its SQLSTATE class is a refusal of the data; an
    exception from outside the store (encoding an item failed) is an item's too. Anything
    else the store raised (connection lost, disk full, lease lost...) is the store's.
    """
    for cause in _causes(exc):
        if isinstance(cause, asyncpg.PostgresError):
            return (cause.sqlstate or "")[:2] not in _REFUSAL_CLASSES
    return any(isinstance(cause, StoreError | OSError | TimeoutError) for cause in _causes(exc))


def _printable(text: str) -> str:
    """``text`` bounded, in printable ASCII (a reason must never be refused in its turn)."""
    return "".join(
        c if (c.isascii() and c.isprintable()) or c == "\n" else c.encode("unicode_escape").decode()
        for c in text[:_MAX_REASON]
    )


def store_quarantine(item: CompletedCall | DeadLetter, reason: str) -> DeadLetter:
    """The dead letter that keeps an item the store refused (the call, as the outbox holds it)."""
    if isinstance(item, CompletedCall):
        why = f"the store refused this call ({item.key[:200]}): {reason}"
        return DeadLetter(DeadLetterKind.CALL, _printable(why), encode_call(item))
    why = f"{item.reason} (the store refused this dead letter: {reason})"
    return DeadLetter(item.kind, _printable(why), item.payload)


STORE_ISOLATION: Isolation[DeadLetter] = Isolation(store_quarantine, store_failing)


class GroupCommitter(Generic[C, D]):
    def __init__(
        self,
        commit: Callable[[Batch[C, D]], Awaitable[None]],
        *,
        interval: float,
        max_batch: int,
        checkpoint_interval: float = 1.0,
        isolation: Isolation[D] | None = None,
    ) -> None:
        self._commit = commit
        self._isolation = isolation
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
        self._failing_since: float | None = None
        # Whether this committer is in sscl_commits_failing.
        self._counted = False
        self._last_error: str | None = None
        self._refused = 0

    def health(self) -> CommitHealth:
        return CommitHealth(
            self._failing_since is not None, self._failing_since, self._last_error, self._refused
        )

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
        try:
            await self._run()
        except asyncio.CancelledError:
            # Stopped for good (shutdown, the account handed over): it no longer counts
            # among the failing ones, whatever its last commit did.
            self._uncount()
            raise

    async def _run(self) -> None:
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
            except Exception as exc:
                # Put back in front what was not written, so nothing is lost when the task
                # is restarted; with an isolation, a refused item is written apart first.
                isolation = self._isolation
                if isolation is None or isolation.store_failing(exc):
                    self._restore(batch)
                    self._failed(exc)
                    raise
                try:
                    await self._isolate(batch, isolation)
                except Exception as again:
                    self._failed(again)
                    raise
            except BaseException:
                self._restore(batch)
                raise
            self._succeeded()
            self.committed_calls += len(batch.calls)
            if batch.calls:
                metrics.COMMIT_BATCH.observe(len(batch.calls))

    def _failed(self, exc: BaseException) -> None:
        metrics.COMMIT_FAILURES.inc()
        self._last_error = _printable(str(exc) or type(exc).__name__)
        if self._failing_since is None:
            self._failing_since = time.time()
        if not self._counted:
            self._counted = True
            metrics.COMMITS_FAILING.inc()

    def _succeeded(self) -> None:
        self._failing_since = None
        self._uncount()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            metrics.COMMITS_FAILING.dec()

    async def _isolate(self, batch: Batch[C, D], isolation: Isolation[D]) -> None:
        """Commit ``batch`` in halves, then its checkpoint; park what is refused alone.

        On a failure of the store, what is not written yet is put back and it raises.
        """
        items: list[CompletedCall | D] = [*batch.calls, *batch.dead_letters]
        middle = len(items) // 2
        # A stack of parts still to write, the next one last: the items keep their order.
        todo = [items[middle:], items[:middle]] if middle else [items]
        try:
            while todo:
                part = todo[-1]
                try:
                    await self._commit(_batch_of(part))
                except Exception as exc:
                    if isolation.store_failing(exc):
                        raise
                    todo.pop()
                    if len(part) > 1:
                        half = len(part) // 2
                        todo += [part[half:], part[:half]]
                        continue
                    await self._park(part[0], exc, isolation)
                else:
                    todo.pop()
            if batch.checkpoint is not None:
                await self._commit(Batch(checkpoint=batch.checkpoint))
        except BaseException:
            rest: Batch[C, D] = _batch_of([item for part in todo for item in part])
            rest.checkpoint = batch.checkpoint
            self._restore(rest)
            raise

    async def _park(self, item: CompletedCall | D, exc: Exception, isolation: Isolation[D]) -> None:
        """``item`` failed alone: once more, then as a dead letter (raises if that fails too)."""
        try:
            # A failure a second attempt heals was no refusal.
            await self._commit(_batch_of([item]))
            return
        except Exception as again:
            if isolation.store_failing(again):
                raise
        reason = _printable(str(exc) or type(exc).__name__)
        # Written alone: a store that refuses even this is failing, and the caller raises.
        await self._commit(Batch(dead_letters=[isolation.quarantine(item, reason)]))
        self._refused += 1
        kind = "call" if isinstance(item, CompletedCall) else "dead_letter"
        metrics.COMMIT_REFUSED.labels(kind=kind).inc()
        log.error(
            "daemon.commit.item_dead_lettered",
            item=kind,
            reason=reason,
            hint="the store refused one item; kept as a dead letter",
        )

    def _restore(self, batch: Batch[C, D]) -> None:
        if not batch:
            return
        newer = self._pending
        batch.calls.extend(newer.calls)
        batch.dead_letters.extend(newer.dead_letters)
        if newer.checkpoint is not None:
            batch.checkpoint = newer.checkpoint
        self._pending = batch
        self._pending_since = asyncio.get_running_loop().time()
        if len(batch.calls) >= self.max_batch:
            self._space.clear()


def _batch_of(items: Iterable[CompletedCall | D]) -> Batch[C, D]:
    batch: Batch[C, D] = Batch()
    for item in items:
        if isinstance(item, CompletedCall):
            batch.calls.append(item)
        else:
            batch.dead_letters.append(item)
    return batch
