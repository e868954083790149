"""Sessions waiting to be settled from the call log: who, since when, and when to look again.

Where it sits: between the tracker (``calls/tracker.py``) and the daemon's suspect loop
(``daemon/accounts.py``). A session whose live history may be missing events -- it was in
flight across a WebSocket gap or a restart, its start was never seen, or its sequence
numbers have a hole -- is not logged from that history alone: its call-log record decides
(``ringcentral/calllog.py``, put together with what was seen by ``calls/merge.py``). This
module is the pure bookkeeping of those sessions: no I/O, no clock (``now`` is passed in).

A session's phases here are the ``SUSPECT`` and ``HELD_BACK`` rows of the lifecycle
table (:mod:`sscl_daemon.calls.lifecycle`), and every change goes through its
:func:`~sscl_daemon.calls.lifecycle.step`: marked at a gap (``SUSPECT``, still followed)
or completed with a hole (``HELD_BACK``); a suspect the tracker then completes with
nothing missing is logged live after all (``COMPLETE``: a WebSocket recovery replayed
what the gap held, so the call log is not needed); due for a call-log read once the tracker
finished it, or once it has been silent while followed; settled from its record
(``SETTLED_ELSEWHERE``), or read again after ``RETRY_AFTER_S[attempts]``, and when the
schedule is exhausted given up (``GIVEN_UP``: logged from what was seen, calls of a
history with a hole as ``incomplete``), never dropped silently.

Call-log records appear 15-30 s after a call ends, but a warm transfer's records only once
the whole call (both sessions) has ended, and the platform's delay is not bounded by any
document: the schedule retries for about two hours, reading less and less often. One
call-log read serves every session due in the same round (the call log is in the Heavy
rate group, 10 requests a minute), so the schedule bounds the reads per session, not per
account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from sscl_daemon.calls.lifecycle import Phase, Trigger, step
from sscl_daemon.calls.model import CompletedCall

# Seconds to wait after each unsuccessful call-log read of a session (bounded: ~2 hours).
RETRY_AFTER_S = (30.0, 60.0, 120.0, 240.0, 480.0, 900.0, 1800.0, 3600.0)


@dataclass(slots=True)
class Waiting:
    """One session waiting for its call-log record."""

    since: datetime  # first seen (or the gap start): the call-log window starts before it
    last_event: datetime  # newest event time seen of it
    phase: Phase = Phase.SUSPECT  # or HELD_BACK once the tracker finished it
    holed: bool = False  # the tracker completed it with a sequence number missing
    held: list[CompletedCall] = field(default_factory=list)  # the tracker's view, kept back
    attempts: int = 0  # call-log reads that did not find it
    next_read: datetime | None = None  # None: at the next round it is due


class _Saved(msgspec.Struct, array_like=True, frozen=True):
    """One waiting session in a snapshot (kept with the tracker's, see :meth:`Settling.dump`)."""

    tsid: str
    since: datetime
    last_event: datetime
    phase: str
    holed: bool
    held: tuple[CompletedCall, ...]


def _decode(data: bytes) -> list[_Saved]:
    if not data:
        return []
    try:
        return msgspec.msgpack.decode(data, type=list[_Saved])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"the sessions waiting for the call log cannot be read: {exc}") from None


def saved_summary(data: bytes) -> tuple[int, datetime | None]:
    """(sessions waiting, the earliest first seen) of a :meth:`Settling.dump` (ValueError)."""
    saved = _decode(data)
    return len(saved), min((item.since for item in saved), default=None)


class Settling:
    """The sessions waiting for the call log (see the module docstring)."""

    def __init__(self, retry_after: tuple[float, ...] = RETRY_AFTER_S) -> None:
        self._retry = tuple(timedelta(seconds=s) for s in retry_after)
        self._waiting: dict[str, Waiting] = {}

    def __contains__(self, tsid: object) -> bool:
        return tsid in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def sessions(self) -> list[str]:
        return list(self._waiting)

    def mark(self, tsid: str, since: datetime) -> None:
        """``tsid`` may have lost events (a gap, a restart): it waits for the call log."""
        waiting = self._waiting.get(tsid)
        if waiting is None:
            phase, _ = step(Phase.OPEN, Trigger.GAP)
            self._waiting[tsid] = Waiting(since, since, phase)
        else:
            waiting.phase, _ = step(waiting.phase, Trigger.GAP)

    def mark_holed(self, tsid: str, since: datetime) -> None:
        """The tracker completed ``tsid`` with a sequence number missing."""
        waiting = self._waiting.get(tsid)
        if waiting is None:
            # completed (or timed out) by the tracker: both go the same way
            phase, _ = step(Phase.OPEN, Trigger.HOLE)
            waiting = self._waiting[tsid] = Waiting(since, since, phase)
        else:
            waiting.phase, _ = step(waiting.phase, Trigger.HOLE)
        waiting.holed = True

    def touch(self, tsid: str, at: datetime) -> None:
        """An event of ``tsid`` arrived (the silence test of followed sessions)."""
        waiting = self._waiting.get(tsid)
        if waiting is not None and at > waiting.last_event:
            waiting.last_event = at

    def hold(self, call: CompletedCall, complete: bool = False) -> bool:
        """Keep the tracker's call back if its session waits; whether it was kept.

        ``complete``: the tracker completed the session with every sequence number and
        every party's end seen. A suspect's call is then logged as it is (the gap took
        nothing of it: a recovery replayed what was missed, or nothing happened in it),
        and the session stops waiting.
        """
        tsid = call.telephony_session_id
        waiting = self._waiting.get(tsid)
        if waiting is None:
            return False
        if waiting.phase is Phase.SUSPECT:
            if complete:
                self._leave(tsid, Trigger.NOTHING_LOST)
                return False
            waiting.phase, _ = step(waiting.phase, Trigger.GRACE_PASSED)
        waiting.held.append(call)
        return True

    def get(self, tsid: str) -> Waiting | None:
        return self._waiting.get(tsid)

    def due(
        self, now: datetime, followed: Callable[[str], bool], silent: float
    ) -> tuple[list[str], list[str]]:
        """Sessions to read the call log for now: (finished by the tracker, silent while followed).

        A finished session has ended: its record only needs reading. One the tracker still
        follows is probably still going: it is due only after ``silent`` seconds without an
        event (its end may have been lost).
        """
        quiet_after = timedelta(seconds=silent)
        finished: list[str] = []
        quiet: list[str] = []
        for tsid, waiting in self._waiting.items():
            if waiting.next_read is not None and waiting.next_read > now:
                continue
            if not followed(tsid):
                finished.append(tsid)
            elif now - waiting.last_event >= quiet_after:
                quiet.append(tsid)
        return finished, quiet

    def since(self, sessions: Iterable[str]) -> datetime | None:
        """The earliest time one of ``sessions`` was first seen."""
        found = (self._waiting[t].since for t in sessions if t in self._waiting)
        return min(found, default=None)

    def tried(self, sessions: Iterable[str], now: datetime) -> list[str]:
        """A read did not find ``sessions``: schedule the next one; return those out of tries."""
        exhausted: list[str] = []
        for tsid in sessions:
            waiting = self._waiting.get(tsid)
            if waiting is None:
                continue
            if waiting.attempts >= len(self._retry):
                exhausted.append(tsid)
                continue
            waiting.next_read = now + self._retry[waiting.attempts]
            waiting.attempts += 1
        return exhausted

    def restart(self, tsid: str) -> None:
        """Still live on the platform after all: start the schedule again (it has not ended)."""
        waiting = self._waiting.get(tsid)
        if waiting is not None:
            waiting.attempts = 0
            waiting.next_read = None

    def settle(self, tsid: str) -> Waiting | None:
        """``tsid``'s record was read and logged: forget it (``SETTLED_ELSEWHERE``)."""
        return self._leave(tsid, Trigger.RECORD)

    def give_up(self, tsid: str) -> Waiting | None:
        """No record came for ``tsid``: forget it; the caller logs what was seen."""
        return self._leave(tsid, Trigger.NO_RECORD)

    def _leave(self, tsid: str, trigger: Trigger) -> Waiting | None:
        waiting = self._waiting.pop(tsid, None)
        if waiting is not None:
            waiting.phase, _ = step(waiting.phase, trigger)
        return waiting

    def oldest(self) -> datetime | None:
        """The earliest ``since`` of a waiting session (the checkpoint must not pass it)."""
        return min((w.since for w in self._waiting.values()), default=None)

    def dump(self) -> bytes:
        """The waiting sessions, for the snapshot: a restart must not forget held calls.

        The retry schedule starts again after a restart (the first read comes at once).
        """
        saved = [
            _Saved(tsid, w.since, w.last_event, w.phase.value, w.holed, tuple(w.held))
            for tsid, w in self._waiting.items()
        ]
        return msgspec.msgpack.encode(saved) if saved else b""

    def load(self, data: bytes) -> None:
        """Add the sessions of a :meth:`dump` (ValueError if it cannot be read)."""
        for item in _decode(data):
            self._waiting[item.tsid] = Waiting(
                item.since, item.last_event, Phase(item.phase), item.holed, list(item.held)
            )

    def overdue(self, now: datetime) -> tuple[int, float]:
        """(sessions read at least once without a record, age in s of the oldest waiting)."""
        tried = sum(1 for w in self._waiting.values() if w.attempts)
        oldest = self.oldest()
        return tried, 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
