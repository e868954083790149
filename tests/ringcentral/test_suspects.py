"""Suspects: which sessions wait for the call log, when they are due, and how they leave.

The pure bookkeeping (``calls/settling.py``) that replaced the reconciler's ``Suspects``;
every phase change goes through the lifecycle table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sscl_daemon.calls.lifecycle import Phase
from sscl_daemon.calls.model import CallResult, CompletedCall, Direction
from sscl_daemon.calls.settling import Settling

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def call(tsid: str) -> CompletedCall:
    return CompletedCall(
        key=f"{tsid}:1", telephony_session_id=tsid, session_id=None, account_id="a",
        extension_id="1", extension_number="101", user_name=None, user_email=None,
        direction=Direction.INBOUND, external_number="+15550100", external_name=None,
        internal_number=None, result=CallResult.ANSWERED, start_time=T0, answer_time=T0,
        end_time=T0, ring_ms=0, queue_ms=0, talk_ms=0, hold_ms=0, total_ms=0,
    )  # fmt: skip


def test_in_flight_sessions_at_a_gap_wait_until_settled() -> None:
    settling = Settling()
    settling.mark("s-a", T0)
    assert "s-a" in settling
    assert not settling.hold(call("s-b"))  # not waiting: logged as it is
    assert settling.hold(call("s-a"))  # finished by the tracker: held back
    waiting = settling.get("s-a")
    assert waiting is not None
    assert waiting.phase is Phase.HELD_BACK
    # finished: due at once; followed and silent: due after the silence
    assert settling.due(T0, lambda _t: False, 10) == (["s-a"], [])
    settling.mark("s-c", T0)
    assert settling.due(T0 + timedelta(seconds=5), lambda t: t == "s-c", 10) == (["s-a"], [])
    assert settling.due(T0 + timedelta(seconds=11), lambda t: t == "s-c", 10) == (
        ["s-a"],
        ["s-c"],
    )
    settled = settling.settle("s-a")
    assert settled is not None
    assert settled.phase is Phase.SETTLED_ELSEWHERE
    assert [c.key for c in settled.held] == ["s-a:1"]
    assert "s-a" not in settling


def test_the_checkpoint_bound_is_the_earliest_waiting_session() -> None:
    settling = Settling()
    assert settling.oldest() is None
    settling.mark("s-late", T0)
    settling.mark_holed("s-early", T0 - timedelta(minutes=20))
    assert settling.oldest() == T0 - timedelta(minutes=20)
    assert settling.since(["s-late"]) == T0
    given_up = settling.give_up("s-early")
    assert given_up is not None
    assert (given_up.phase, given_up.holed) == (Phase.GIVEN_UP, True)
    assert settling.oldest() == T0


def test_a_suspect_that_lost_nothing_stops_waiting_when_it_completes() -> None:
    settling = Settling()
    settling.mark("s-a", T0)
    assert not settling.hold(call("s-a"), complete=True)
    assert "s-a" not in settling


def test_a_held_back_session_cannot_be_completed_as_if_nothing_was_lost() -> None:
    settling = Settling()
    settling.mark_holed("s-a", T0)
    assert settling.hold(call("s-a"), complete=True)  # held: it has a hole
    settled = settling.settle("s-a")
    assert settled is not None
    # a new gap for a forgotten session makes a new suspect of it
    settling.mark("s-a", T0)
    again = settling.get("s-a")
    assert again is not None
    assert (again.phase, again.held) == (Phase.SUSPECT, [])


def test_saved_waiting_sessions_come_back_with_their_held_calls() -> None:
    settling = Settling()
    settling.mark_holed("s-a", T0)
    settling.hold(call("s-a"))
    restored = Settling()
    restored.load(settling.dump())
    waiting = restored.get("s-a")
    assert waiting is not None
    assert (waiting.phase, waiting.holed, [c.key for c in waiting.held]) == (
        Phase.HELD_BACK,
        True,
        ["s-a:1"],
    )
    assert Settling().dump() == b""
