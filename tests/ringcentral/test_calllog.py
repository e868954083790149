"""Call-log records -> CompletedCalls: same keys and results as the simulator's ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.model import CallResult, CallSource, Direction
from sscl_daemon.calls.policy import MissedAttribution, Policy, PolicyOptions
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.ringcentral.calllog import RecordError, calls_from_records
from sscl_daemon.ringcentral.calllog_page import decode_call_log_page
from sscl_daemon.ringcentral.records import CallLogRecord
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind, SimCall

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def org_and_factory(seed: int) -> tuple[Organisation, CallFactory]:
    org = Organisation.build(seed, users=12, queues=2)
    return org, CallFactory(org, seed)


def records_of(calls: list[SimCall]) -> list[CallLogRecord]:
    raw = [record for call in calls for record in call.call_log_records]
    return msgspec.convert(raw, list[CallLogRecord])


def logged(org: Organisation, calls: list[SimCall], directory: bool = True) -> dict[str, str]:
    directory_obj = Directory.from_api(org.extension_records()) if directory else None
    made, errors = calls_from_records(records_of(calls), org.account_id, directory_obj)
    assert errors == []
    policy = Policy(PolicyOptions(), directory_obj)
    return {call.key: call.result.value for call in made if policy.logs(call)}


@pytest.mark.parametrize("kind", list(CallKind))
def test_each_flow_maps_to_the_ground_truth(kind: CallKind) -> None:
    org, factory = org_and_factory(11)
    calls = [factory.make(START + timedelta(minutes=i), kind) for i in range(12)]
    expected = {log.key: log.result for call in calls for log in call.expected}
    assert logged(org, calls) == expected


def test_a_realistic_mix_without_a_directory_gives_the_same_keys() -> None:
    org, factory = org_and_factory(5)
    calls = [factory.make(START + timedelta(seconds=30 * i)) for i in range(300)]
    expected = {log.key: log.result for call in calls for log in call.expected}
    assert logged(org, calls) == expected
    # without the extension list the carrier-leg rule still finds the users
    assert set(logged(org, calls, directory=False)) == set(expected)


def test_fields_of_an_answered_inbound_call() -> None:
    org, factory = org_and_factory(3)
    call = factory.make(START, CallKind.RECORDED)
    directory = Directory.from_api(org.extension_records())
    [made], _ = calls_from_records(
        records_of([call]), org.account_id, directory, source=CallSource.BACKFILL
    )
    [truth] = call.expected
    assert made.key == truth.key
    assert made.direction.value == truth.direction
    assert made.external_number == truth.external_number
    assert made.recording_ids == truth.recording_ids
    assert made.source is CallSource.BACKFILL
    assert made.account_id == org.account_id
    assert made.user_name is not None
    assert made.answer_time is not None
    assert made.ring_ms + made.talk_ms + made.hold_ms <= made.total_ms
    assert made.start_time <= made.end_time


def test_internal_calls_are_internal_and_skipped_by_default() -> None:
    org, factory = org_and_factory(4)
    call = factory.make(START, CallKind.INTERNAL)
    directory = Directory.from_api(org.extension_records())
    made, _ = calls_from_records(records_of([call]), org.account_id, directory)
    assert made
    assert all(c.direction is Direction.INTERNAL for c in made)
    assert all(c.internal_number for c in made)
    assert not any(Policy(PolicyOptions(), directory).logs(c) for c in made)


def test_unreadable_records_are_reported_not_raised() -> None:
    good = {
        "id": "a",
        "telephonySessionId": "s-1",
        "startTime": "2026-01-01T00:00:00Z",
        "direction": "Inbound",
        "from": {"phoneNumber": "+15550100"},
        "legs": [],
    }
    bad = {**good, "id": "b", "startTime": "yesterday"}
    none = {**good, "id": "c", "telephonySessionId": None}
    records = msgspec.convert([good, bad, none], list[CallLogRecord])
    made, errors = calls_from_records(records, "acc")
    assert [c.key for c in made] == ["s-1:-"]
    assert made[0].result is CallResult.ABANDONED
    assert made[0].external_number == "+15550100"
    assert all(isinstance(e, RecordError) for e in errors)
    assert ["b" in str(errors[0]), "c" in str(errors[1])] == [True, True]


def tracker_keys(org: Organisation, calls: list[SimCall], options: PolicyOptions) -> set[str]:
    """What the live path (the call core's tracker) logs from the same calls' events."""
    directory = Directory.from_api(org.extension_records())
    tracker = Tracker(directory, TrackerOptions(completion_grace_s=0.5), Policy(options, directory))
    timeline = sorted(
        (
            (call.start + timedelta(milliseconds=e.offset_ms), n, e)
            for call in calls
            for n, e in enumerate(call.events)
        ),
        key=lambda item: (item[0], item[1]),
    )
    made = []
    for _, _, event in timeline:
        made.extend(tracker.apply(decode_event(msgspec.json.encode(event.body))))
    made.extend(tracker.flush())
    return {call.key for call in made}


@pytest.mark.parametrize("attribution", [MissedAttribution.RANG, MissedAttribution.OWNER])
def test_live_and_call_log_paths_give_the_same_keys(attribution: MissedAttribution) -> None:
    org, factory = org_and_factory(8)
    owner = org.users[0].extension_number if attribution is MissedAttribution.OWNER else None
    options = PolicyOptions(missed_attribution=attribution, missed_owner_extension=owner)
    calls = [factory.make(START + timedelta(minutes=3 * i)) for i in range(150)]
    directory = Directory.from_api(org.extension_records())
    made, errors = calls_from_records(
        records_of(calls), org.account_id, directory, missed_owner=owner
    )
    assert errors == []
    policy = Policy(options, directory)
    from_log = {call.key for call in made if policy.logs(call)}
    assert from_log == tracker_keys(org, calls, options)
    if attribution is MissedAttribution.OWNER:
        owner_id = org.users[0].id
        assert any(key.endswith(f":{owner_id}") for key in from_log)


def test_a_queue_calls_caller_name_loses_the_queue_prefix() -> None:
    # Issue 13: from real records a queue call's caller came out as
    # "<queue name> - WIRELESS CALLER" with queue_name null; live events say otherwise.
    org, factory = org_and_factory(6)
    call = factory.make(START, CallKind.IVR_QUEUE_ANSWERED)
    legs = call.call_log_records[0]["legs"]
    assert isinstance(legs, list)
    assert any(" - " in str(leg["from"].get("name")) for leg in legs)
    for directory in (True, False):
        directory_obj = Directory.from_api(org.extension_records()) if directory else None
        made, _ = calls_from_records(records_of([call]), org.account_id, directory_obj)
        [answered] = [c for c in made if c.result is CallResult.ANSWERED]
        assert answered.queue_name is not None
        assert answered.queue_name in {q.extension.name for q in org.queues}
        assert answered.external_name is not None
        assert " - " not in answered.external_name


CAPTURED = Path(__file__).resolve().parent.parent / "captures" / "active-calls-demo"
# the README's latest version has the ids and numbers anonymised (extension 234567)
TYLER, TYLERS_QUEUE = "234567", "345678"


def captured_records(name: str) -> list[CallLogRecord]:
    page = decode_call_log_page((CAPTURED / name).read_bytes())
    assert page.refused == []
    return page.records


@pytest.mark.parametrize("directory", [True, False])
def test_real_records_answered_calls_flag_what_the_record_cannot_say(directory: bool) -> None:
    # tests/captures/active-calls-demo (tylerlong/active-calls-demo @3a29257, unchanged).
    book = (
        Directory.from_api([
            {"id": int(TYLER), "extensionNumber": "11115", "name": "Tyler Liu", "type": "User"},
            {"id": int(TYLERS_QUEUE), "extensionNumber": "11180", "name": "Tyler's call queue",
             "type": "Department"},
        ])
        if directory
        else None
    )  # fmt: skip
    made, errors = calls_from_records(
        captured_records("queue-call-after-hang-up.json"), "123456", book
    )
    assert errors == []
    [queue_call] = made
    assert (queue_call.extension_id, queue_call.result, queue_call.direction) == (
        TYLER,
        CallResult.ANSWERED,
        Direction.INBOUND,
    )
    assert queue_call.external_number == "+16504366666"
    if directory:  # the queue's name is known: it is not the caller's
        assert queue_call.external_name == "WIRELESS CALLER"
        assert queue_call.queue_name == "Tyler's call queue"
    # the Accept leg starts with the call and lasts 18 s: ring and talk are not told apart
    assert queue_call.talk_ms == 18_000
    assert set(queue_call.approximate) == {"answer_time", "ring_ms", "talk_ms", "hold_ms"}
    made, errors = calls_from_records(
        captured_records("direct-call-after-hang-up.json"), "123456", book
    )
    assert errors == []
    [direct] = made
    assert (direct.result, direct.external_name, direct.queue_name) == (
        CallResult.ANSWERED,
        "WIRELESS CALLER",
        None,
    )
    assert direct.total_ms == 10_000
    assert "talk_ms" in direct.approximate
