"""Scenario tests: whole call flows in, the expected call logs out."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import timedelta

from tests.calls import scenarios
from tests.calls.builder import CUSTOMER, DIRECTORY, MAIN_NUMBER, T0, Session, frames, pstn

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.model import CallResult, CompletedCall, Direction
from sscl_daemon.calls.policy import MissedAttribution, Policy, PolicyOptions, SkipReason
from sscl_daemon.calls.tracker import Tracker, TrackerOptions


def run(
    raws: Iterable[bytes],
    *,
    directory: Directory | None = DIRECTORY,
    grace: float = 0.0,
    policy: Policy | None = None,
) -> list[CompletedCall]:
    tracker = Tracker(directory, TrackerOptions(completion_grace_s=grace), policy)
    out: list[CompletedCall] = []
    for raw in raws:
        out.extend(tracker.apply(decode_event(raw)))
    out.extend(tracker.flush())
    assert len(tracker) == 0
    return out


def one(calls: list[CompletedCall]) -> CompletedCall:
    assert len(calls) == 1, calls
    return calls[0]


def seconds(call: CompletedCall) -> tuple[int, int, int, int, int]:
    return tuple(  # type: ignore[return-value]
        call.seconds(ms)
        for ms in (call.ring_ms, call.queue_ms, call.talk_ms, call.hold_ms, call.total_ms)
    )


def test_outbound_answered() -> None:
    s = scenarios.outbound()
    call = one(run(frames(s)))
    assert call.key == f"{s.tsid}:1001"
    assert call.direction is Direction.OUTBOUND
    assert call.result is CallResult.ANSWERED
    assert call.external_number == CUSTOMER
    assert call.extension_number == "101"
    assert call.user_email == "alice@example.com"
    assert call.account_id == "400131234008"
    assert call.session_id == "4119612004"
    assert call.start_time == T0
    # the remote party answered at 10 s; Alice held from 20 to 25 and hung up at 60
    assert seconds(call) == (10, 0, 45, 5, 60)


def test_outbound_no_answer_busy_and_rejected() -> None:
    for reason, result in (
        ("NoAnswer", CallResult.MISSED),
        ("TargetBusy", CallResult.BUSY),
        ("Rejected", CallResult.REJECTED),
    ):
        call = one(run(frames(scenarios.outbound(answer=False, reason=reason))))
        assert call.result is result
        assert call.answer_time is None
        assert call.talk_ms == 0
        assert call.ring_ms == call.total_ms == 25100


def test_inbound_direct_answered_with_hold() -> None:
    call = one(run(frames(scenarios.inbound_direct())))
    assert call.direction is Direction.INBOUND
    assert call.result is CallResult.ANSWERED
    assert call.external_number == CUSTOMER
    assert call.external_name == "ACME CORP"
    assert call.recording_ids == ()
    # rang 8 s; talked 8-40 and 52-100; held 40-52
    assert seconds(call) == (8, 0, 80, 12, 100)
    assert call.final_status == "Disconnected"


def test_inbound_missed() -> None:
    call = one(run(frames(scenarios.inbound_direct("missed"))))
    assert call.result is CallResult.MISSED
    assert call.extension_id == "1001"
    assert call.answer_time is None
    assert (call.ring_ms, call.talk_ms) == (18100, 0)


def test_inbound_to_voicemail() -> None:
    call = one(run(frames(scenarios.inbound_direct("voicemail"))))
    assert call.result is CallResult.VOICEMAIL
    assert call.key.endswith(":1001")
    assert call.talk_ms == 0


def test_ivr_to_queue_answered_by_second_agent() -> None:
    s = scenarios.ivr_queue()
    call = one(run(frames(s)))
    assert call.key == f"{s.tsid}:1002"
    assert call.result is CallResult.ANSWERED
    assert call.queue_name == "Sales Queue"
    assert call.external_number == CUSTOMER
    # 12 s in the IVR and queue before Bob's phone rang, answered at 20 s:
    # talk time starts at Bob's answer, not at the IVR's.
    assert seconds(call) == (20, 12, 60, 0, 80)
    assert set(call.participants) == {"2000", "3000", "101", "102"}


def test_ivr_to_queue_without_directory_uses_heuristics() -> None:
    call = one(run(frames(scenarios.ivr_queue()), directory=None))
    assert call.extension_id == "1002"
    assert call.result is CallResult.ANSWERED


def test_caller_hangs_up_in_ivr_is_abandoned() -> None:
    s = scenarios.ivr_queue(hang_up_in_ivr=True)
    call = one(run(frames(s)))
    assert call.key == f"{s.tsid}:-"
    assert call.extension_id is None
    assert call.result is CallResult.ABANDONED
    assert call.total_ms == 15000
    skipped = run(frames(s), policy=Policy(PolicyOptions(log_abandoned=False), DIRECTORY))
    assert skipped == []


def test_blind_transfer() -> None:
    calls = {c.extension_number: c for c in run(frames(scenarios.blind_transfer()))}
    assert set(calls) == {"101", "102"}
    alice, bob = calls["101"], calls["102"]
    assert alice.result is CallResult.TRANSFERRED
    assert alice.transferred_to == "102"
    assert seconds(alice)[2] == 25
    assert bob.result is CallResult.ANSWERED
    assert bob.transferred_to is None
    assert seconds(bob) == (35, 30, 55, 0, 90)


def test_warm_transfer() -> None:
    a, b = scenarios.warm_transfer()
    calls = run(frames(a, b))
    by_key = {c.key: c for c in calls}
    assert set(by_key) == {f"{a.tsid}:1001", f"{b.tsid}:1002"}
    alice = by_key[f"{a.tsid}:1001"]
    assert alice.result is CallResult.TRANSFERRED
    assert alice.transferred_to == "102"
    assert seconds(alice)[2:4] == (25, 30)  # talked 5-30, customer on hold 30-60
    bob = by_key[f"{b.tsid}:1002"]
    assert bob.result is CallResult.ANSWERED
    assert bob.direction is Direction.INBOUND
    assert bob.external_number == CUSTOMER


def test_park_and_pickup_by_another_user() -> None:
    calls = {c.extension_number: c for c in run(frames(scenarios.park_pickup()))}
    alice, bob = calls["101"], calls["102"]
    assert alice.result is CallResult.ANSWERED
    assert alice.talk_ms == 26000  # until she parked the call
    assert alice.hold_ms == 1000  # the call waited in the park orbit until her phone let go
    assert alice.end_time == T0.replace(second=31)
    assert bob.result is CallResult.ANSWERED
    assert bob.talk_ms == 49900
    assert bob.queue_ms == 50000  # ringing started when he picked the call up


def test_recording_ids_are_reported() -> None:
    call = one(run(frames(scenarios.inbound_direct(recording=True))))
    assert call.recording_ids == ("7181543004",)


def test_internal_call_is_skipped_by_default_and_logged_on_request() -> None:
    s = scenarios.internal()
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0), Policy(None, DIRECTORY))
    logged = [c for raw in frames(s) for c in tracker.apply(decode_event(raw))]
    assert logged == []
    skipped = tracker.take_skipped()
    assert {d.reason for _, d in skipped} == {SkipReason.INTERNAL_CALL}
    calls = run(frames(s), policy=Policy(PolicyOptions(log_internal=True), DIRECTORY))
    by_number = {c.extension_number: c for c in calls}
    assert set(by_number) == {"101", "102"}
    for call, other in ((by_number["101"], "102"), (by_number["102"], "101")):
        assert call.direction is Direction.INTERNAL
        assert call.external_number is None
        assert call.internal_number == other
        assert call.result is CallResult.ANSWERED
    # the caller's talk time starts when Bob answered, not at her own instant "Answered"
    assert by_number["101"].talk_ms == 24000


def test_missed_owner_attribution() -> None:
    s = scenarios.inbound_direct("missed")
    options = PolicyOptions(
        missed_attribution=MissedAttribution.OWNER, missed_owner_extension="103"
    )
    call = one(run(frames(s), policy=Policy(options, DIRECTORY)))
    assert call.key == f"{s.tsid}:1003"
    assert call.extension_number == "103"
    assert call.result is CallResult.MISSED


def test_out_of_order_and_duplicated_delivery() -> None:
    s = scenarios.ivr_queue()
    expected = run(frames(s))
    raws = frames(s)
    rng = random.Random(4)
    delivered = [*raws, raws[3], raws[7]]
    rng.shuffle(delivered)
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=1.0))
    calls = [c for raw in delivered for c in tracker.apply(decode_event(raw))]
    calls += tracker.flush()
    assert calls == expected
    counters = tracker.counters()
    assert counters.duplicates == 2
    assert counters.out_of_order > 0
    assert counters.in_flight == 0
    assert counters.sessions_completed == 1


def test_same_sequence_with_a_new_uuid_is_a_duplicate() -> None:
    s = scenarios.inbound_direct()
    raws = frames(s)
    again = raws[4].replace(b'"4000000000000000005"', b'"4999999999999999999"')
    assert again != raws[4]
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0))
    calls = [c for raw in [*raws[:5], again, *raws[5:]] for c in tracker.apply(decode_event(raw))]
    assert len(calls) == 1
    assert tracker.counters().duplicates == 1


def test_grace_waits_for_later_events_and_late_events_are_dropped() -> None:
    s = scenarios.inbound_direct()
    raws = frames(s)
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=2.0))
    assert [c for raw in raws for c in tracker.apply(decode_event(raw))] == []
    assert tracker.counters().pending == 1
    # another session's event 3 s later moves the event clock past the grace
    other = Session("s-other", start=T0 + timedelta(seconds=103), shared=s.shared)
    other.party("1", direction="Outbound", from_=pstn(CUSTOMER), to=pstn(MAIN_NUMBER))
    other.ev("1", "Setup", 0.0)
    done = tracker.apply(decode_event(frames(other)[0]))
    assert [c.key for c in done] == [f"{s.tsid}:1001"]
    assert tracker.apply(decode_event(raws[-1].replace(b'"40000', b'"41000'))) == []
    assert tracker.counters().late == 1
