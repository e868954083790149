"""The per-account call state machine: notifications in, completed calls out.

Sits between ``ringcentral/`` (decoded :class:`~sscl_daemon.calls.events.Notification`
objects, or the leaner :class:`~sscl_daemon.calls.events.TrackedNotification` that
:func:`~sscl_daemon.calls.events.decode_tracked` gives for the per-event hot path)
and the store's outbox. Pure: no clock reads, no I/O. Time comes
from the events (``eventTime``) or from the ``now`` the caller passes to
:meth:`Tracker.expire`.

How a session is followed (RingCentral "Calculating Call Time Metrics":
group by ``telephonySessionId``, order by ``sequence``, events may arrive out
of order):

* duplicates are dropped by notification ``uuid`` (re-delivery after a
  WebSocket recovery) and by per-session ``sequence``;
* a session is *complete* when every known party is final (``Disconnected``
  or ``Gone``; a party in ``VoiceMail`` counts once everybody else is final),
  the newest event is not a hand-off (``Disconnected`` with ``Pickup``,
  ``CallSwitch`` or a blind transfer: somebody takes over), and a grace
  period in *event time* has passed since its last event — so a party that
  appears after another one is ``Gone`` (transfers) is still seen. When the
  sequence numbers have a hole, or a party is still in ``VoiceMail``, the
  grace is at least ``gap_grace_s``: the missing notification may still come. With ``completion_grace_s = 0`` a
  whole call completes on its own last event;
* since nothing reads a clock, a pending completion happens on a later
  event of any session (they advance the tracker's event clock) or in
  :meth:`expire`, which the daemon calls periodically with the wall clock
  (and ``sscl-daemon replay`` once at the end of input);
* a session without events for ``session_timeout_s`` is completed by
  :meth:`expire` with result ``incomplete`` for the legs whose end was never
  seen; it never stays in memory;
* events of a session completed recently are counted as ``late`` and dropped;
* :meth:`discard` forgets a session without deriving anything from it (the daemon
  logged it from the RingCentral call log instead): it is remembered exactly as a
  completed one, so its late events are dropped too and cannot start a new session
  that a later expiry would log a second time.

The phases a session goes through are the first rows of the lifecycle table
(:mod:`sscl_daemon.calls.lifecycle`: open, grace pending, awaiting directory,
complete, expired); this module is their hand-optimised form (a plain reference
implementation checks it on random event orders, tests/calls/test_lifecycle.py).
Two things it hands to the daemon instead of deciding alone: a session
completed with a sequence number missing (:meth:`take_holed`: its calls wait for
the call log, :mod:`sscl_daemon.calls.settling`), and extension ids a complete
session names that the directory does not know (:meth:`take_directory_wanted`:
the session waits up to ``directory_wait_s`` for a fresh directory).

Where the pieces are: what the tracker holds, and every read of it (counters, what
is in flight, phases, the reports handed over with ``take_*``), is
:class:`~sscl_daemon.calls.tracker_state.TrackerState`, which :class:`Tracker`
extends with the transitions; the per-event lookup of status and reason spellings
is :mod:`~sscl_daemon.calls.status_table`, the saved form
:mod:`~sscl_daemon.calls.tracker_snapshot`.

With a :class:`~sscl_daemon.calls.policy.Policy`, :meth:`apply` and
:meth:`expire` return only the calls the policy logs; the skipped ones and
the policy's reasons are collected for :meth:`take_skipped`. Without a
policy every candidate leg is returned.
"""

from __future__ import annotations

import heapq
from collections import deque
from datetime import UTC, datetime
from functools import lru_cache
from sys import intern

import msgspec

from sscl_daemon.calls.codes import ENDED, IN_VOICEMAIL, StatusCode
from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.legs import derive_calls
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.state import (
    MAX_PARTIES,
    MAX_SEQUENCE,
    PARTY_SHIFT,
    SEQ_SHIFT,
    PartyState,
    SessionState,
    restore_session,
    snapshot_session,
)
from sscl_daemon.calls.status_table import (
    BY_REASON_TEXT,
    BY_STATUS_TEXT,
    HANDOFF,
    reason_entry,
    status_entry,
)
from sscl_daemon.calls.timeline import to_datetime, to_ms
from sscl_daemon.calls.tracker_snapshot import (
    SNAPSHOT_VERSION,
    SnapshotError,
    TrackerSnapshot,
    decode_snapshot,
)
from sscl_daemon.calls.tracker_state import (
    COUNTER_NAMES,
    RecentSet,
    TrackerCounters,
    TrackerOptions,
    TrackerState,
)
from sscl_daemon.calls.wire import Notification, TrackedNotification

# Importable from here, where the tracker's users have always found them.
__all__ = ["SnapshotError", "Tracker", "TrackerCounters", "TrackerOptions"]

# Bound once: an enum member read through its class costs about 50 ns in Python 3.11.
_DISCONNECTED = StatusCode.DISCONNECTED
# The two lookup tables, assigned here rather than used under their imported names:
# Python 3.11 compiles ``name.get(x)`` on a name bound by an import as an attribute load
# and a call (it takes the name for a module) instead of a method call, which costs about
# 2 % of apply() (two lookups per party report, seen with dis.dis(adaptive=True)).
_BY_STATUS_TEXT = BY_STATUS_TEXT
_BY_REASON_TEXT = BY_REASON_TEXT
_END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)


class Tracker(TrackerState):
    """Follows every telephony session of an account; see the module docstring."""

    # ---- configuration ----

    def replace_directory(self, directory: Directory | None) -> None:
        """Use a refreshed extension directory for sessions completed from now on.

        Sessions parked for an unknown extension complete at the next event or expiry.
        """
        self._directory = directory
        if self._policy is not None:
            self._policy.replace_directory(directory)
        for tsid in self._parked:
            session = self._sessions.get(tsid)
            if session is not None and session.deadline is not None:
                session.deadline = self._clock
                self._tick += 1
                heapq.heappush(self._heap, (self._clock, self._tick, tsid))
        self._parked.clear()

    def settle(self, telephony_session_id: str) -> list[CompletedCall]:
        """Complete a session now from what was seen (legs whose end was not seen: incomplete).

        For a session the platform says has ended but whose end never arrived and whose
        call-log record never came: it must not wait for ``session_timeout_s``.
        """
        session = self._sessions.get(telephony_session_id)
        if session is None:
            return []
        return self._finish(session, timed_out=True)

    # ---- the state machine ----

    def apply(self, event: Notification | TrackedNotification) -> list[CompletedCall]:
        """Apply one notification; return the calls that completed because of it.

        Either view of it will do: :func:`~sscl_daemon.calls.events.decode_tracked`'s
        lean one is the cheaper to decode.
        """
        count = self._count
        count["events"] += 1
        uuid = event.uuid
        if uuid is not None:
            recent = self._uuids_new
            if uuid in recent or uuid in self._uuids_old:
                count["duplicates"] += 1
                return []
            recent.add(uuid)
            if len(recent) >= self._dedupe_window:
                self._uuids_old = recent
                self._uuids_new = set()
        body = event.body
        when = body.event_time
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        at = int(when.timestamp() * 1000 + 0.5)
        clock = self._clock
        if at > clock:
            self._clock = clock = at
        tsid = body.telephony_session_id
        seq = body.sequence
        sessions = self._sessions
        in_range = 0 <= seq <= MAX_SEQUENCE
        # Popped and put back at the end: the dict stays in order of last event for expire().
        session = sessions.pop(tsid, None) if in_range else None
        if session is None:
            # Only a session not in flight can have completed already (the two never
            # overlap), so events of live calls skip the two big set lookups.
            finished = self._finished
            if tsid in finished.new or tsid in finished.old:
                count["late"] += 1
                return self._complete_due(clock)
            if not in_range:
                count["rejected"] += 1
                return self._complete_due(clock)
            session = SessionState(tsid)
            session.first_ms = session.last_ms = at
            session.min_seq = seq
            count["sessions_started"] += 1
            self._arrivals.append(tsid)
        sessions[tsid] = session
        session.touched_ms = clock
        bit = 1 << seq
        if session.seen & bit:
            count["duplicates"] += 1
            return self._complete_due(clock)
        session.seen |= bit
        # min <= max and first <= last always hold, so an event in order (the usual
        # case) needs one comparison each.
        max_seq = session.max_seq
        if seq > max_seq:
            session.max_seq = seq
        elif seq < max_seq:
            count["out_of_order"] += 1
            if seq < session.min_seq:
                session.min_seq = seq
        if at > session.last_ms:
            session.last_ms = at
        elif at < session.first_ms:
            session.first_ms = at
        if session.session_id is None and body.session_id is not None:
            session.session_id = body.session_id
        if session.origin is None and body.origin is not None and body.origin.type:
            session.origin = intern(body.origin.type)
        if session.account_id is None:
            account = body.account_id or _account_from_path(event.event)
            session.account_id = intern(account) if isinstance(account, str) else None
        ending = False
        # Party ids repeat the session id ("p-<hex>-<n>" in "s-<hex>"); only the tail
        # is kept as the party's key (SessionState.party_key, inlined with the rest of
        # this loop: it is the per-event hot path).
        tail = tsid[2:] if tsid.startswith("s-") else None
        parties = session.parties
        steps = session.steps
        for party in body.parties:
            pid = party.id
            key = pid[len(tsid) :] if tail is not None and pid.startswith(tail, 2) else pid
            index = 0
            for state in parties:
                if state.party_id == key:
                    break
                index += 1
            else:
                if index >= MAX_PARTIES:
                    count["rejected"] += 1
                    continue
                # Interned once per party: every session of the call shares the short keys.
                state = PartyState(intern(key), first_seq=seq)
                parties.append(state)
            newest = seq > state.last_seq
            state.merge(party, newest)
            # An event newer than the party's last cannot be older than its first.
            if not newest and seq < state.first_seq:
                state.first_seq = seq
            if session.account_id is None and party.account_id is not None:
                session.account_id = intern(party.account_id)
            status = party.status
            if status is None:
                raw_code = raw_reason = None
            else:
                raw_code = status.code
                raw_reason = status.reason
            found = _BY_STATUS_TEXT.get(raw_code)
            if found is None:
                found = status_entry(raw_code)
            code, code_bits, can_end, odd_code = found
            found_reason = _BY_REASON_TEXT.get(raw_reason)
            if found_reason is None:
                found_reason = reason_entry(raw_reason)
            reason, reason_bits, odd_reason = found_reason
            if newest:
                state.last_seq = seq
                state.last_code = code
                state.last_reason = reason
                # The raw text is kept only for spellings outside the known codes
                # (read before written: almost always both stay None).
                if odd_code or state.last_raw is not None:
                    state.last_raw = raw_code if odd_code else None
                if odd_reason or state.last_raw_reason is not None:
                    state.last_raw_reason = raw_reason if odd_reason else None
            steps.append(at)
            steps.append((seq << SEQ_SHIFT) | (index << PARTY_SHIFT) | code_bits | reason_bits)
            if can_end:
                ending = True
        if ending or session.deadline is not None:
            self._evaluate(session)
        heap = self._heap
        if heap and heap[0][0] <= clock:
            return self._complete_due(clock)
        return []

    def _evaluate(self, session: SessionState) -> None:
        """Schedule the session's completion if every party is final, else unschedule it.

        Called after a final status was applied, or for a session already
        scheduled: without a final status an unscheduled session cannot have
        become complete.
        """
        session.deadline = None
        parties = session.parties
        if not parties:
            return
        final = in_voicemail = 0
        newest: PartyState | None = None
        for party in parties:
            code = party.last_code
            if code in ENDED:
                final += 1
            elif code in IN_VOICEMAIL:
                in_voicemail += 1
            else:
                return
            if newest is None or party.last_seq > newest.last_seq:
                newest = party
        if final == 0:
            return
        if (
            newest is not None
            and newest.last_code is _DISCONNECTED
            and newest.last_reason in HANDOFF
        ):
            return
        # A mailbox party normally reports its own end too: wait as for a missing event.
        sure = session.contiguous() and not in_voicemail
        grace = self._grace_ms if sure else self._gap_grace_ms
        deadline = session.last_ms + grace
        session.deadline = deadline
        self._tick += 1
        heapq.heappush(self._heap, (deadline, self._tick, session.tsid))

    def _complete_due(self, now_ms: int) -> list[CompletedCall]:
        heap = self._heap
        if not heap or heap[0][0] > now_ms:
            return []
        out: list[CompletedCall] = []
        while heap and heap[0][0] <= now_ms:
            deadline, _, tsid = heapq.heappop(heap)
            session = self._sessions.get(tsid)
            if session is not None and session.deadline == deadline:
                if self._park(session, now_ms):
                    continue
                out.extend(self._finish(session, timed_out=False))
        return out

    def _park(self, session: SessionState, now_ms: int) -> bool:
        """Wait for a fresh directory if the session names extensions it does not know yet."""
        directory = self._directory
        if directory is None:
            return False
        asked = self._asked
        new: list[str] = []
        for party in session.parties:
            ext_id = party.extension_id
            if ext_id is not None and directory.is_user(ext_id) is None and ext_id not in asked:
                new.append(ext_id)
        if not new:
            return False
        for ext_id in new:
            asked.add(ext_id)
            self._wanted.add(ext_id)
        self._parked.add(session.tsid)
        session.deadline = deadline = now_ms + self._directory_wait_ms
        self._tick += 1
        heapq.heappush(self._heap, (deadline, self._tick, session.tsid))
        return True

    def expire(self, now: datetime) -> list[CompletedCall]:
        """Complete sessions whose grace has passed and time out silent ones (at ``now``)."""
        now_ms = to_ms(now if now.tzinfo is not None else now.replace(tzinfo=UTC))
        out = self._complete_due(now_ms)
        limit = now_ms - self._timeout_ms
        stale: list[SessionState] = []
        for session in self._sessions.values():
            # Sessions sit in the dict in order of their last event (re-inserted on each).
            if session.touched_ms > limit:
                break
            stale.append(session)
        for session in stale:
            out.extend(self._finish(session, timed_out=True))
        return out

    def flush(self) -> list[CompletedCall]:
        """Complete every session as :meth:`expire` would at the end of time."""
        return self.expire(_END_OF_TIME)

    def _finish(self, session: SessionState, timed_out: bool) -> list[CompletedCall]:
        tsid = session.tsid
        del self._sessions[tsid]
        self._finished.add(tsid)
        self._count["sessions_expired" if timed_out else "sessions_completed"] += 1
        if not session.contiguous():
            self._holed.append((tsid, to_datetime(session.first_ms)))
        policy = self._policy
        self._parked.discard(tsid)
        calls = derive_calls(session, self._context(), timed_out)
        if not calls:
            self._unlogged.append((tsid, _no_log_reason(session)))
        if policy is None:
            self._count["calls"] += len(calls)
            return calls
        logged: list[CompletedCall] = []
        for call in calls:
            decision = policy.skipped(call)
            if decision is None:
                logged.append(call)
            else:
                self._skipped.append((call, decision))
        self._count["calls"] += len(logged)
        self._count["skipped"] += len(calls) - len(logged)
        return logged

    def discard(self, telephony_session_id: str) -> bool:
        """Forget a session without deriving calls from it; return whether it was followed.

        For a session settled elsewhere (the daemon logged it from the call log): no
        later event, :meth:`expire` or :meth:`flush` derives anything from it. The id
        joins the completed ones (also when it was not followed: events of it may still
        be on their way), so its late events are counted as ``late`` and dropped for as
        long as a completed session's would be (``finished_window`` sessions, kept in
        the snapshot: a restart does not bring it back either). Its entry in the
        completion heap, if any, is skipped when due (the session is gone).
        """
        session = self._sessions.pop(telephony_session_id, None)
        if telephony_session_id not in self._finished:
            # Once only: a key in both generations would be written twice to the snapshot.
            self._finished.add(telephony_session_id)
        if session is None:
            return False
        self._count["sessions_discarded"] += 1
        return True

    # ---- persistence ----

    def snapshot(self, extra: bytes = b"") -> bytes:
        """The in-flight state as compact msgpack (for the store's checkpoint).

        ``extra`` is kept with it and given back by :meth:`restore`.
        """
        snap = TrackerSnapshot(
            version=SNAPSHOT_VERSION,
            clock_ms=self._clock,
            sessions=tuple(snapshot_session(s) for s in self._sessions.values()),
            finished=tuple(self._finished),
            counters=dict(self._count),
            extra=extra,
        )
        return msgspec.msgpack.encode(snap)

    def restore(self, data: bytes) -> bytes:
        """Replace the in-flight state with a :meth:`snapshot`; raise SnapshotError if unusable.

        Returns the snapshot's ``extra``.
        """
        snap = decode_snapshot(data)
        self._sessions = {}
        self._ctx = None
        self._heap = []
        self._clock = snap.clock_ms
        for item in snap.sessions:
            session = restore_session(item)
            self._sessions[session.tsid] = session
            self._evaluate(session)
        ordered = sorted(self._sessions.values(), key=lambda s: s.first_ms)
        self._arrivals = deque(s.tsid for s in ordered)
        self._finished = RecentSet(self._options.finished_window)
        for tsid in snap.finished:
            self._finished.add(tsid)
        for name in COUNTER_NAMES:
            self._count[name] = snap.counters.get(name, 0)
        return snap.extra


def _no_log_reason(session: SessionState) -> str:
    """Why a session gave no call log at all (for the daemon's count and log line)."""
    if not any(party.extension_id for party in session.parties):
        return "no RingCentral extension took part"
    return "no user took part (only IVR, queue or other system extensions)"


# Read for every new session; an account has one event path per subscribed
# extension, so the same few recur (bounded, in case of odd input).
@lru_cache(maxsize=1024)
def _account_from_path(event: str | None) -> str | None:
    """The account id in an event path like ``/restapi/v1.0/account/123/telephony/sessions``."""
    if not event:
        return None
    parts = event.split("/")
    try:
        value = parts[parts.index("account") + 1]
    except (ValueError, IndexError):
        return None
    return value if value and value != "~" else None
