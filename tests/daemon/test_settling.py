"""Sessions that lost events are settled from the call log, however late their record comes.

The pipeline side of issue 13 ("nothing lost") and issue 19 (causes 1 and 3): a session
with a hole in its sequence numbers is held back; one whose record appears only after
several reads (a warm transfer's first session: its record is written when the whole call
ends) is settled when it does; one whose record never comes is logged from what was seen,
never left in the snapshot; the checkpoint never passes a session still waiting.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from tests.calls.captures import csn_envelopes, encoded, sequence

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import CallResult, CallSource, CompletedCall
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.settling import RETRY_AFTER_S, Settling
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.daemon.accounts import GAP_READ_AGAIN_SPAN, read_again_from, read_gap_again
from sscl_daemon.daemon.groupcommit import Batch, GroupCommitter
from sscl_daemon.daemon.pipeline import Pipeline, snapshot_waiting
from sscl_daemon.ringcentral.calllog import calls_from_records
from sscl_daemon.ringcentral.reconcile import Stretch
from sscl_daemon.ringcentral.records import CallLogRecord
from sscl_daemon.ringcentral.subscription import Gap, GapReason
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind, SimCall
from sscl_daemon.store import Checkpoint, DeadLetter

START = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
Committer = GroupCommitter[Checkpoint, DeadLetter]


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch[Checkpoint, DeadLetter]] = []

    async def __call__(self, batch: Batch[Checkpoint, DeadLetter]) -> None:
        self.batches.append(batch)

    @property
    def calls(self) -> list[CompletedCall]:
        return [c for b in self.batches for c in b.calls]


def _pipeline(directory: Directory | None) -> tuple[Pipeline, Committer, Sink]:
    sink = Sink()
    committer: Committer = GroupCommitter(sink, interval=0.001, max_batch=100)
    tracker = Tracker(directory, TrackerOptions(completion_grace_s=0.0), Policy(None, directory))
    return Pipeline(tracker, committer), committer, sink


async def _drain(committer: Committer) -> None:
    task = asyncio.create_task(committer.run())
    try:
        await asyncio.wait_for(committer.flush(), 5)
    finally:
        task.cancel()


def _records(org: Organisation, call: SimCall, index: int | None = None) -> list[CompletedCall]:
    raw = list(call.call_log_records) if index is None else [call.call_log_records[index]]
    records = msgspec.convert(raw, list[CallLogRecord])
    made, errors = calls_from_records(
        records, org.account_id, Directory.from_api(org.extension_records())
    )
    assert errors == []
    return made


async def test_a_session_with_a_hole_is_held_back_and_settled_from_its_record() -> None:
    # Real capture (RC -> PSTN): the answer and the hold (sequences 4-8) never arrive.
    pipeline, committer, sink = _pipeline(None)
    envelopes = [e for e in csn_envelopes("RingCentral-PSTN.txt") if sequence(e) not in range(4, 9)]
    for envelope in envelopes:
        received = datetime.fromisoformat(str(envelope["timestamp"]))
        await pipeline.on_notification(encoded(envelope), received)
    await pipeline.expire(datetime(2020, 6, 23, 2, tzinfo=UTC))
    await _drain(committer)
    assert sink.calls == []  # not "missed with 23 s of ring": the call log decides
    [tsid] = pipeline.suspects()
    checkpoint = pipeline.checkpoint()
    assert checkpoint is not None
    assert checkpoint.last_event_time <= datetime(2020, 6, 23, 1, 19, 21, 627_000, tzinfo=UTC)
    # No record ever comes: logged after all, as incomplete (its result may be wrong).
    await pipeline.give_up_suspect(tsid)
    await _drain(committer)
    assert [(c.telephony_session_id, c.result) for c in sink.calls] == [
        (tsid, CallResult.INCOMPLETE)
    ]
    assert pipeline.suspects() == []


async def test_a_held_back_session_is_logged_from_its_record_with_what_was_seen() -> None:
    org = Organisation.build(21)
    call = CallFactory(org, 21).make(START, CallKind.HOLD_RESUME)
    pipeline, committer, sink = _pipeline(Directory.from_api(org.extension_records()))
    # the second notification is lost: a hole
    for n, event in enumerate(call.events):
        if n != 1:
            await pipeline.on_notification(json.dumps(event.body).encode(), START)
    await pipeline.expire(START + timedelta(hours=1))
    await _drain(committer)
    assert sink.calls == []
    assert pipeline.suspects() == list(call.telephony_session_ids)
    await pipeline.add_reconciled(_records(org, call))
    pipeline.settle_suspects(call.telephony_session_ids)
    await _drain(committer)
    [logged] = sink.calls
    [expected] = call.expected
    assert logged.key == expected.key
    assert logged.result.value == expected.result
    assert logged.source is CallSource.LIVE_CALL_LOG
    # the answer was seen live: exact; the hold was seen but the history had a hole: flagged
    assert "answer_time" not in logged.approximate
    assert "hold_ms" in logged.approximate
    assert abs(logged.hold_ms - expected.hold_ms) <= 1000


async def test_a_warm_transfer_leg_whose_record_comes_late_is_still_logged() -> None:
    # Issue 19 cause 1 / issue 13's two lost legs: the first session's end is lost in a gap
    # and its record is written only when the whole call ends, after several reads.
    org = Organisation.build(22)
    call = CallFactory(org, 22).make(START, CallKind.WARM_TRANSFER)
    first, _second = call.telephony_session_ids
    pipeline, committer, sink = _pipeline(Directory.from_api(org.extension_records()))
    first_events = [e for e in call.events if e.body["telephonySessionId"] == first]
    for event in first_events[:4]:  # up to the hold; the rest is lost
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    pipeline.mark_suspects(pipeline.in_flight_sessions())
    settling = pipeline.settling
    now = START + timedelta(minutes=2)
    for attempt, wait in enumerate(RETRY_AFTER_S[:3]):
        _, quiet = pipeline.due_suspects(now, silent=10)
        assert quiet == [first], attempt
        assert pipeline.suspects_not_found(quiet, now) == []  # no record yet
        assert pipeline.due_suspects(now, silent=10) == ([], [])
        now += timedelta(seconds=wait)
        checkpoint = pipeline.checkpoint()
        assert checkpoint is not None
        assert checkpoint.last_event_time <= START  # it does not pass the waiting session
    assert first in settling
    # The whole call ended: the first session's record is there now.
    _, quiet = pipeline.due_suspects(now, silent=10)
    assert quiet == [first]
    found = [c for c in _records(org, call, 0) if c.telephony_session_id == first]
    await pipeline.add_reconciled(found)
    pipeline.settle_suspects([first])
    await _drain(committer)
    [logged] = sink.calls
    assert (logged.key, logged.result) == (call.expected[0].key, CallResult.TRANSFERRED)
    assert first not in pipeline.tracker  # not left in the snapshot
    assert pipeline.suspects() == []


def test_the_schedule_is_bounded_and_restarts_for_a_session_still_live() -> None:
    settling = Settling(retry_after=(30.0, 60.0))
    settling.mark("s-1", START)
    now = START
    assert settling.due(now, lambda _t: False, 10) == (["s-1"], [])
    assert settling.tried(["s-1"], now) == []
    assert settling.due(now + timedelta(seconds=29), lambda _t: False, 10) == ([], [])
    now += timedelta(seconds=30)
    assert settling.tried(["s-1"], now) == []
    now += timedelta(seconds=60)
    assert settling.tried(["s-1"], now) == ["s-1"]  # exhausted: the daemon gives up
    settling.restart("s-1")  # the platform still has it: a new round of reads
    assert settling.due(now, lambda _t: False, 10) == (["s-1"], [])
    assert settling.overdue(now) == (0, 90.0)


async def test_held_back_calls_survive_a_restart() -> None:
    # The snapshot keeps the sessions waiting for the call log and the calls held back: a
    # restart before the record came must not forget them (their session already left the
    # tracker, so nothing else would bring them back).
    pipeline, committer, _ = _pipeline(None)
    envelopes = [e for e in csn_envelopes("RingCentral-PSTN.txt") if sequence(e) not in range(4, 9)]
    for envelope in envelopes:
        received = datetime.fromisoformat(str(envelope["timestamp"]))
        await pipeline.on_notification(encoded(envelope), received)
    await pipeline.expire(datetime(2020, 6, 23, 2, tzinfo=UTC))
    [tsid] = pipeline.suspects()
    saved: list[bytes] = []

    async def save(data: bytes) -> None:
        saved.append(data)

    task = asyncio.create_task(committer.run())
    try:
        await asyncio.wait_for(pipeline.snapshot(save), 5)
    finally:
        task.cancel()
    restarted, committer2, sink2 = _pipeline(None)
    assert restarted.restore(saved[0], None) == 0  # nothing in flight, but one waiting
    assert restarted.suspects() == [tsid]
    checkpoint = restarted.checkpoint()
    assert checkpoint is not None
    assert checkpoint.last_event_time <= datetime(2020, 6, 23, 1, 19, 22, tzinfo=UTC)
    await restarted.give_up_suspect(tsid)
    await _drain(committer2)
    assert [(c.telephony_session_id, c.result) for c in sink2.calls] == [
        (tsid, CallResult.INCOMPLETE)
    ]


async def test_a_gap_read_again_takes_only_sessions_never_seen() -> None:
    # Issue 19 cause 1: a warm transfer's first session began and ended inside a gap; its
    # record appears only when the whole call ended, after the gap's first read. Reading the
    # gap again later adds it; the consult session, seen live after the gap, is not re-added.
    org = Organisation.build(23)
    call = CallFactory(org, 23).make(START, CallKind.WARM_TRANSFER)
    first, second = call.telephony_session_ids
    pipeline, committer, sink = _pipeline(Directory.from_api(org.extension_records()))
    second_events = [e for e in call.events if e.body["telephonySessionId"] == second]
    for event in second_events[-3:]:  # only the end of the consult session was seen
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    again = pipeline.unseen(_records(org, call))
    assert {c.telephony_session_id for c in again} == {first}
    await pipeline.add_reconciled(again)
    await _drain(committer)
    assert [(c.key, c.result) for c in sink.calls] == [
        (call.expected[0].key, CallResult.TRANSFERRED)
    ]


def test_status_can_read_the_sessions_waiting_from_the_saved_snapshot() -> None:
    pipeline, _, _ = _pipeline(None)
    assert snapshot_waiting(None) is None
    assert snapshot_waiting(pipeline.tracker.snapshot(pipeline.settling.dump())) == (0, None)
    pipeline.settling.mark("s-1", START)
    pipeline.settling.mark("s-2", START - timedelta(minutes=3))
    saved = pipeline.tracker.snapshot(pipeline.settling.dump())
    assert snapshot_waiting(saved) == (2, START - timedelta(minutes=3))
    assert snapshot_waiting(b"not msgpack") is None


async def test_a_suspect_that_lost_nothing_is_logged_live_at_once() -> None:
    # In flight at a gap (or a restart) whose WebSocket recovery replayed what was missed:
    # every sequence number and every end arrive, so the call log is not waited for.
    org = Organisation.build(24)
    call = CallFactory(org, 24).make(START, CallKind.INBOUND_ANSWERED)
    pipeline, committer, sink = _pipeline(Directory.from_api(org.extension_records()))
    for event in call.events[:3]:
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    pipeline.mark_suspects(pipeline.in_flight_sessions())
    assert pipeline.suspects() == list(call.telephony_session_ids)
    for event in call.events[3:]:  # the replay: nothing missing
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    await pipeline.expire(START + timedelta(hours=1))
    await _drain(committer)
    assert [(c.key, c.source) for c in sink.calls] == [(call.expected[0].key, CallSource.LIVE)]
    assert pipeline.suspects() == []
    # one whose history has a hole still waits
    other = CallFactory(org, 25).make(START + timedelta(minutes=5), CallKind.INBOUND_ANSWERED)
    for event in other.events[:3]:
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    pipeline.mark_suspects(pipeline.in_flight_sessions())
    for event in other.events[4:]:
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    await pipeline.expire(START + timedelta(hours=2))
    assert pipeline.suspects() == list(other.telephony_session_ids)


async def test_a_gap_whose_late_record_comes_after_a_restart_is_still_logged() -> None:
    # Issue 19 cause 1 across a restart: a warm transfer's first session began and ended in
    # a gap; its record appears only after the gap's re-reads were due, and the daemon was
    # restarted before they ran. The checkpoint stays at the gap until its last re-read, so
    # the next start reads the gap again (startup gap from the checkpoint) and logs the leg.
    org = Organisation.build(26)
    call = CallFactory(org, 26).make(START, CallKind.WARM_TRANSFER)
    first, second = call.telephony_session_ids
    directory = Directory.from_api(org.extension_records())
    pipeline, committer, sink = _pipeline(directory)
    pipeline.restore(None, Checkpoint(START - timedelta(minutes=1)))
    second_events = [e for e in call.events if e.body["telephonySessionId"] == second]
    for event in second_events[-3:]:  # only the end of the consult session was seen live
        await pipeline.on_notification(json.dumps(event.body).encode(), START)
    gap_start = START - timedelta(seconds=30)
    hold = pipeline.hold(gap_start)
    # The gap's first read found nothing of the first session; the re-reads are due later.
    records: list[CompletedCall] = []
    started = asyncio.Event()

    async def read() -> Stretch:
        return Stretch(len(records), tuple(records), (), ())

    async def never(_delay: float) -> None:
        started.set()
        await asyncio.Event().wait()  # the process is killed before the re-read is due

    rereads = asyncio.create_task(read_gap_again(read, pipeline, hold, never))
    await asyncio.wait_for(started.wait(), 5)
    await pipeline.expire(START + timedelta(hours=1))  # the consult session ends live
    await _drain(committer)
    checkpoint = pipeline.checkpoint()
    rereads.cancel()
    assert checkpoint is not None
    assert checkpoint.last_event_time <= gap_start  # the re-reads due keep the gap
    assert first not in {c.telephony_session_id for c in sink.calls}
    # Restart from that checkpoint: the startup gap runs from it; now the record is there.
    restarted, committer2, sink2 = _pipeline(directory)
    restarted.restore(None, checkpoint)
    startup_hold = restarted.hold(checkpoint.last_event_time)
    records.extend(c for c in _records(org, call) if c.telephony_session_id == first)

    async def at_once(_delay: float) -> None:
        return None

    await read_gap_again(read, restarted, startup_hold, at_once)
    await _drain(committer2)
    # (each re-read queues it; the outbox's unique key makes it one log)
    assert {(c.key, c.result) for c in sink2.calls} == {
        (call.expected[0].key, CallResult.TRANSFERRED)
    }


async def test_a_gap_holds_the_checkpoint_until_its_last_read_or_a_failed_one() -> None:
    pipeline, _, _ = _pipeline(None)
    pipeline.restore(None, Checkpoint(START))
    gap_start = START - timedelta(minutes=5)
    reads: list[int] = []

    async def read() -> Stretch:
        reads.append(len(reads))
        return Stretch.empty()

    async def at_once(_delay: float) -> None:
        return None

    hold = pipeline.hold(gap_start)
    await read_gap_again(read, pipeline, hold, at_once)
    assert len(reads) == 2  # 2 and 10 minutes after the first read
    checkpoint = pipeline.checkpoint()
    assert checkpoint is not None
    assert checkpoint.last_event_time == START  # released after the last read

    async def failing() -> Stretch:
        raise RuntimeError("call log unreachable")

    hold = pipeline.hold(gap_start)
    with pytest.raises(RuntimeError, match="unreachable"):  # not swallowed
        await read_gap_again(failing, pipeline, hold, at_once)
    checkpoint = pipeline.checkpoint()
    assert checkpoint is not None
    assert checkpoint.last_event_time == START  # not held back for good


async def test_a_session_in_flight_at_a_restart_whose_own_sequence_is_whole_is_logged_live() -> (
    None
):
    # Issue 19's live share: after a restart the WebSocket replay is cut short (the gateway
    # keeps 100 notifications), so every session in flight is a suspect. One whose own
    # sequence runs unbroken from its start (2) to its end, and whose parties all ended, lost
    # nothing: it is logged live. One whose replay lost an event waits for the call log.
    org = Organisation.build(27)
    factory = CallFactory(org, 27)
    whole = factory.make(START, CallKind.HOLD_RESUME)
    holed = factory.make(START + timedelta(seconds=1), CallKind.HOLD_RESUME)
    pipeline, committer, _ = _pipeline(Directory.from_api(org.extension_records()))
    for call in (whole, holed):
        for event in call.events[:2]:
            await pipeline.on_notification(json.dumps(event.body).encode(), START)
    saved: list[bytes] = []

    async def save(data: bytes) -> None:
        saved.append(data)

    task = asyncio.create_task(committer.run())
    try:
        await asyncio.wait_for(pipeline.snapshot(save), 5)
    finally:
        task.cancel()
    restarted, committer2, sink2 = _pipeline(Directory.from_api(org.extension_records()))
    assert restarted.restore(saved[0], Checkpoint(START)) == 2
    restarted.mark_suspects(restarted.in_flight_sessions())  # as the daemon's start does
    for event in whole.events[2:]:  # the replay and the live stream: nothing missing
        await restarted.on_notification(json.dumps(event.body).encode(), START)
    for event in holed.events[3:]:  # its third notification was beyond the replay
        await restarted.on_notification(json.dumps(event.body).encode(), START)
    await restarted.expire(START + timedelta(hours=1))
    await _drain(committer2)
    assert [(c.key, c.source) for c in sink2.calls] == [(whole.expected[0].key, CallSource.LIVE)]
    assert restarted.suspects() == list(holed.telephony_session_ids)


def test_a_gaps_rereads_hold_the_checkpoint_a_bounded_span_back() -> None:
    # Restarts more often than the last re-read would otherwise carry the checkpoint (and
    # each startup gap, which runs from it) back without end.
    short = Gap(START, START + timedelta(minutes=5), GapReason.NO_RECOVERY_TOKEN, "restart")
    assert read_again_from(short) == START
    long = Gap(START, START + timedelta(hours=3), GapReason.NO_RECOVERY_TOKEN, "restart")
    assert read_again_from(long) == long.end - timedelta(seconds=GAP_READ_AGAIN_SPAN)
