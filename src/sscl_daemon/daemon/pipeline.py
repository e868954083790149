"""The event pipeline: subscription items -> tracker -> group commit (calls + checkpoint).

One coroutine feeds every notification through :func:`decode_tracked` (the
lean decode of the fields the tracker reads, one decode per frame) and
the tracker, in arrival order, and hands the calls it completes to the
:class:`GroupCommitter` together with the checkpoint after the event.
Undecodable notifications become dead letters (kept, counted, never fatal), and so do
those whose ``eventTime`` is far from their receipt (:func:`check_event_time`): every
field is bounded at this edge, so the tracker's clock and the checkpoint below move only
on trusted time.
Gaps from the subscription go to the reconciler, which feeds the calls it
finds through the same committer (same idempotency keys, so a call seen
live and in the call log is logged once).

Sessions that may have lost events (a gap, a restart, a missing sequence
number) wait for their call-log record in :class:`~sscl_daemon.calls.settling.Settling`
with the calls the tracker made of them held back; the call-log version, put
together with what was seen (``calls/merge.py``), is the one committed. The
pipeline keeps no other per-session state: the phases are the lifecycle
table's (``calls/lifecycle.py``).

The checkpoint is a low-water mark, not the newest event time: it is the
first event time of the oldest session still in flight, still waiting for
its call-log record, or of a gap whose call-log reads (the re-reads too) are
not all done (or the newest event when there is none). Reading the call log from the checkpoint therefore
finds every call whose outcome is not yet committed, whatever a crash
took from memory. Snapshots are taken synchronously between two events
and saved only after everything those events produced is committed, so a
restored snapshot never holds a session whose calls were lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime

import msgspec

from sscl_daemon import metrics
from sscl_daemon.calls.events import (
    EventDecodeError,
    Notification,
    TrackedNotification,
    check_event_time,
    decode_tracked,
    parse_status,
)
from sscl_daemon.calls.merge import with_live
from sscl_daemon.calls.model import CallResult, CompletedCall
from sscl_daemon.calls.settling import Settling, saved_summary
from sscl_daemon.calls.state import SessionSnapshot
from sscl_daemon.calls.tracker import Tracker
from sscl_daemon.console.memory import RECENT_SKIPS
from sscl_daemon.daemon.groupcommit import STORE_ISOLATION, Batch, GroupCommitter
from sscl_daemon.logging import get_logger
from sscl_daemon.metrics import CounterChild, counter_child
from sscl_daemon.ringcentral.recorder import NotificationRecorder
from sscl_daemon.ringcentral.records import RecordError
from sscl_daemon.store import Checkpoint, DeadLetter, DeadLetterKind, Lease, Store

log = get_logger(__name__)

Committer = GroupCommitter[Checkpoint, DeadLetter]
CallsCommitted = Callable[[list[CompletedCall]], None]


def make_committer(
    store: Store,
    account: str,
    writers: Callable[[], Iterable[str]],
    *,
    interval: float,
    max_batch: int,
    on_committed: CallsCommitted | None = None,
    fence: Lease | None = None,
) -> Committer:
    """A group committer that writes batches with :meth:`Store.commit_batch`.

    With a ``fence`` (the daemon always gives the account's lease), the store refuses the
    batches once that lease is no longer current."""

    async def commit(batch: Batch[Checkpoint, DeadLetter]) -> None:
        await store.commit_batch(
            account,
            batch.calls,
            list(writers()),
            batch.checkpoint,
            batch.dead_letters,
            fence=fence,
        )
        for call in batch.calls:
            counter_child(metrics.CALLS_COMPLETED, result=call.result.value).inc()
            counter_child(metrics.CALLS_BY_SOURCE, source=call.source.value).inc()
        for letter in batch.dead_letters:
            counter_child(metrics.DEAD_LETTERS, kind=letter.kind.value).inc()
        if on_committed is not None and batch.calls:
            on_committed(batch.calls)

    return GroupCommitter(commit, interval=interval, max_batch=max_batch, isolation=STORE_ISOLATION)


class _SnapshotSessions(msgspec.Struct):
    """The part of a saved tracker snapshot that says which sessions it holds.

    Only for ``sscl-daemon status``, which reads the store without building a tracker; a
    running pipeline asks its tracker (:meth:`Tracker.sessions`).
    """

    sessions: tuple[SessionSnapshot, ...] = ()
    extra: bytes = b""


def snapshot_waiting(snapshot: bytes | None) -> tuple[int, datetime | None] | None:
    """Sessions a saved snapshot holds as waiting for their call-log record, and the
    earliest first seen of them (None if there is no snapshot or it is unreadable).

    For ``sscl-daemon status``: calls owed although the outbox may be empty (issue 19).
    """
    if snapshot is None:
        return None
    try:
        extra = msgspec.msgpack.decode(snapshot, type=_SnapshotSessions).extra
        return saved_summary(extra)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None


# Raw status codes whose counter apply() remembers; beyond that, odd codes are looked up.
_MAX_CACHED_CODES = 64
# Refused call-log records remembered so that each is dead-lettered once (16 bytes each).
_MAX_QUARANTINED = 10_000


def _events_received(status: str) -> CounterChild:
    # The labelled child, looked up once per status rather than once per event.
    return counter_child(metrics.EVENTS_RECEIVED, status=status)


def snapshot_session_count(snapshot: bytes | None) -> int | None:
    """How many sessions a saved snapshot holds (None if there is none or it is unreadable)."""
    if snapshot is None:
        return None
    try:
        return len(msgspec.msgpack.decode(snapshot, type=_SnapshotSessions).sessions)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class Pipeline:
    """Applies notifications to the tracker and queues the results for commit."""

    def __init__(
        self, tracker: Tracker, committer: Committer, recorder: NotificationRecorder | None = None
    ) -> None:
        self.tracker = tracker
        self._committer = committer
        # [ringcentral] record_notifications: every raw notification, for `replay`.
        self.recorder = recorder
        # Called with extension ids a complete session names that the directory does not
        # know: the account refreshes the directory before the session is decided.
        self.on_directory_wanted: Callable[[set[str]], None] | None = None
        self._newest: datetime | None = None
        # The RingCentral account id, as the events name it (for call-log records).
        self.account_id: str | None = None
        # Sessions that may have lost events (in flight across a gap or a restart, or
        # completed with a sequence number missing): the call log settles them.
        self.settling = Settling()
        # Gaps not yet closed from the call log -> where they start (the checkpoint waits).
        self._holds: dict[int, datetime] = {}
        self._next_hold = 0
        # Raw party status code -> its events-received counter (see apply).
        self._received_by_code: dict[str | None, CounterChild] = {}
        # Digests of the call-log records already dead-lettered (see quarantine_records).
        self._quarantined: dict[bytes, None] = {}

    def mark_suspects(self, sessions: Iterable[str]) -> None:
        fallback = self._newest or datetime.now(UTC)
        for tsid in sessions:
            self.settling.mark(tsid, self.tracker.first_event_time(tsid) or fallback)

    def suspects(self) -> list[str]:
        return self.settling.sessions()

    def due_suspects(self, now: datetime, silent: float) -> tuple[list[str], list[str]]:
        """Suspects to read the call log for now (see :meth:`Settling.due`)."""
        return self.settling.due(now, self.tracker.__contains__, silent)

    def suspect_since(self, sessions: Iterable[str]) -> datetime | None:
        """The earliest time one of ``sessions`` was first seen."""
        return self.settling.since(sessions)

    def settle_finished(self, found: Iterable[str]) -> set[str]:
        """Forget the suspects in ``found`` (read from the call log) that have ended.

        Ones the tracker still follows stay suspect: their end was not seen, so what the
        call log holds for them may not be final. Returns the sessions settled.
        """
        settled = {t for t in found if t in self.settling and t not in self.tracker}
        self.settle_suspects(settled)
        return settled

    def settle_suspects(self, sessions: Iterable[str]) -> None:
        """Forget suspects whose call-log records were queued for commit.

        The call log's version is the one logged, so the tracker drops its own (held
        back, or still in flight because the end was lost): a later expiry or late
        events would otherwise log the call again, maybe under other keys (``<id>:-``
        for an incomplete leg, or another set of parties).
        """
        for tsid in sessions:
            self.settling.settle(tsid)
            self.tracker.discard(tsid)

    def suspects_not_found(self, sessions: Iterable[str], now: datetime) -> list[str]:
        """A call-log read did not find ``sessions``; those whose retries are exhausted."""
        return self.settling.tried(sessions, now)

    def keep_waiting(self, tsid: str) -> None:
        """The platform says ``tsid`` is still live: its retries start again."""
        self.settling.restart(tsid)

    async def give_up_suspect(self, tsid: str) -> None:
        """No call-log record came: log what was seen of the session after all.

        Never silently dropped: calls derived from a history with a missing sequence number
        are logged ``incomplete`` (their result may be wrong), and a session the tracker
        still follows (its end was lost; the caller checked that the platform has ended
        it) is completed now instead of waiting for the tracker's session timeout.
        """
        self._hold_back([])  # other sessions' holes first: they must go on waiting
        waiting = self.settling.give_up(tsid)
        calls = self.tracker.settle(tsid)
        self._count_skipped()
        if waiting is not None:
            calls = waiting.held + calls
            if waiting.holed:
                calls = [
                    msgspec.structs.replace(call, result=CallResult.INCOMPLETE) for call in calls
                ]
        self.tracker.take_holed()  # this session's own: it is not waited for again
        await self._committer.add(calls, self.checkpoint())

    def _hold_back(self, calls: list[CompletedCall]) -> list[CompletedCall]:
        settling = self.settling
        holed = self.tracker.take_holed()
        for tsid, first in holed:
            # A notification of it never came: the call log decides (issue 13).
            settling.mark_holed(tsid, first)
        if not calls or not len(settling):
            return calls
        # A suspect completed with nothing missing (a recovery replayed what the gap
        # held) is logged live: only sessions that really lost events wait.
        unsure = {tsid for tsid, _ in holed}
        unsure.update(c.telephony_session_id for c in calls if c.result is CallResult.INCOMPLETE)
        return [
            call
            for call in calls
            if not settling.hold(call, complete=call.telephony_session_id not in unsure)
        ]

    def hold(self, since: datetime) -> int:
        """Keep the checkpoint at or before ``since`` until :meth:`release` (a gap being read)."""
        self._next_hold += 1
        self._holds[self._next_hold] = since
        return self._next_hold

    def release(self, hold: int) -> None:
        self._holds.pop(hold, None)

    def replace_tracker(self, tracker: Tracker) -> None:
        """Use ``tracker`` from now on (a reload that changed the tracker's options)."""
        tracker.restore(self.tracker.snapshot())
        self.tracker = tracker

    def in_flight_sessions(self) -> list[str]:
        """The sessions the tracker is following, oldest first."""
        return self.tracker.in_flight_by_arrival()

    def checkpoint(self) -> Checkpoint | None:
        low = self._newest
        oldest = self.tracker.oldest_in_flight()
        if oldest is not None and (low is None or oldest < low):
            low = oldest
        # Most events find neither a gap being closed nor a suspect: skip the scan then.
        if self._holds or len(self.settling):
            waiting = self.settling.oldest()
            for held in (*self._holds.values(), *(() if waiting is None else (waiting,))):
                low = held if low is None else min(low, held)
        if low is None:
            return None
        return Checkpoint(low)

    def restore(self, snapshot: bytes | None, checkpoint: Checkpoint | None) -> int:
        """After a restart: load the tracker's snapshot and resume the low-water mark.

        Returns the number of sessions restored. A snapshot this version cannot
        read raises ``ValueError`` (the caller dead-letters it and starts empty).
        """
        if checkpoint is not None and checkpoint.last_event_time is not None:
            self._newest = checkpoint.last_event_time
        if snapshot is None:
            return 0
        extra = self.tracker.restore(snapshot)
        # Held calls wait for their record across a restart too (issue 13: nothing lost).
        self.settling.load(extra)
        return len(self.tracker)

    async def on_notification(self, raw: bytes, received_at: datetime) -> None:
        if self.recorder is not None:
            self.recorder.write(raw)
        try:
            event = decode_tracked(raw)
            check_event_time(event, raw, received_at)
        except EventDecodeError as exc:
            _events_received("malformed").inc()
            log.warning("daemon.event.undecodable", reason=exc.reason, hint="kept as a dead letter")
            payload = exc.raw if isinstance(exc.raw, bytes) else exc.raw.encode()
            letter = DeadLetter(DeadLetterKind.EVENT, exc.reason, payload)
            await self._committer.add(dead_letters=[letter])
            return
        try:
            await self.apply(event)
        except Exception as exc:
            # A bug or an input the core cannot handle must cost one event, not the stream.
            _events_received("rejected").inc()
            log.error("daemon.event.tracker_failed", hint="kept as a dead letter", exc_info=exc)
            letter = DeadLetter(DeadLetterKind.EVENT, f"tracker error: {exc!r}", raw)
            await self._committer.add(dead_letters=[letter])

    async def apply(self, event: Notification | TrackedNotification) -> None:
        body = event.body
        code: str | None = None
        for party in body.parties:
            if party.status is not None and party.status.code:
                code = party.status.code
                break
        counter = self._received_by_code.get(code)
        if counter is None:
            # The enum value, so that odd codes cannot grow the label set without bound;
            # the raw codes seen are few (a dozen), so the lookup is cached per raw code.
            status = "none" if code is None else parse_status(code).value
            counter = _events_received(status)
            if len(self._received_by_code) < _MAX_CACHED_CODES:
                self._received_by_code[code] = counter
        counter.inc()
        tsid = body.telephony_session_id
        calls = self.tracker.apply(event)
        at = body.event_time if body.event_time.tzinfo else body.event_time.replace(tzinfo=UTC)
        if tsid in self.settling:
            self.settling.touch(tsid, at)
        if self._newest is None or at > self._newest:
            self._newest = at
        if self.account_id is None and body.account_id is not None:
            self.account_id = str(body.account_id)
        self._count_skipped()
        await self._committer.add(self._hold_back(calls), self.checkpoint())

    async def expire(self, now: datetime) -> int:
        """Complete sessions whose grace or timeout passed by ``now``; returns calls completed."""
        calls = self.tracker.expire(now)
        self._count_skipped()
        await self._committer.add(self._hold_back(calls), self.checkpoint())
        metrics.IN_FLIGHT_SESSIONS.set(len(self.tracker))
        return len(calls)

    async def add_reconciled(self, calls: list[CompletedCall]) -> None:
        """Calls found in the call log; already-logged keys are ignored by the store.

        Each is put together with what the live events of its session gave (kept back, or
        still followed by the tracker): ``calls/merge.py``.
        """
        policy = self.tracker.policy
        logged: list[CompletedCall] = []
        views: dict[str, tuple[dict[str, CompletedCall], bool] | None] = {}
        for call in calls:
            tsid = call.telephony_session_id
            if tsid not in views:
                views[tsid] = self._live_view(tsid)
            view = views[tsid]
            if view is not None:
                call = with_live(call, view[0].get(call.key), complete=view[1])
            decision = policy.explain(call) if policy is not None else None
            if decision is None or decision.logged:
                logged.append(call)
            else:
                metrics.CALLS_SKIPPED.labels(reason=str(decision.reason)).inc()
                RECENT_SKIPS.add(call, decision)
        await self._committer.add(logged)

    async def quarantine_records(self, errors: Sequence[RecordError]) -> None:
        """Call-log records the reconciler refused, kept as dead letters with the reason.

        Each once per run: a gap's re-reads and the settling reads meet the same record
        again (told by its bytes: a reason may name the time of the read). The digests
        remembered are bounded, the oldest forgotten first."""
        letters: list[DeadLetter] = []
        for error in errors:
            digest = hashlib.blake2b(error.raw, digest_size=16).digest()
            if digest in self._quarantined:
                continue
            self._quarantined[digest] = None
            if len(self._quarantined) > _MAX_QUARANTINED:
                del self._quarantined[next(iter(self._quarantined))]
            letters.append(DeadLetter(DeadLetterKind.CALL_LOG_RECORD, error.reason, error.raw))
        if letters:
            await self._committer.add(dead_letters=letters)

    def unseen(self, calls: Iterable[CompletedCall]) -> list[CompletedCall]:
        """The calls of sessions the tracker never saw (nothing of them is logged live)."""
        knows = self.tracker.knows
        return [call for call in calls if not knows(call.telephony_session_id)]

    def _live_view(self, tsid: str) -> tuple[dict[str, CompletedCall], bool] | None:
        """The tracker's calls of a session (kept back or in flight) by key, and no-hole."""
        waiting = self.settling.get(tsid)
        if waiting is not None and waiting.held:
            return {c.key: c for c in waiting.held}, not waiting.holed
        peeked = self.tracker.peek(tsid)
        if peeked is None:
            return None
        calls, complete = peeked
        return {c.key: c for c in calls}, complete

    def _count_skipped(self) -> None:
        tracker = self.tracker
        for call, decision in tracker.take_skipped():
            metrics.CALLS_SKIPPED.labels(reason=str(decision.reason)).inc()
            RECENT_SKIPS.add(call, decision)  # for the console's Calls page
            log.debug("daemon.call.skipped", call=call.key, reason=str(decision))
        # No session ends silently: one that gave no call log at all is counted and said.
        for tsid, reason in tracker.take_unlogged():
            metrics.CALLS_SKIPPED.labels(reason="no_user").inc()
            log.info("daemon.session.unlogged", session=tsid, reason=reason)
        wanted = tracker.take_directory_wanted()
        if wanted and self.on_directory_wanted is not None:
            self.on_directory_wanted(wanted)

    async def snapshot(self, save: Callable[[bytes], Awaitable[None]]) -> None:
        """Snapshot the tracker now; save it once everything before it is committed."""
        data = self.tracker.snapshot(self.settling.dump())
        await self._committer.flush()
        await save(data)
