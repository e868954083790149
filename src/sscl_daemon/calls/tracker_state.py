"""What the tracker holds, set up in one place, and every read of it.

Where it sits: :class:`~sscl_daemon.calls.tracker.Tracker` is a :class:`TrackerState`
plus the transitions (events in, completed calls out). This module is the other half:
the options it is built with, every attribute it keeps (sessions in flight, the
completion heap, the recent uuids and finished sessions, the reports it collects for the
daemon), and what the daemon, the console and the settling ask of it -- counters, what
is in flight, a session's phase, the reports handed over (``take_*``), a preview of a
session's calls. Nothing here moves a session on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.leg_builder import LegContext
from sscl_daemon.calls.legs import derive_calls
from sscl_daemon.calls.lifecycle import Phase
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.policy import Decision, MissedAttribution, Policy, PolicyOptions
from sscl_daemon.calls.state import SessionState
from sscl_daemon.calls.timeline import to_datetime


@dataclass(frozen=True, slots=True)
class TrackerOptions:
    completion_grace_s: float = 2.0
    session_timeout_s: float = 14400.0
    default_region: str | None = None
    # Minimum grace while a sequence number of the session is missing.
    gap_grace_s: float = 5.0
    # How long a complete session whose extensions the directory does not know waits for a
    # fresh directory (take_directory_wanted) before it is decided without one.
    directory_wait_s: float = 30.0
    # Notification uuids remembered for re-delivery dedupe (a recovery replays <= 100).
    dedupe_window: int = 20_000
    # Completed session ids remembered so that late events do not start a new session.
    finished_window: int = 50_000
    # Skipped calls kept for take_skipped(); the oldest are dropped beyond this.
    skipped_window: int = 10_000

    def __post_init__(self) -> None:
        for name in ("completion_grace_s", "session_timeout_s", "gap_grace_s", "directory_wait_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrackerOptions.{name} must be >= 0")
        if self.session_timeout_s <= 0:
            raise ValueError("TrackerOptions.session_timeout_s must be > 0")


@dataclass(frozen=True, slots=True)
class TrackerCounters:
    events: int
    duplicates: int
    out_of_order: int
    late: int
    rejected: int
    sessions_started: int
    sessions_completed: int
    sessions_expired: int
    sessions_discarded: int
    calls: int
    skipped: int
    in_flight: int
    pending: int


COUNTER_NAMES = (
    "events",
    "duplicates",
    "out_of_order",
    "late",
    "rejected",
    "sessions_started",
    "sessions_completed",
    "sessions_expired",
    "sessions_discarded",
    "calls",
    "skipped",
)


class RecentSet:
    """Membership of the last N to 2N keys added (two generations, O(1), bounded)."""

    __slots__ = ("limit", "new", "old")

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.new: set[str] = set()
        self.old: set[str] = set()

    def __contains__(self, key: object) -> bool:
        return key in self.new or key in self.old

    def add(self, key: str) -> None:
        self.new.add(key)
        if len(self.new) >= self.limit:
            self.old = self.new
            self.new = set()

    def __iter__(self) -> Iterator[str]:
        yield from self.old
        yield from self.new


class TrackerState:
    """The tracker's state and its reads; :class:`~sscl_daemon.calls.tracker.Tracker` moves it."""

    def __init__(
        self,
        directory: Directory | None,
        options: TrackerOptions | None = None,
        policy: Policy | None = None,
    ) -> None:
        self._options = options or TrackerOptions()
        self._directory = directory
        self._policy = policy
        self._grace_ms = round(self._options.completion_grace_s * 1000)
        self._gap_grace_ms = max(self._grace_ms, round(self._options.gap_grace_s * 1000))
        self._timeout_ms = round(self._options.session_timeout_s * 1000)
        self._dedupe_window = self._options.dedupe_window
        self._sessions: dict[str, SessionState] = {}
        # Sessions in the order their first event arrived (oldest_in_flight: the daemon's
        # checkpoint); entries of sessions that left are dropped lazily from the front. A
        # deque of the interned ids: 8 bytes a session.
        self._arrivals: deque[str] = deque()
        self._heap: list[tuple[int, int, str]] = []
        self._tick = 0
        self._clock = 0
        # Two generations of recent notification uuids: between N and 2N are remembered.
        self._uuids_new: set[str] = set()
        self._uuids_old: set[str] = set()
        self._finished = RecentSet(self._options.finished_window)
        self._skipped: deque[tuple[CompletedCall, Decision]] = deque(
            maxlen=self._options.skipped_window
        )
        # Sessions completed with a sequence number missing (a hole, or the start never
        # seen), for take_holed(): their calls are not sure enough to log as they are.
        self._holed: deque[tuple[str, datetime]] = deque(maxlen=self._options.skipped_window)
        # Unknown extension ids asked for once (a fresh directory is wanted before deciding),
        # the ones not yet handed to the daemon, and the sessions parked for them.
        self._directory_wait_ms = round(self._options.directory_wait_s * 1000)
        self._asked = RecentSet(self._options.finished_window)
        self._wanted: set[str] = set()
        self._parked: set[str] = set()
        # Sessions that ended without any call log or skip decision, with why.
        self._unlogged: deque[tuple[str, str]] = deque(maxlen=self._options.skipped_window)
        self._count = dict.fromkeys(COUNTER_NAMES, 0)
        self._ctx: LegContext | None = None
        self._ctx_options: PolicyOptions | None = None

    # ---- configuration ----

    @property
    def directory(self) -> Directory | None:
        return self._directory

    @property
    def policy(self) -> Policy | None:
        return self._policy

    def _context(self) -> LegContext:
        """The leg derivation's view of directory and options (rebuilt when they change)."""
        options = self._policy.options if self._policy is not None else None
        ctx = self._ctx
        if ctx is None or ctx.directory is not self._directory or self._ctx_options is not options:
            ctx = LegContext(
                directory=self._directory,
                default_region=self._options.default_region,
                missed_attribution=options.missed_attribution
                if options
                else MissedAttribution.RANG,
                missed_owner_extension=options.missed_owner_extension if options else None,
                peer=self._sessions.get,
            )
            self._ctx = ctx
            self._ctx_options = options
        return ctx

    # ---- introspection ----

    def counters(self) -> TrackerCounters:
        return TrackerCounters(
            **self._count,
            in_flight=len(self._sessions),
            pending=sum(1 for s in self._sessions.values() if s.deadline is not None),
        )

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, telephony_session_id: object) -> bool:
        return telephony_session_id in self._sessions

    def knows(self, telephony_session_id: str) -> bool:
        """Whether the session is followed or completed recently (settled ones included)."""
        return telephony_session_id in self._sessions or telephony_session_id in self._finished

    def sessions(self) -> list[str]:
        """The ids of the sessions in flight, least recently active first (a copy)."""
        return list(self._sessions)

    def oldest_in_flight(self) -> datetime | None:
        """The first event time of the session in flight whose first event arrived first.

        The daemon's checkpoint stays at or before it: reading the call log from there
        finds every call not yet logged.
        """
        arrivals, sessions = self._arrivals, self._sessions
        while arrivals:
            session = sessions.get(arrivals[0])
            if session is not None:
                return to_datetime(session.first_ms)
            arrivals.popleft()
        return None

    def in_flight_by_arrival(self) -> list[str]:
        """The sessions in flight, the one whose first event arrived first first."""
        return list(dict.fromkeys(t for t in self._arrivals if t in self._sessions))

    def first_event_time(self, telephony_session_id: str) -> datetime | None:
        """When the earliest event seen of a session in flight happened (None if not followed)."""
        session = self._sessions.get(telephony_session_id)
        if session is None:
            return None
        return datetime.fromtimestamp(session.first_ms / 1000, UTC)

    def phase(self, telephony_session_id: str) -> Phase | None:
        """The lifecycle phase of a session in flight (None once it left the tracker)."""
        session = self._sessions.get(telephony_session_id)
        if session is None:
            return None
        if session.deadline is None:
            return Phase.OPEN
        if telephony_session_id in self._parked:
            return Phase.AWAITING_DIRECTORY
        return Phase.GRACE_PENDING

    def peek(self, telephony_session_id: str) -> tuple[list[CompletedCall], bool] | None:
        """What a session in flight gives so far, and whether its history has no hole.

        Nothing changes: the calls are derived as an expiry would (a leg whose end was not
        seen is ``incomplete``), before the policy. None when the session is not followed.
        """
        session = self._sessions.get(telephony_session_id)
        if session is None:
            return None
        return derive_calls(session, self._context(), True), session.contiguous()

    # ---- reports handed to the daemon ----

    def take_directory_wanted(self) -> set[str]:
        """Extension ids a complete session names that the directory does not know.

        The daemon refreshes the directory (``Tracker.replace_directory``); the sessions wait
        up to ``directory_wait_s`` for it, then are decided with what is known.
        """
        wanted = self._wanted
        if wanted:  # almost always empty: this is asked after every event
            self._wanted = set()
        return wanted

    def take_unlogged(self) -> list[tuple[str, str]]:
        """Sessions that ended with no call log and no skip decision, with the reason.

        So that none ends silently: the daemon counts and logs each.
        """
        if not self._unlogged:
            return []
        taken = list(self._unlogged)
        self._unlogged.clear()
        return taken

    def take_holed(self) -> list[tuple[str, datetime]]:
        """Sessions completed since the last call whose history had a missing sequence number.

        Their calls were derived from an incomplete history (a notification never came):
        the daemon confirms them from the call log before logging them. Each comes with its
        first event time (where a call-log read for it starts).
        """
        taken = list(self._holed)
        self._holed.clear()
        return taken

    def take_skipped(self) -> list[tuple[CompletedCall, Decision]]:
        """Calls the policy skipped since the last call, with the policy's decision."""
        taken = list(self._skipped)
        self._skipped.clear()
        return taken
