"""The outbox dispatcher: one per writer, from due ledger rows to CRM requests and back.

It claims due rows of its writer (``FOR UPDATE SKIP LOCKED`` with a lease,
so two daemons never send the same row at once), hands them to the writer
in batches of ``batch_size`` with at most ``concurrency`` batches in flight,
and records each answer in the same row: sent (with the CRM's record id),
skipped (the contact policy said not to log the call: settled, never retried),
retry later (the writer's delay, or jittered exponential backoff between
``retry_initial`` and ``retry_max``), or dead (a permanent failure, or
``max_attempts`` used up). A writer that times out or raises leaves the
row *uncertain*: the next attempt must look for the record before creating
it. Rows whose claim lapsed (a crash mid-request) come back uncertain from
the store, for the same reason.

Each call a CRM accepted gets one info line, ``dispatch.call.logged``, with
its key, the writer, the result and the CRM's record id (logging.py names
the events). A record the writer created is handed to ``on_created`` (the writer's
enrichment runner queues the updates the call expects: recording, voicemail) with the note
the writer wrote; if that fails the runner's sweep queues them later. So is a record an
earlier attempt of ours made whose answer was lost (``AlreadyExisted.ours``), without a note.

The dispatcher itself holds nothing but the rows in flight: a slow or dead
CRM grows the outbox table, never this process.

With an account lease (``fence``) every claim and settlement is fenced, and
``may_write`` is asked right before each batch goes to the CRM, so a deposed
instance stops before its next write; a request already on the wire when the
lease is lost cannot be recalled (the new holder sends it again as uncertain).
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sscl_daemon import metrics
from sscl_daemon.backoff import backoff_delay
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import WriterSettings
from sscl_daemon.crm import base
from sscl_daemon.crm.base import WriteContext, Writer, WriteResult
from sscl_daemon.logging import get_logger
from sscl_daemon.store import Lease, OutboxItem, Outcome, Store, WorkNotifier

log = get_logger(__name__)

# A request may involve a contact lookup, the create and an association.
_REQUESTS_PER_WRITE = 3
# Time to record the answer after the writer returned, before the lease lapses.
_LEASE_MARGIN = 30.0


class WriteOutcome(enum.StrEnum):
    """How one ledger row's write attempt ended (label of ``sscl_writes_total``)."""

    CREATED = "created"
    ALREADY_EXISTED = "already_existed"
    RETRY = "retry"
    PERMANENT_FAILURE = "permanent_failure"
    # The writer timed out or raised: the CRM may or may not have the record.
    UNCERTAIN = "uncertain"
    DEAD = "dead"
    # The contact policy skips the call (no_contact / several_contacts = "skip"): settled, not sent.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Uncertain:
    """The writer timed out or raised: the CRM may or may not have the record."""

    reason: str


Answer = WriteResult | Uncertain
# Told about every call the CRM accepted: (writer name, call, CRM record id, outcome).
SentHook = Callable[[str, CompletedCall, str, WriteOutcome], None]
# Told about every record the writer created: (call, CRM record id, the note it wrote).
CreatedHook = Callable[[CompletedCall, str, str | None], Awaitable[None]]


@dataclass(frozen=True)
class Settlement:
    """What to do with one row after an attempt (pure; see :func:`settle`)."""

    outcome: WriteOutcome
    record_id: str | None = None
    retry_in: float | None = None
    reason: str | None = None
    uncertain: bool = False
    # The note a created record got (Created.written).
    written: str | None = None
    # An AlreadyExisted record our own earlier attempt made (its updates are ours).
    ours: bool = False


def settle(
    answer: Answer, attempts: int, settings: WriterSettings, rng: random.Random
) -> Settlement:
    """The state transition of a ledger row after the writer's answer."""
    if isinstance(answer, base.Created):
        return Settlement(WriteOutcome.CREATED, record_id=answer.record_id, written=answer.written)
    if isinstance(answer, base.AlreadyExisted):
        return Settlement(
            WriteOutcome.ALREADY_EXISTED, record_id=answer.record_id, ours=answer.ours
        )
    if isinstance(answer, base.PermanentFailure):
        return Settlement(WriteOutcome.PERMANENT_FAILURE, reason=answer.reason)
    if isinstance(answer, base.Skipped):
        return Settlement(WriteOutcome.SKIPPED, reason=answer.reason)
    uncertain = isinstance(answer, Uncertain) or (
        isinstance(answer, base.RetryLater) and answer.uncertain
    )
    if attempts >= settings.max_attempts:
        return Settlement(
            WriteOutcome.DEAD,
            reason=f"gave up after {attempts} attempts; last error: {answer.reason}",
        )
    delay = answer.delay if isinstance(answer, base.RetryLater) else None
    if delay is None:
        delay = backoff_delay(attempts, settings.retry_initial, settings.retry_max, rng)
    return Settlement(
        WriteOutcome.UNCERTAIN if uncertain else WriteOutcome.RETRY,
        retry_in=max(0.0, delay),
        reason=answer.reason,
        uncertain=uncertain,
    )


def _group_settled(s: Settlement) -> bool:
    """Whether the row is recorded by the shared settlement transaction (sent or skipped)."""
    return s.record_id is not None or s.outcome is WriteOutcome.SKIPPED


class Dispatcher:
    """Moves one writer's due outbox rows into its CRM until :meth:`drain`."""

    def __init__(
        self,
        store: Store,
        writer: Writer,
        settings: WriterSettings,
        *,
        claimer: str,
        account: str | None = None,
        rng: random.Random | None = None,
        idle_poll: float = 5.0,
        on_sent: SentHook | None = None,
        fence: Lease | None = None,
        may_write: Callable[[], bool] | None = None,
        on_created: CreatedHook | None = None,
    ) -> None:
        self._store = store
        self.on_created = on_created
        self._fence = fence
        self._may_write = may_write
        self._on_sent = on_sent
        self._writer = writer
        self.settings = settings
        self._claimer = claimer
        self._account = account
        self._rng = rng or random.Random()
        self._idle_poll = idle_poll
        self._in_flight: set[asyncio.Task[None]] = set()
        self._settling: set[asyncio.Task[None]] = set()
        # Claimed rows not yet handed to the writer, with the monotonic time of their claim.
        self._ready: list[tuple[float, OutboxItem]] = []
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._notifier: WorkNotifier | None = None
        self._old_writers: list[Writer] = []
        # Accepted calls waiting to be recorded; one flusher settles all of them in one
        # transaction, so concurrent requests share a commit instead of one each.
        self._to_mark: list[tuple[OutboxItem, str | None, Outcome, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def writer(self) -> Writer:
        """The writer new requests go to (replaced on a live reload)."""
        return self._writer

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def _attempt_timeout(self) -> float:
        return self.settings.timeout * _REQUESTS_PER_WRITE

    def replace_writer(self, writer: Writer, settings: WriterSettings) -> None:
        """Live reload: new requests go to ``writer``; the old one is closed at drain."""
        self._old_writers.append(self._writer)
        self._writer = writer
        self.settings = settings
        self.wake()

    def wake(self) -> None:
        if self._notifier is not None:
            self._notifier.notify()

    async def run(self) -> None:
        """Claim and write until :meth:`drain` is called; store errors propagate (supervised)."""
        if self._notifier is None:
            self._notifier = self._store.work_notifier(self.name)
        try:
            while not self._stopping.is_set():
                concurrency = self.settings.concurrency
                free = concurrency - len(self._in_flight)
                # Answers still being recorded count against the bound too, so a slow
                # database holds the CRM requests back instead of piling up settlements.
                if free <= 0 or len(self._in_flight) + len(self._settling) >= 2 * concurrency:
                    self._slot_freed.clear()
                    await self._wait_for(self._slot_freed, None)
                    continue
                batch = max(1, self.settings.batch_size)
                await self._release_stale()
                if not self._ready:
                    # One claim for a full round of batches: the rows beyond the free
                    # slots wait here for the next slot instead of a claim each.
                    items = await self._store.claim_due(
                        self.name,
                        concurrency * batch,
                        self._claimer,
                        self._attempt_timeout + _LEASE_MARGIN,
                        self._account,
                        fence=self._fence,
                    )
                    if not items:
                        await self._idle()
                        continue
                    claimed = time.monotonic()
                    self._ready = [(claimed, item) for item in items]
                for _ in range(free):
                    if not self._ready:
                        break
                    taken, self._ready = self._ready[:batch], self._ready[batch:]
                    self._spawn([item for _, item in taken])
        finally:
            await self._release_ready("the dispatcher stopped before sending it")

    async def _release_stale(self) -> None:
        """Give back waiting rows whose claim no longer covers a whole attempt."""
        if self._ready and time.monotonic() - self._ready[0][0] > _LEASE_MARGIN / 2:
            await self._release_ready("claimed, but no slot came free in time; not sent")

    async def _release_ready(self, reason: str) -> None:
        ready, self._ready = self._ready, []
        try:
            for _, item in ready:
                await self._store.schedule_retry(
                    item.id, self._claimer, 0.0, reason, item.uncertain, fence=self._fence
                )
        except Exception as exc:
            # Not given back: the claims lapse and the rows return (as uncertain) later.
            log.warning("dispatch.claim.release_failed", writer=self.name, error=repr(exc))

    async def _idle(self) -> None:
        due = await self._store.seconds_until_due(self.name, self._account)
        timeout = self._idle_poll if due is None else min(max(due, 0.01), self._idle_poll)
        assert self._notifier is not None
        waiter = asyncio.ensure_future(self._notifier.wait(timeout))
        await self._wait_for(None, waiter)

    async def _wait_for(
        self, event: asyncio.Event | None, other: asyncio.Future[bool] | None
    ) -> None:
        waits: set[asyncio.Future[object]] = {asyncio.ensure_future(self._stopping.wait())}
        if event is not None:
            waits.add(asyncio.ensure_future(event.wait()))
        if other is not None:
            waits.add(other)  # type: ignore[arg-type]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    def _spawn(self, items: Sequence[OutboxItem]) -> None:
        task = asyncio.create_task(self._attempt(items), name=f"write {self.name}")
        self._in_flight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._settling.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "dispatch.result.record_failed",
                writer=self.name,
                error=repr(task.exception()),
                hint="the row's claim will lapse and the call is retried",
            )

    async def _call_writer(self, items: Sequence[OutboxItem]) -> list[Answer]:
        writer = self._writer
        batch = [(i.call, WriteContext(attempt=i.attempts, uncertain=i.uncertain)) for i in items]
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._attempt_timeout):
                results = await writer.write_batch(batch)
        except TimeoutError:
            return [Uncertain(f"no answer within {self._attempt_timeout:g} s")] * len(items)
        except Exception as exc:
            log.warning("dispatch.writer.raised", writer=self.name, error=repr(exc), exc_info=exc)
            return [Uncertain(f"writer error: {exc!r}")] * len(items)
        finally:
            metrics.CRM_LATENCY.labels(writer=self.name).observe(time.monotonic() - started)
        if len(results) != len(items):
            reason = f"writer returned {len(results)} results for {len(items)} calls"
            return [Uncertain(reason)] * len(items)
        return list(results)

    async def _attempt(self, items: Sequence[OutboxItem]) -> None:
        if self._may_write is not None and not self._may_write():
            log.warning(
                "dispatch.batch.held_back",
                writer=self.name,
                calls=len(items),
                reason="the account lease is not current; its holder takes the rows over",
            )
            return
        answers = await self._call_writer(items)
        # The CRM answered: the slot is free for the next request while this is recorded.
        task = asyncio.current_task()
        if task is not None and task in self._in_flight:
            self._in_flight.discard(task)
            self._settling.add(task)
            self._slot_freed.set()
        now = datetime.now(UTC)
        settled = [
            (item, settle(answer, item.attempts, self.settings, self._rng))
            for item, answer in zip(items, answers, strict=True)
        ]
        # Sent and skipped rows are recorded by one group settlement: queue them all before
        # awaiting any, or each would wait for a transaction of its own.
        await asyncio.gather(
            *(self._record(item, s, now) for item, s in settled if _group_settled(s))
        )
        for item, s in settled:
            if not _group_settled(s):
                await self._record(item, s, now)

    async def _record(self, item: OutboxItem, s: Settlement, now: datetime) -> None:
        store, claimer = self._store, self._claimer
        metrics.WRITES.labels(writer=self.name, outcome=s.outcome.value).inc()
        if s.record_id is not None:
            outcome = Outcome.CREATED if s.outcome is WriteOutcome.CREATED else Outcome.EXISTED
            held = await self._mark_sent(item, s.record_id, outcome)
            latency = (now - item.call.end_time).total_seconds()
            metrics.END_TO_CRM_LATENCY.labels(writer=self.name).observe(max(0.0, latency))
            if held:
                log.info(
                    "dispatch.call.logged",
                    call=item.call.key,
                    writer=self.name,
                    crm=str(self.settings.type),
                    result=item.call.result.value,
                    outcome=s.outcome.value,
                    record=s.record_id,
                )
                if self._on_sent is not None:
                    self._on_sent(self.name, item.call, s.record_id, s.outcome)
                # A record our earlier attempt made (its answer lost) is ours to update too;
                # what it wrote is not known, so its note is never rewritten.
                ours = s.outcome is WriteOutcome.CREATED or s.ours
                if self.on_created is not None and ours:
                    await self._created(item.call, s.record_id, s.written)
        elif s.outcome is WriteOutcome.SKIPPED:
            # Settled like a sent row (the same group commit), without a record id: the
            # policy decided, so it is neither a failure nor anything retry-dead may resend.
            held = await self._mark_sent(item, None, Outcome.SKIPPED)
            log.info(
                "dispatch.call.skipped",
                writer=self.name,
                call=item.call.key,
                reason=s.reason,
                hint="the writer's contact policy skips it; it is not retried",
            )
        elif s.retry_in is not None:
            held = await store.schedule_retry(
                item.id, claimer, s.retry_in, s.reason or "", s.uncertain, fence=self._fence
            )
            log.info(
                "dispatch.call.retry_scheduled",
                writer=self.name,
                call=item.call.key,
                attempt=item.attempts,
                retry_in=round(s.retry_in, 3),
                uncertain=s.uncertain,
                reason=s.reason,
            )
        else:
            held = await store.mark_dead(item.id, claimer, s.reason or "", fence=self._fence)
            log.error(
                "dispatch.call.dead_lettered",
                writer=self.name,
                call=item.call.key,
                attempts=item.attempts,
                reason=s.reason,
                hint=f"after fixing the cause: sscl-daemon retry-dead --writer {self.name}",
            )
        if not held:
            log.warning(
                "dispatch.claim.lapsed",
                writer=self.name,
                call=item.call.key,
                hint="the answer came after the claim ended; the call is retried as uncertain",
            )

    async def _created(self, call: CompletedCall, record_id: str, written: str | None) -> None:
        assert self.on_created is not None
        try:
            await self.on_created(call, record_id, written)
        except Exception as exc:
            log.warning(
                "dispatch.enrichment.queue_failed",
                writer=self.name,
                call=call.key,
                error=repr(exc),
                hint="the update sweep queues it later (without rewriting the note)",
            )

    def _mark_sent(
        self, item: OutboxItem, record_id: str | None, outcome: Outcome
    ) -> asyncio.Future[bool]:
        """Queue the row for the next group settlement; resolves to whether it was still held."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._to_mark.append((item, record_id, outcome, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_sent(), name=f"settle {self.name}")
        return done

    async def _flush_sent(self) -> None:
        while self._to_mark:
            group, self._to_mark = self._to_mark, []
            try:
                held = await self._store.mark_sent_many(
                    [(item.id, record_id, outcome) for item, record_id, outcome, _ in group],
                    self._claimer,
                    fence=self._fence,
                )
            except Exception as exc:
                for *_, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            except BaseException:
                for *_, done in group:
                    done.cancel()
                raise
            for item, _, _, done in group:
                if not done.done():
                    done.set_result(item.id in held)

    async def drain(self, grace: float) -> bool:
        """Stop claiming; wait up to ``grace`` seconds for requests in flight. True if all finished.

        Requests still running after that are cancelled; their rows keep
        their claim until the lease lapses and then come back as uncertain.
        """
        self._stopping.set()
        pending = self._in_flight | self._settling
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher}, timeout=1.0)
        if self._notifier is not None:
            self._notifier.close()
        for writer in (*self._old_writers, self._writer):
            try:
                await writer.close()
            except Exception as exc:
                log.warning("dispatch.writer.close_failed", writer=self.name, error=repr(exc))
        return not pending
