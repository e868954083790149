"""Tracker mechanics: expiry of silent sessions, grace, counters, late events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.calls import scenarios
from tests.calls.builder import DIRECTORY, T0, frames

from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.model import CallResult
from sscl_daemon.calls.tracker import Tracker, TrackerOptions


def test_a_call_whose_end_never_arrives_expires_as_incomplete() -> None:
    raws = frames(scenarios.inbound_direct())[:6]  # answered, then silence
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=2, session_timeout_s=3600))
    assert [c for raw in raws for c in tracker.apply(decode_event(raw))] == []
    last = T0 + timedelta(seconds=40)  # Alice put the caller on hold, then nothing
    assert tracker.expire(last + timedelta(seconds=3599)) == []
    assert len(tracker) == 1
    (call,) = tracker.expire(last + timedelta(seconds=3600))
    assert len(tracker) == 0
    assert call.result is CallResult.INCOMPLETE
    assert call.answer_time == T0 + timedelta(seconds=8)
    assert call.final_status == "Hold"
    counters = tracker.counters()
    assert (counters.sessions_expired, counters.sessions_completed, counters.in_flight) == (1, 0, 0)
    # the end arriving after the expiry is a late event, not a new call
    assert tracker.apply(decode_event(frames(scenarios.inbound_direct())[-1])) == []
    assert tracker.counters().late == 1
    assert len(tracker) == 0


def test_a_caller_stuck_in_the_ivr_expires_as_an_incomplete_unowned_call() -> None:
    raws = frames(scenarios.ivr_queue(hang_up_in_ivr=True))[:3]
    tracker = Tracker(DIRECTORY, TrackerOptions(session_timeout_s=60))
    for raw in raws:
        tracker.apply(decode_event(raw))
    (call,) = tracker.flush()
    assert call.key.endswith(":-")
    assert call.result is CallResult.INCOMPLETE


def test_expire_completes_a_finished_call_once_its_grace_has_passed() -> None:
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=2))
    for raw in frames(scenarios.outbound()):
        assert tracker.apply(decode_event(raw)) == []
    end = T0 + timedelta(seconds=60.2)
    assert tracker.expire(end + timedelta(seconds=1.9)) == []
    (call,) = tracker.expire(end + timedelta(seconds=2))
    assert call.result is CallResult.ANSWERED
    assert tracker.expire(end + timedelta(days=1)) == []


def test_a_hole_in_the_sequence_waits_for_the_gap_grace() -> None:
    raws = frames(scenarios.outbound())
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0, gap_grace_s=5))
    missing = 4  # the remote party's Answered never arrives
    calls = [
        c for i, raw in enumerate(raws) if i != missing for c in tracker.apply(decode_event(raw))
    ]
    assert calls == []
    assert tracker.counters().pending == 1
    (call,) = tracker.expire(T0 + timedelta(seconds=65.2))
    assert call.result is CallResult.ANSWERED  # the user's own party answered


def test_a_blind_transfer_hand_off_is_not_the_end() -> None:
    raws = frames(scenarios.blind_transfer())
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0))
    # caller gone quiet, Alice hands off: the newest event is a hand-off, so wait
    for raw in raws[:6]:
        assert tracker.apply(decode_event(raw)) == []
    assert tracker.counters().pending == 0


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="completion_grace_s"):
        TrackerOptions(completion_grace_s=-1)
    with pytest.raises(ValueError, match="session_timeout_s"):
        TrackerOptions(session_timeout_s=0)


@pytest.mark.parametrize("sequence", [2**16, 2**40, 2**62])
def test_a_huge_sequence_number_is_rejected_without_allocating_for_it(sequence: int) -> None:
    raws = frames(scenarios.outbound())
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0))
    hostile = raws[0].replace(b'"sequence": 2,', f'"sequence": {sequence},'.encode(), 1)
    hostile = hostile.replace(b"4000000000000000001", b"4999999999999999999")  # another uuid
    assert f'"sequence": {sequence},'.encode() in hostile
    assert tracker.apply(decode_event(hostile)) == []
    assert tracker.counters().rejected == 1
    assert len(tracker) == 0
    # the genuine call is still tracked and logged
    calls = [c for raw in raws for c in tracker.apply(decode_event(raw))]
    assert [c.result for c in calls] == [CallResult.ANSWERED]
