"""Property tests: delivery order, duplicates, expiry and duration invariants."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.calls import scenarios
from tests.calls.builder import ALICE_DID, CUSTOMER, DIRECTORY, Session, ext, frames, pstn

from sscl_daemon.calls.events import decode_event, decode_tracked
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.timeline import to_datetime
from sscl_daemon.calls.tracker import Tracker, TrackerOptions

SINGLE_SESSION: list[Callable[[], Session]] = [
    scenarios.outbound,
    lambda: scenarios.outbound(answer=False, reason="TargetBusy"),
    scenarios.inbound_direct,
    lambda: scenarios.inbound_direct("missed"),
    lambda: scenarios.inbound_direct("voicemail"),
    lambda: scenarios.inbound_direct(recording=True),
    scenarios.ivr_queue,
    lambda: scenarios.ivr_queue(hang_up_in_ivr=True),
    scenarios.blind_transfer,
    scenarios.park_pickup,
    scenarios.internal,
]
FLOWS = [frames(make()) for make in SINGLE_SESSION]

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def replay(raws: Sequence[bytes], grace: float, timeout: float = 14400.0) -> list[CompletedCall]:
    tracker = Tracker(
        DIRECTORY, TrackerOptions(completion_grace_s=grace, session_timeout_s=timeout)
    )
    calls = [c for raw in raws for c in tracker.apply(decode_event(raw))]
    calls += tracker.flush()
    assert len(tracker) == 0
    return calls


def check_durations(call: CompletedCall) -> None:
    for ms in (call.ring_ms, call.queue_ms, call.talk_ms, call.hold_ms, call.total_ms):
        assert ms >= 0, call
    assert call.queue_ms <= call.ring_ms
    assert call.ring_ms + call.talk_ms + call.hold_ms <= call.total_ms, call
    assert call.start_time <= call.end_time
    if call.answer_time is not None:
        assert call.start_time <= call.answer_time <= call.end_time


EXPECTED = [replay(raws, 0.0) for raws in FLOWS]


def test_every_flow_yields_calls() -> None:
    assert all(EXPECTED[:-1])  # all but the internal call have an external leg


@PROPS
@given(
    flow=st.integers(0, len(FLOWS) - 1),
    data=st.data(),
    grace=st.sampled_from([0.0, 1.5, 30.0]),
)
def test_any_order_and_duplication_gives_the_same_calls(
    flow: int, data: st.DataObject, grace: float
) -> None:
    raws = FLOWS[flow]
    order = data.draw(st.permutations(range(len(raws))))
    again = data.draw(st.lists(st.integers(0, len(raws) - 1), max_size=4))
    delivered = [raws[i] for i in order]
    for position, index in enumerate(again):
        # a re-delivery after recovery: same uuid, somewhere later in the stream
        delivered.insert(min(len(delivered), order.index(index) + 1 + position), raws[index])
    assert replay(delivered, grace) == EXPECTED[flow]


@PROPS
@given(flow=st.integers(0, len(FLOWS) - 1), cut=st.integers(1, 40), extra=st.floats(0, 5000))
def test_expire_past_the_limit_leaves_no_session(flow: int, cut: int, extra: float) -> None:
    raws = FLOWS[flow][: max(1, min(cut, len(FLOWS[flow]) - 1))]
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=2.0, session_timeout_s=600))
    calls = [c for raw in raws for c in tracker.apply(decode_event(raw))]
    last = max(decode_event(raw).body.event_time for raw in raws)
    assert tracker.expire(last + timedelta(seconds=599)) == [] or len(tracker) == 0
    calls += tracker.expire(last + timedelta(seconds=600 + extra))
    assert len(tracker) == 0
    assert tracker.counters().in_flight == 0
    for call in calls:
        check_durations(call)


STATUSES = ["Setup", "Proceeding", "Answered", "Hold", "Parked", "VoiceMail", "Disconnected",
            "Gone", "Voicemail", "Tds", "Whatever"]  # fmt: skip
REASONS = [None, None, "BlindTransfer", "AttendedTransfer", "Pickup", "TargetBusy", "Odd"]


@st.composite
def random_session(draw: st.DrawFn) -> list[bytes]:
    """Arbitrary (even nonsensical) party histories with times that may go backwards."""
    s = Session("s-f00dfeedf00dfeedf00dfeedf00dfeed0001")
    s.party("1", direction="Outbound", from_=pstn(CUSTOMER), to=pstn(ALICE_DID))
    s.party("2", direction="Inbound", extension_id="1001", from_=pstn(CUSTOMER),
            to=ext("1001", ALICE_DID))  # fmt: skip
    s.party("3", direction="Inbound", extension_id="1002", from_=pstn(CUSTOMER),
            to=ext("1002", "102"))  # fmt: skip
    s.party("4", direction="Inbound", extension_id="2000", from_=pstn(CUSTOMER),
            to=ext("2000", "2000"))  # fmt: skip
    at = 0.0
    for _ in range(draw(st.integers(1, 14))):
        at = max(0.0, at + draw(st.floats(-5, 60)))
        s.ev(draw(st.sampled_from("1234")), draw(st.sampled_from(STATUSES)), at,
             draw(st.sampled_from(REASONS)))  # fmt: skip
    return frames(s)


@PROPS
@given(raws=random_session(), grace=st.sampled_from([0.0, 2.0]))
def test_durations_are_never_negative_and_fit_the_total(raws: list[bytes], grace: float) -> None:
    for call in replay(raws, grace):
        check_durations(call)
        assert call.key.startswith("s-f00dfeed")


@PROPS
@given(raws=random_session(), data=st.data())
def test_random_sessions_are_order_independent(raws: list[bytes], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(raws))
    assert replay(shuffled, 30.0) == replay(raws, 30.0)


def test_snapshot_and_restore_continue_where_they_left_off() -> None:
    raws = [*FLOWS[2], *[r.replace(b'"40000', b'"41000') for r in FLOWS[6]]]
    raws.sort(key=lambda raw: json.loads(raw)[1]["body"]["eventTime"])
    expected = replay(raws, 2.0)
    half = len(raws) // 2
    first = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=2.0))
    calls = [c for raw in raws[:half] for c in first.apply(decode_event(raw))]
    data = first.snapshot()
    second = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=2.0))
    second.restore(data)
    assert len(second) == len(first)
    assert second.counters().events == half
    # a re-delivered notification from before the snapshot is still a duplicate
    calls += [c for raw in raws[half - 1 :] for c in second.apply(decode_event(raw))]
    calls += second.flush()
    assert calls == expected
    assert second.counters().duplicates == 1


def test_restore_rejects_garbage() -> None:
    tracker = Tracker(DIRECTORY, TrackerOptions())
    for junk in (b"", b"\x93\x01", Tracker(None).snapshot()[:-3]):
        with pytest.raises(ValueError, match="snapshot"):
            tracker.restore(junk)


def replay_state(raws: Sequence[bytes], lean: bool) -> tuple[list[CompletedCall], bytes]:
    decode = decode_tracked if lean else decode_event
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=30.0))
    calls = [c for raw in raws for c in tracker.apply(decode(raw))]
    return calls, tracker.snapshot()


@PROPS
@given(raws=random_session(), data=st.data())
def test_both_views_of_a_notification_drive_the_tracker_alike(
    raws: list[bytes], data: st.DataObject
) -> None:
    raws = [*data.draw(st.permutations(raws)), *FLOWS[data.draw(st.integers(0, len(FLOWS) - 1))]]
    assert replay_state(raws, lean=True) == replay_state(raws, lean=False)


@PROPS
@given(ms=st.one_of(st.integers(-(10**13), 10**14), st.integers((1 << 32) * 1000 - 10**6,
                    (1 << 32) * 1000 + 10**6)))  # fmt: skip
def test_millisecond_times_convert_exactly(ms: int) -> None:
    exact = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert to_datetime(ms) == exact
    assert to_datetime(ms).utcoffset() == timedelta(0)
