"""The life of one telephony session, from its first event to its call logs: one table.

Where it sits: the rules the call core follows, written once, in the spirit of h11's
``_state.py``. :class:`~sscl_daemon.calls.tracker.Tracker` (the live path, hand-optimised:
it is the per-event hot path) moves a session through the first phases; the settling
bookkeeping (:mod:`sscl_daemon.calls.settling`) through the phases of a session that may
have lost events; the daemon performs the I/O an :class:`Action` names (read the call log,
load the directory) and reports back with a :class:`Trigger`. :func:`step` is the only
way the settling side changes a phase, so a transition missing from :data:`TRANSITIONS`
is an error, not a silent new path; the tracker's own phases are checked against the table
by a plain reference implementation (tests/calls/test_lifecycle.py) on random event orders.
``python -m sscl_daemon.calls.lifecycle`` prints the state diagram (Mermaid) that
docs/session-lifecycle.md shows.

Gaps of every kind -- a missing start, a hole in the sequence numbers, a missed end, a
failed WebSocket recovery, a restart -- go through the same two phases (``SUSPECT`` while
followed, ``HELD_BACK`` once finished) and end the same ways.
"""

from __future__ import annotations

import enum

from sscl_daemon.errors import SsclError


class Phase(enum.Enum):
    OPEN = "open"  # events arrive; some party is not final
    GRACE_PENDING = "grace pending"  # every party final: completes when the grace passes
    AWAITING_DIRECTORY = "awaiting directory"  # complete, but names an unknown extension
    SUSPECT = "suspect"  # followed, but may have lost events (a gap, a restart)
    HELD_BACK = "held back"  # finished from an incomplete history: its calls wait
    COMPLETE = "complete"  # logged from its live events (final)
    SETTLED_ELSEWHERE = "settled elsewhere"  # logged from its call-log record (final)
    GIVEN_UP = "given up"  # no record ever came: logged from what was seen (final)
    EXPIRED = "expired"  # no event for session_timeout: logged, unseen ends incomplete (final)


class Trigger(enum.Enum):
    EVENT = "event"  # a notification that leaves some party not final (or hands off)
    ALL_FINAL = "all final"  # every party Disconnected/Gone (a mailbox counts), no hand-off
    GRACE_PASSED = "grace passed"  # the completion grace (longer with a hole) passed
    UNKNOWN_EXTENSION = "unknown extension"  # complete, names ids the directory lacks
    DIRECTORY = "directory"  # a fresh directory came, or the wait for it passed
    HOLE = "hole"  # complete, but a sequence number (or the start) was never seen
    GAP = "gap"  # in flight across a WebSocket gap, a failed recovery or a restart
    NOTHING_LOST = "nothing lost"  # completed with every sequence number and every end seen
    RECORD = "record"  # the call-log read found its record
    NO_RECORD = "no record"  # the retry schedule ran out (and the platform ended it)
    TIMEOUT = "timeout"  # no event for session_timeout


class Action(enum.Enum):
    NONE = "-"
    SCHEDULE = "schedule completion"
    UNSCHEDULE = "unschedule"
    LOG = "derive and log the calls"
    LOG_INCOMPLETE = "derive and log; unseen ends incomplete"
    LOAD_DIRECTORY = "load the directory"
    HOLD = "derive, hold the calls back"
    READ_CALL_LOG = "read the call log (on the retry schedule)"
    LOG_FROM_RECORD = "log from the record with what was seen; forget the session"
    LOG_AS_SEEN = "log what was seen (incomplete if events are missing)"


FINAL = frozenset({Phase.COMPLETE, Phase.SETTLED_ELSEWHERE, Phase.GIVEN_UP, Phase.EXPIRED})

_O, _G, _A, _S, _H = (
    Phase.OPEN,
    Phase.GRACE_PENDING,
    Phase.AWAITING_DIRECTORY,
    Phase.SUSPECT,
    Phase.HELD_BACK,
)
_T = Trigger

# (phase, trigger) -> (next phase, what the daemon or the core does). Nothing else moves a
# session; a pair not listed cannot happen.
TRANSITIONS: dict[tuple[Phase, Trigger], tuple[Phase, Action]] = {
    (_O, _T.EVENT): (_O, Action.NONE),
    (_O, _T.ALL_FINAL): (_G, Action.SCHEDULE),
    (_O, _T.GAP): (_S, Action.READ_CALL_LOG),
    # timed out with a sequence number missing: its end may be in the call log
    (_O, _T.HOLE): (_H, Action.HOLD),
    (_O, _T.TIMEOUT): (Phase.EXPIRED, Action.LOG_INCOMPLETE),
    (_G, _T.EVENT): (_O, Action.UNSCHEDULE),
    (_G, _T.ALL_FINAL): (_G, Action.SCHEDULE),
    (_G, _T.GRACE_PASSED): (Phase.COMPLETE, Action.LOG),
    (_G, _T.UNKNOWN_EXTENSION): (_A, Action.LOAD_DIRECTORY),
    (_G, _T.HOLE): (_H, Action.HOLD),
    (_G, _T.GAP): (_S, Action.READ_CALL_LOG),
    (_G, _T.TIMEOUT): (Phase.EXPIRED, Action.LOG_INCOMPLETE),
    (_A, _T.EVENT): (_O, Action.UNSCHEDULE),
    (_A, _T.DIRECTORY): (Phase.COMPLETE, Action.LOG),
    (_A, _T.HOLE): (_H, Action.HOLD),
    (_A, _T.GAP): (_S, Action.READ_CALL_LOG),
    (_A, _T.TIMEOUT): (Phase.EXPIRED, Action.LOG_INCOMPLETE),
    (_S, _T.EVENT): (_S, Action.NONE),
    (_S, _T.ALL_FINAL): (_S, Action.SCHEDULE),
    (_S, _T.GAP): (_S, Action.NONE),
    # the gap took nothing of it after all (a recovery replayed it, or it was quiet)
    (_S, _T.NOTHING_LOST): (Phase.COMPLETE, Action.LOG),
    (_S, _T.GRACE_PASSED): (_H, Action.HOLD),
    (_S, _T.HOLE): (_H, Action.HOLD),
    (_S, _T.TIMEOUT): (_H, Action.HOLD),
    (_S, _T.RECORD): (Phase.SETTLED_ELSEWHERE, Action.LOG_FROM_RECORD),
    (_S, _T.NO_RECORD): (Phase.GIVEN_UP, Action.LOG_AS_SEEN),
    (_H, _T.RECORD): (Phase.SETTLED_ELSEWHERE, Action.LOG_FROM_RECORD),
    (_H, _T.NO_RECORD): (Phase.GIVEN_UP, Action.LOG_AS_SEEN),
    (_H, _T.GAP): (_H, Action.NONE),
    (_H, _T.HOLE): (_H, Action.NONE),
}


class LifecycleError(SsclError, RuntimeError):
    """A transition the table does not have (a bug in the caller, never bad input)."""


def step(phase: Phase, trigger: Trigger) -> tuple[Phase, Action]:
    """The next phase and the action for ``trigger`` in ``phase`` (LifecycleError if none)."""
    try:
        return TRANSITIONS[phase, trigger]
    except KeyError:
        raise LifecycleError(f"no transition from {phase.value!r} on {trigger.value!r}") from None


def diagram() -> str:
    """The table as a Mermaid state diagram (docs/session-lifecycle.md)."""
    lines = ["stateDiagram-v2", f"    [*] --> {_name(Phase.OPEN)}"]
    for (phase, trigger), (target, action) in TRANSITIONS.items():
        if phase is target and action is Action.NONE:
            continue  # staying put without doing anything: not worth an arrow
        label = trigger.value if action is Action.NONE else f"{trigger.value} / {action.value}"
        lines.append(f"    {_name(phase)} --> {_name(target)}: {label}")
    lines.extend(f"    {_name(phase)} --> [*]" for phase in Phase if phase in FINAL)
    return "\n".join(lines) + "\n"


def _name(phase: Phase) -> str:
    return "".join(word.capitalize() for word in phase.value.split())


if __name__ == "__main__":
    print(diagram(), end="")
