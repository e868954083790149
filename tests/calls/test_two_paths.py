"""One corpus, two paths: every kind of simulated call logged from live events and from the
call-log records alone gives the same log, field by field.

The live path (the tracker) sees every notification; the call-log path
(``ringcentral/calllog.py``) sees only the Detailed records the simulator serves, which
follow RingCentral's documented layout (a leg's start and duration, no answer moment, no
hold). Every field agrees within 1 s, or the call-log side lists it in ``approximate``.
The third path -- a live history cut by a gap, completed from the record
(``calls/merge.py``) -- must agree the same way, with fewer fields approximate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.merge import with_live
from sscl_daemon.calls.model import APPROXIMABLE, CallResult, CallSource, CompletedCall
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.ringcentral.calllog import calls_from_records
from sscl_daemon.ringcentral.records import CallLogRecord
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind, SimCall

ORG = Organisation.build(seed=11)
DIRECTORY = Directory.from_api(ORG.extension_records())
START = datetime(2026, 3, 2, 15, tzinfo=UTC)
TOLERANCE_MS = 1000
EXACT = (
    "key", "result", "direction", "external_number", "external_name", "extension_id",
    "extension_number", "internal_number", "queue_name", "transferred_to",
)  # fmt: skip
TIMES = ("start_time", "end_time", "answer_time")
DURATIONS = ("ring_ms", "queue_ms", "talk_ms", "hold_ms", "total_ms")


def _tracker(directory: Directory | None) -> Tracker:
    return Tracker(directory, TrackerOptions(completion_grace_s=2), Policy(None, directory))


def _envelope(call: SimCall, n: int) -> bytes:
    event = call.events[n]
    return json.dumps({"uuid": f"u-{n}", "body": event.body}).encode()


def live_calls(call: SimCall, directory: Directory | None) -> dict[str, CompletedCall]:
    tracker = _tracker(directory)
    made = [
        c for n in range(len(call.events)) for c in tracker.apply(decode_event(_envelope(call, n)))
    ]
    made += tracker.flush()
    return {c.key: c for c in made}


def log_calls(call: SimCall, directory: Directory | None) -> dict[str, CompletedCall]:
    records = msgspec.convert(list(call.call_log_records), list[CallLogRecord])
    made, errors = calls_from_records(records, ORG.account_id, directory)
    assert errors == []
    policy = Policy(None, directory)
    return {c.key: c for c in made if policy.logs(c)}


def disagreements(live: CompletedCall, other: CompletedCall) -> list[str]:
    """Fields of ``other`` that differ from ``live`` beyond the tolerance and are not flagged."""
    wrong = [f for f in EXACT if getattr(live, f) != getattr(other, f)]
    if live.extension_number is None and "extension_number" in wrong:
        # Without a directory the live events may not name a caller's extension number
        # (their `from` is the DID); the record does: more, not different.
        wrong.remove("extension_number")
    if set(live.recording_ids) != set(other.recording_ids):
        wrong.append("recording_ids")
    for name in TIMES:
        a, b = getattr(live, name), getattr(other, name)
        if name in other.approximate:
            continue
        if (a is None) != (b is None) or (
            a is not None and abs((a - b).total_seconds()) * 1000 > TOLERANCE_MS
        ):
            wrong.append(name)
    for name in DURATIONS:
        if (
            name not in other.approximate
            and abs(getattr(live, name) - getattr(other, name)) > TOLERANCE_MS
        ):
            wrong.append(name)
    return wrong


@pytest.mark.parametrize("with_directory", [True, False])
@pytest.mark.parametrize("kind", list(CallKind))
def test_live_and_call_log_give_the_same_log(kind: CallKind, with_directory: bool) -> None:
    directory = DIRECTORY if with_directory else None
    for seed in range(6):
        call = CallFactory(ORG, seed).make(START + timedelta(minutes=seed), kind)
        live, from_log = live_calls(call, directory), log_calls(call, directory)
        assert set(from_log) == set(live), (seed, call.modern)
        for key, log in from_log.items():
            assert log.source is CallSource.CALL_LOG
            assert set(log.approximate) <= set(APPROXIMABLE)
            assert disagreements(live[key], log) == [], (seed, call.modern, key)


def test_the_call_log_flags_what_it_cannot_know_and_only_that() -> None:
    """Answered calls: answer/ring/talk/hold are estimates; missed and voicemail: exact."""
    kinds = {CallKind.INBOUND_ANSWERED, CallKind.INBOUND_MISSED, CallKind.INBOUND_VOICEMAIL}
    seen: set[CallResult] = set()
    for n, kind in enumerate(sorted(kinds)):
        call = CallFactory(ORG, n).make(START + timedelta(minutes=n), kind)
        for log in log_calls(call, DIRECTORY).values():
            seen.add(log.result)
            if log.result is CallResult.ANSWERED:
                assert set(log.approximate) == {"answer_time", "ring_ms", "talk_ms", "hold_ms"}
            else:
                assert log.approximate == ()
    assert seen == {CallResult.ANSWERED, CallResult.MISSED, CallResult.VOICEMAIL}


def test_hold_time_is_never_a_confident_zero_from_the_call_log() -> None:
    call = CallFactory(ORG, 3).make(START, CallKind.HOLD_RESUME)
    live, from_log = live_calls(call, DIRECTORY), log_calls(call, DIRECTORY)
    [key] = live
    assert live[key].hold_ms > TOLERANCE_MS
    assert from_log[key].hold_ms == 0
    assert "hold_ms" in from_log[key].approximate
    # and the talk time of the record is not passed off as exact (ring counted in it)
    assert "talk_ms" in from_log[key].approximate


def test_a_warm_transfer_stays_transferred_from_the_first_sessions_record_alone() -> None:
    call = CallFactory(ORG, 2).make(START, CallKind.WARM_TRANSFER)
    first = msgspec.convert([call.call_log_records[0]], list[CallLogRecord])
    made, _ = calls_from_records(first, ORG.account_id, DIRECTORY)
    assert [c.result for c in made] == [CallResult.TRANSFERRED]


@pytest.mark.parametrize("kind", list(CallKind))
def test_a_history_cut_by_a_gap_completed_from_the_record(kind: CallKind) -> None:
    """Live events up to a gap, then the record: the merged log is right or flagged."""
    for seed in range(4):
        call = CallFactory(ORG, seed).make(START + timedelta(minutes=seed), kind)
        live = live_calls(call, DIRECTORY)
        cut = len(call.events) * 2 // 3  # the rest was lost in the gap
        tracker = _tracker(DIRECTORY)
        for n in range(cut):
            tracker.apply(decode_event(_envelope(call, n)))
        views: dict[str, tuple[dict[str, CompletedCall], bool]] = {}
        for tsid in call.telephony_session_ids:
            peeked = tracker.peek(tsid)
            if peeked is not None:
                views[tsid] = ({c.key: c for c in peeked[0]}, peeked[1])
        for key, log in log_calls(call, DIRECTORY).items():
            view = views.get(log.telephony_session_id)
            merged = log if view is None else with_live(log, view[0].get(key), complete=view[1])
            assert disagreements(live[key], merged) == [], (seed, key)
            assert set(merged.approximate) <= set(log.approximate)
            if view is not None and view[0].get(key) is not None:
                assert merged.source is CallSource.LIVE_CALL_LOG
                if view[0][key].answer_time is not None and log.answer_time is not None:
                    assert "answer_time" not in merged.approximate
                    assert "ring_ms" not in merged.approximate
