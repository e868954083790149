"""One party's history reduced to the moments a call log needs, and its talk and hold time.

Where it sits: the first thing the leg derivation (:mod:`~sscl_daemon.calls.legs`) does
with a finished session is to reduce each party's sorted steps (``SessionState.
steps_by_party``) to a :class:`Timeline`: when it appeared, was answered, reached
voicemail and ended. The times of a leg are read from it: ``talk`` is the party's
``Answered`` time after the answer while nobody held the call, ``hold`` the time it was
held -- their own ``Hold`` (and ``Parked``) time and the time another user of the session
(the other end of an RC -> RC call) held it: RingCentral's definition ("Calculating Call
Time Metrics"), the same for every party. Pure functions over integers (milliseconds since
the epoch); :func:`to_datetime` and :func:`to_ms` convert at the edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sscl_daemon.calls.codes import ENDED, IN_VOICEMAIL, StatusCode
from sscl_daemon.calls.state import Step

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Tuples, not sets: membership then compares by identity in C, while hashing an
# enum member runs Python code (Enum.__hash__) — this is the per-session hot path.
_RANG = (
    StatusCode.PROCEEDING,
    StatusCode.ANSWERED,
    StatusCode.HOLD,
    StatusCode.PARKED,
    StatusCode.VOICEMAIL,
    StatusCode.VOICEMAIL_SCREENING,
)
_ON_CALL = (StatusCode.ANSWERED, StatusCode.HOLD, StatusCode.PARKED)

# Bound once: an enum member read through its class costs about 50 ns in Python 3.11,
# a global a few, and these are read per step of every completed session.
_ANSWERED, _HOLD = StatusCode.ANSWERED, StatusCode.HOLD

# Below 2**32 s (year 2106) a double holds ms / 1000 within 0.25 us of the exact
# value, so fromtimestamp's rounding to the microsecond gives the exact millisecond.
_FLOAT_EXACT_MS = (1 << 32) * 1000


def to_datetime(ms: int) -> datetime:
    if 0 <= ms < _FLOAT_EXACT_MS:
        # Three of these per call log: a third cheaper than the timedelta sum.
        return datetime.fromtimestamp(ms / 1000, UTC)
    return EPOCH + timedelta(0, 0, 0, ms)


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000 + 0.5)


@dataclass(slots=True)
class Timeline:
    """One party's history, reduced to the moments the call log needs."""

    appeared: int
    answered: int | None
    end: int
    terminal: Step | None
    voicemail: int | None
    steps: list[Step]


def party_timeline(steps: list[Step], last_ms: int) -> Timeline:
    """A party's steps (sorted by sequence, not empty) reduced; ``last_ms`` ends an open one."""
    answered = voicemail = None
    terminal = None
    for step in steps:
        code = step.code
        if code is _ANSWERED:
            if answered is None:
                answered = step.at_ms
        elif code in IN_VOICEMAIL and voicemail is None:
            voicemail = step.at_ms
        elif code in ENDED:
            terminal = step
            break
    end = terminal.at_ms if terminal is not None else max(last_ms, steps[-1].at_ms)
    # Positional: keyword matching costs a third of building it, a few times per call.
    return Timeline(steps[0].at_ms, answered, end, terminal, voicemail, steps)


def talk_hold(
    line: Timeline, answer: int | None, peer_holds: Sequence[tuple[int, int]] = ()
) -> tuple[int, int]:
    """Talk and hold time of a party inside [answer, end].

    Talk is RingCentral's ("Calculating Call Time Metrics"): connected and not on hold --
    by this party or by the user at the other end (``peer_holds``, the spans another
    user's party was in ``Hold``): while either holds, nobody talks, and the time counts
    as hold for both. A call the user parked waits in the park orbit with hold music
    until the user's own party ends, so ``Parked`` on the user's party counts as hold.
    """
    if answer is None:
        return 0, 0
    talk = hold = 0
    steps = line.steps
    for index, step in enumerate(steps):
        if step.at_ms >= line.end:
            break
        if step.code not in _ON_CALL:
            continue
        until = steps[index + 1].at_ms if index + 1 < len(steps) else line.end
        begin = max(step.at_ms, answer)
        until = min(until, line.end)
        span = until - begin
        if span > 0:
            if step.code is _ANSWERED:
                held = _overlap(begin, until, peer_holds) if peer_holds else 0
                talk += span - held
                hold += held
            else:
                hold += span
    return talk, hold


def _overlap(begin: int, end: int, spans: Sequence[tuple[int, int]]) -> int:
    """How much of [begin, end) the (disjoint) ``spans`` cover."""
    return sum(max(0, min(end, b) - max(begin, a)) for a, b in spans)


def hold_spans(line: Timeline) -> list[tuple[int, int]]:
    """The spans a party was in ``Hold`` (until its next status change or its end)."""
    spans: list[tuple[int, int]] = []
    steps = line.steps
    for index, step in enumerate(steps):
        if step.code is _HOLD and step.at_ms < line.end:
            until = steps[index + 1].at_ms if index + 1 < len(steps) else line.end
            spans.append((step.at_ms, min(until, line.end)))
    return spans


def rang(line: Timeline | None) -> bool:
    return line is not None and any(step.code in _RANG for step in line.steps)
