"""The pipeline between the subscription and the committer: dead letters, the low-water
checkpoint, and sessions joined in the middle (held back for the call log)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import msgspec

from sscl_daemon import metrics
from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import decode_tracked
from sscl_daemon.calls.model import CallResult, CompletedCall
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.daemon.groupcommit import Batch, GroupCommitter
from sscl_daemon.daemon.pipeline import Pipeline, snapshot_session_count
from sscl_daemon.ringcentral.calllog import calls_from_records
from sscl_daemon.ringcentral.records import CallLogRecord
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind, SimCall
from sscl_daemon.store import Checkpoint, DeadLetter, DeadLetterKind

START = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch[Checkpoint, DeadLetter]] = []

    async def __call__(self, batch: Batch[Checkpoint, DeadLetter]) -> None:
        self.batches.append(batch)

    @property
    def keys(self) -> set[str]:
        return {c.key for b in self.batches for c in b.calls}


def _pipeline(org: Organisation) -> tuple[Pipeline, GroupCommitter[Checkpoint, DeadLetter], Sink]:
    sink = Sink()
    committer: GroupCommitter[Checkpoint, DeadLetter] = GroupCommitter(
        sink, interval=0.001, max_batch=100
    )
    directory = Directory.from_api(org.extension_records())
    tracker = Tracker(directory, TrackerOptions(completion_grace_s=0.0), Policy(None, directory))
    return Pipeline(tracker, committer), committer, sink


async def _play(pipeline: Pipeline, call: SimCall, skip: int = 0) -> None:
    for event in call.events[skip:]:
        await pipeline.on_notification(json.dumps(event.body).encode(), START)


async def _drain(committer: GroupCommitter[Checkpoint, DeadLetter]) -> None:
    task = asyncio.create_task(committer.run())
    try:
        await asyncio.wait_for(committer.flush(), 5)
    finally:
        task.cancel()


async def test_undecodable_notification_becomes_a_dead_letter() -> None:
    pipeline, committer, sink = _pipeline(Organisation.build(3))
    before = metrics.EVENTS_RECEIVED.labels(status="malformed")._value.get()
    await pipeline.on_notification(b'{"body": "no session here"', START)
    await _drain(committer)
    (letter,) = [d for b in sink.batches for d in b.dead_letters]
    assert letter.kind is DeadLetterKind.EVENT
    assert letter.payload == b'{"body": "no session here"'
    assert metrics.EVENTS_RECEIVED.labels(status="malformed")._value.get() == before + 1


async def test_whole_call_is_committed_and_the_checkpoint_waits_for_open_sessions() -> None:
    org = Organisation.build(3)
    factory = CallFactory(org, 3)
    pipeline, committer, sink = _pipeline(org)
    first = factory.make(START, CallKind.INBOUND_ANSWERED)
    second = factory.make(START, CallKind.OUTBOUND_ANSWERED)
    await _play(pipeline, first)
    # Half of the second call: it is in flight, so the checkpoint stays at its first event.
    half = len(second.events) // 2
    for event in second.events[:half]:
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    checkpoint = pipeline.checkpoint()
    assert checkpoint is not None
    first_event = datetime.fromisoformat(str(second.events[0].body["eventTime"]))
    assert checkpoint.last_event_time == first_event
    assert snapshot_session_count(pipeline.tracker.snapshot()) == 1
    await _play(pipeline, second, skip=half)
    await _drain(committer)
    expected = {log.key for call in (first, second) for log in call.expected}
    assert sink.keys == expected
    assert pipeline.in_flight_sessions() == []


async def test_a_session_joined_in_the_middle_waits_for_the_call_log() -> None:
    org = Organisation.build(5)
    call = CallFactory(org, 5).make(START, CallKind.BLIND_TRANSFER)
    pipeline, committer, sink = _pipeline(org)
    await _play(pipeline, call, skip=4)  # its first notifications were lost
    await pipeline.expire(datetime(2100, 1, 1, tzinfo=UTC))  # whatever the tracker makes of it
    await _drain(committer)
    tsid = call.telephony_session_ids[0]
    assert pipeline.suspects() == [tsid]
    assert sink.keys == set(), "partial results must wait for the call log"
    checkpoint = pipeline.checkpoint()
    assert checkpoint is not None
    assert checkpoint.last_event_time is not None
    # No call-log record ever came: what the tracker saw is logged after all.
    await pipeline.give_up_suspect(tsid)
    await _drain(committer)
    assert sink.keys
    assert all(key.startswith(tsid) for key in sink.keys)
    assert pipeline.suspects() == []


async def test_out_of_order_start_is_not_mistaken_for_a_lost_start() -> None:
    org = Organisation.build(6)
    call = CallFactory(org, 6).make(START, CallKind.INBOUND_ANSWERED)
    pipeline, committer, sink = _pipeline(org)
    events = list(call.events)
    events[0], events[1] = events[1], events[0]
    assert events[0].body["sequence"] != events[1].body["sequence"]
    for event in events:
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    await pipeline.expire(datetime(2100, 1, 1, tzinfo=UTC))
    await _drain(committer)
    assert pipeline.suspects() == []
    assert sink.keys == {log.key for log in call.expected}


async def test_a_call_log_read_settles_only_the_suspects_that_ended() -> None:
    org = Organisation.build(7)
    factory = CallFactory(org, 7)
    ended = factory.make(START, CallKind.INBOUND_ANSWERED)
    going = factory.make(START, CallKind.OUTBOUND_ANSWERED)
    pipeline, committer, _ = _pipeline(org)
    await _play(pipeline, ended)
    for event in going.events[:2]:
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    (ended_id,) = ended.telephony_session_ids
    (going_id,) = going.telephony_session_ids
    pipeline.mark_suspects([ended_id, going_id])
    # The call log holds both (the one still followed may have lost its end).
    assert pipeline.settle_finished({ended_id, going_id, "s-unknown"}) == {ended_id}
    assert pipeline.suspects() == [going_id]
    await _drain(committer)


def _call_log_calls(org: Organisation, call: SimCall) -> list[CompletedCall]:
    """What the call log says of ``call`` (the version a settled suspect is logged from)."""
    records = msgspec.convert(list(call.call_log_records), list[CallLogRecord])
    made, errors = calls_from_records(
        records, org.account_id, Directory.from_api(org.extension_records())
    )
    assert errors == []
    return made


async def test_a_suspect_settled_from_the_call_log_while_followed_is_logged_once() -> None:
    org = Organisation.build(9)
    call = CallFactory(org, 9).make(START, CallKind.IVR_QUEUE_ANSWERED)
    (tsid,) = call.telephony_session_ids
    pipeline, committer, sink = _pipeline(org)
    seen, lost = 4, len(call.events) - 4  # the caller is still in the IVR when events stop
    for event in call.events[:seen]:
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    # What the tracker alone would log on expiry: not the call log's keys.
    alone, _, _ = _pipeline(org)
    for event in call.events[:seen]:
        await alone.apply(decode_tracked(json.dumps(event.body).encode()))
    own_keys = {c.key for c in alone.tracker.flush()}
    logged = _call_log_calls(org, call)
    assert own_keys
    assert own_keys.isdisjoint({c.key for c in logged})
    # A gap: the session is suspect; it goes silent, the call log says it ended.
    pipeline.mark_suspects(pipeline.in_flight_sessions())
    finished, quiet = pipeline.due_suspects(datetime(2100, 1, 1, tzinfo=UTC), silent=60)
    assert (finished, quiet) == ([], [tsid])
    await pipeline.add_reconciled(logged)
    pipeline.settle_suspects([tsid])
    assert pipeline.suspects() == []
    assert tsid not in pipeline.tracker
    assert pipeline.in_flight_sessions() == []
    # Neither the tracker's timeout nor the lost events arriving late log it again.
    assert await pipeline.expire(datetime(2100, 1, 1, tzinfo=UTC)) == 0
    late_before = pipeline.tracker.counters().late
    await _play(pipeline, call, skip=seen)
    assert pipeline.tracker.counters().late == late_before + lost
    assert tsid not in pipeline.tracker
    assert await pipeline.expire(datetime(2101, 1, 1, tzinfo=UTC)) == 0
    await _drain(committer)
    committed = [c.key for b in sink.batches for c in b.calls]
    assert sorted(committed) == sorted(c.key for c in logged)
    assert sorted(committed) == sorted(log.key for log in call.expected)
    checkpoint = pipeline.checkpoint()
    assert checkpoint is not None
    assert checkpoint.last_event_time == datetime.fromisoformat(
        str(call.events[-1].body["eventTime"])
    ), "the settled session no longer holds the checkpoint back"


async def test_giving_up_on_a_followed_suspect_logs_what_was_seen_now() -> None:
    # The platform says the session ended, its end never arrived and no record came: it is
    # logged now (incomplete: its end was not seen), not after the tracker's 4-hour timeout
    # (issue 13: two warm-transfer legs sat in the snapshots without an outbox row).
    org = Organisation.build(10)
    call = CallFactory(org, 10).make(START, CallKind.INBOUND_ANSWERED)
    (tsid,) = call.telephony_session_ids
    pipeline, committer, sink = _pipeline(org)
    for event in call.events[:3]:
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    pipeline.mark_suspects([tsid])
    await pipeline.give_up_suspect(tsid)  # no call-log record: the live view decides
    assert pipeline.suspects() == []
    assert tsid not in pipeline.tracker
    await _play(pipeline, call, skip=3)  # late events are dropped, not logged again
    await _drain(committer)
    committed = [c for b in sink.batches for c in b.calls]
    assert {c.key for c in committed} == {log.key for log in call.expected}
    assert [c.result for c in committed] == [CallResult.INCOMPLETE]


async def test_restore_follows_the_snapshot_sessions_from_their_first_event() -> None:
    org = Organisation.build(11)
    factory = CallFactory(org, 11)
    early = factory.make(START, CallKind.OUTBOUND_ANSWERED)
    late = factory.make(START + timedelta(minutes=5), CallKind.INBOUND_ANSWERED)
    pipeline, committer, _ = _pipeline(org)
    for event in (*late.events[:2], *early.events[:2]):
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    await _drain(committer)
    restarted, _, _ = _pipeline(org)
    assert restarted.restore(pipeline.tracker.snapshot(), None) == 2
    assert restarted.in_flight_sessions() == [
        early.telephony_session_ids[0],
        late.telephony_session_ids[0],
    ]
    checkpoint = restarted.checkpoint()
    assert checkpoint is not None
    assert checkpoint.last_event_time == datetime.fromisoformat(
        str(early.events[0].body["eventTime"])
    )
