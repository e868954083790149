"""Tracker mechanics: expiry of silent sessions, grace, counters, late events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.calls import scenarios
from tests.calls.builder import DIRECTORY, T0, frames

from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.model import CallResult, CompletedCall
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
    # The decoder refuses such a sequence (tests/hostile); the tracker must not rely on it.
    hostile = decode_event(raws[0].replace(b"4000000000000000001", b"4999999999999999999"))
    hostile.body.sequence = sequence
    assert tracker.apply(hostile) == []
    assert tracker.counters().rejected == 1
    assert len(tracker) == 0
    # the genuine call is still tracked and logged
    calls = [c for raw in raws for c in tracker.apply(decode_event(raw))]
    assert [c.result for c in calls] == [CallResult.ANSWERED]


def _apply_all(tracker: Tracker, raws: list[bytes]) -> list[CompletedCall]:
    return [c for raw in raws for c in tracker.apply(decode_event(raw))]


def test_sessions_lists_the_followed_ids_with_their_first_event_time() -> None:
    call = scenarios.inbound_direct()
    raws = frames(call)
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0))
    assert tracker.sessions() == []
    assert tracker.first_event_time(call.tsid) is None
    _apply_all(tracker, raws[1:4])  # its first notification comes last, out of order
    _apply_all(tracker, raws[:1])
    assert tracker.sessions() == [call.tsid]
    assert tracker.first_event_time(call.tsid) == T0
    assert len(_apply_all(tracker, raws[4:])) == 1
    assert tracker.sessions() == []
    assert tracker.first_event_time(call.tsid) is None


def test_a_discarded_session_emits_nothing_and_its_late_events_are_dropped() -> None:
    call = scenarios.inbound_direct()
    raws = frames(call)
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0, session_timeout_s=60))
    assert _apply_all(tracker, raws[:6]) == []  # answered, then its end is lost
    assert tracker.discard(call.tsid) is True
    assert tracker.sessions() == []
    assert len(tracker) == 0
    # Neither the timeout nor the end arriving late makes a call of it.
    assert tracker.expire(T0 + timedelta(days=1)) == []
    assert _apply_all(tracker, raws[6:]) == []
    assert tracker.flush() == []
    counters = tracker.counters()
    assert counters.late == len(raws) - 6
    assert (counters.sessions_discarded, counters.sessions_started, counters.calls) == (1, 1, 0)
    assert tracker.discard(call.tsid) is False  # already gone
    assert tracker.counters().sessions_discarded == 1


def test_a_session_discarded_while_its_completion_is_pending_never_completes() -> None:
    raws = frames(scenarios.outbound())
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=2))
    assert _apply_all(tracker, raws) == []
    assert tracker.counters().pending == 1
    assert tracker.discard(scenarios.outbound().tsid) is True
    assert tracker.expire(T0 + timedelta(seconds=63)) == []
    assert tracker.counters().pending == 0


def test_discarding_an_unknown_session_drops_the_events_still_on_their_way() -> None:
    call = scenarios.outbound()
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0))
    assert tracker.discard(call.tsid) is False
    assert _apply_all(tracker, frames(call)) == []
    assert tracker.counters().late == len(call.events)
    assert tracker.flush() == []


def test_discarding_one_session_leaves_the_others_alone() -> None:
    kept, dropped = scenarios.outbound(), scenarios.inbound_direct()
    for event in dropped.events:  # both scenarios number their uuids from 1
        event["uuid"] = "7" + event["uuid"][1:]
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0))
    kept_raws, dropped_raws = frames(kept), frames(dropped)
    _apply_all(tracker, kept_raws[:3] + dropped_raws[:3])
    assert tracker.sessions() == [kept.tsid, dropped.tsid]
    assert tracker.discard(dropped.tsid) is True
    assert tracker.sessions() == [kept.tsid]
    calls = _apply_all(tracker, kept_raws[3:] + dropped_raws[3:]) + tracker.flush()
    assert {c.telephony_session_id for c in calls} == {kept.tsid}


def test_a_discarded_session_stays_discarded_after_a_snapshot_and_restore() -> None:
    call = scenarios.inbound_direct()
    raws = frames(call)
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0))
    _apply_all(tracker, raws[:6])
    tracker.discard(call.tsid)
    restored = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0))
    restored.restore(tracker.snapshot())
    assert restored.sessions() == []
    assert restored.counters().sessions_discarded == 1
    assert _apply_all(restored, raws[6:]) == []
    assert restored.flush() == []
    assert restored.counters().late == len(raws) - 6
    # Discarding an id twice writes it to the snapshot once.
    restored.discard(call.tsid)
    assert restored.snapshot().count(call.tsid.encode()) == 1
