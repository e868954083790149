"""Every field bounded at the edge: oversized ids and lists, sequences out of range, NUL
characters and eventTimes far from the receive time are refused with the typed error, and in
the pipeline they become dead letters with the reason while the checkpoint stays on trusted
time. Accepted at the bound, refused past it (on f315870 all of them were accepted)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.calls import scenarios
from tests.calls.builder import frames

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import (
    MAX_EVENT_TIME_AHEAD,
    MAX_EVENT_TIME_BEHIND,
    MAX_ID_LENGTH,
    MAX_LIST_LENGTH,
    MAX_SEQUENCE,
    MAX_TEXT_LENGTH,
    EventDecodeError,
    check_event_time,
    decode_event,
    decode_tracked,
)
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.daemon.groupcommit import Batch, GroupCommitter
from sscl_daemon.daemon.pipeline import Pipeline
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind
from sscl_daemon.store import Checkpoint, DeadLetter, DeadLetterKind

Decode = Callable[[bytes | str], object]
DECODERS = [decode_event, decode_tracked]


def envelope() -> dict[str, Any]:
    """A real second notification of an inbound call (one party, extension 1001)."""
    env: dict[str, Any] = json.loads(frames(scenarios.inbound_direct())[1])[1]
    return env


def _set(path: str, value: object) -> dict[str, Any]:
    env = envelope()
    target: Any = env
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[last] = value
    return env


# (field path, a value at the bound, a value past it)
BOUNDED = [
    ("body.telephonySessionId", "s" * MAX_ID_LENGTH, "s" * 3000),
    ("body.parties.0.id", "p" * MAX_ID_LENGTH, "p" * (MAX_ID_LENGTH + 1)),
    ("body.parties.0.extensionId", "9" * MAX_ID_LENGTH, "9" * (MAX_ID_LENGTH + 1)),
    ("uuid", "u" * MAX_ID_LENGTH, "u" * (MAX_ID_LENGTH + 1)),
    ("body.sessionId", "1" * MAX_ID_LENGTH, "1" * (MAX_ID_LENGTH + 1)),
    ("body.parties.0.from.name", "n" * MAX_TEXT_LENGTH, "n" * 1_000_000),
    ("body.parties.0.to.phoneNumber", "1" * MAX_TEXT_LENGTH, "1" * (MAX_TEXT_LENGTH + 1)),
    ("body.parties.0.status.code", "Setup", "S" * (MAX_TEXT_LENGTH + 1)),
    ("body.sequence", MAX_SEQUENCE, MAX_SEQUENCE + 1),
    ("body.sequence", 0, -1),
    ("body.sequence", 2, 10**15),
    ("body.telephonySessionId", "s", ""),
    ("body.parties.0.id", "p-1", ""),
]


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(("path", "fine", "too_much"), BOUNDED)
def test_each_field_is_bounded(decode: Decode, path: str, fine: object, too_much: object) -> None:
    decode(json.dumps(_set(path, fine)))
    raw = json.dumps(_set(path, too_much)).encode()
    with pytest.raises(EventDecodeError) as caught:
        decode(raw)
    assert caught.value.raw == raw
    # In a [header, envelope] frame too (the decoders' fast path).
    with pytest.raises(EventDecodeError):
        decode(b'[{"type":"ServerNotification"},' + raw + b"]")


@pytest.mark.parametrize("decode", DECODERS)
def test_lists_are_bounded(decode: Decode) -> None:
    env = envelope()
    party = env["body"]["parties"][0]
    env["body"]["parties"] = [party] * MAX_LIST_LENGTH
    decode(json.dumps(env))
    env["body"]["parties"] = [party] * (MAX_LIST_LENGTH + 1)
    with pytest.raises(EventDecodeError):
        decode(json.dumps(env))
    env["body"]["parties"] = [party | {"recordings": [{"id": "1"}] * (MAX_LIST_LENGTH + 1)}]
    with pytest.raises(EventDecodeError):
        decode(json.dumps(env))


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    "path", ["body.telephonySessionId", "body.parties.0.from.name", "body.parties.0.status.code"]
)
def test_a_nul_character_anywhere_is_refused(decode: Decode, path: str) -> None:
    # PostgreSQL's text and jsonb cannot hold NUL: such a call could never be stored.
    for as_text in (True, False):
        raw = json.dumps(_set(path, "a\u0000b"))
        with pytest.raises(EventDecodeError, match="NUL"):
            decode(raw if as_text else raw.encode())


def test_numeric_ids_are_bounded_after_conversion() -> None:
    raw = json.dumps(_set("body.parties.0.extensionId", int("9" * (MAX_ID_LENGTH + 1))))
    with pytest.raises(EventDecodeError):
        decode_tracked(raw)
    assert (
        decode_tracked(json.dumps(_set("body.parties.0.extensionId", 1001)))
        .body.parties[0]
        .extension_id
        == "1001"
    )


def test_event_time_must_be_near_its_receipt() -> None:
    raw = json.dumps(envelope())
    event = decode_tracked(raw)
    sent = event.body.event_time
    for received in (sent, sent - MAX_EVENT_TIME_AHEAD, sent + MAX_EVENT_TIME_BEHIND):
        check_event_time(event, raw, received)
    naive = decode_tracked(raw.replace(".000Z", "").replace("Z", ""))
    assert naive.body.event_time.tzinfo is None
    check_event_time(naive, raw, sent)
    for received, word in (
        (sent - MAX_EVENT_TIME_AHEAD - timedelta(seconds=1), "ahead"),
        (sent + MAX_EVENT_TIME_BEHIND + timedelta(seconds=1), "behind"),
    ):
        with pytest.raises(EventDecodeError, match=word) as caught:
            check_event_time(event, raw, received)
        assert caught.value.raw == raw
        assert "untrusted time" in caught.value.reason


# ---- in the pipeline: dead letters with the reason, the checkpoint on trusted time ----

START = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch[Checkpoint, DeadLetter]] = []

    async def __call__(self, batch: Batch[Checkpoint, DeadLetter]) -> None:
        self.batches.append(batch)

    def letters(self) -> list[DeadLetter]:
        return [d for b in self.batches for d in b.dead_letters]

    def checkpoints(self) -> list[datetime]:
        return [
            b.checkpoint.last_event_time
            for b in self.batches
            if b.checkpoint is not None and b.checkpoint.last_event_time is not None
        ]


async def test_outliers_become_dead_letters_and_never_move_the_checkpoint() -> None:
    org = Organisation.build(5)
    factory = CallFactory(org, 5)
    sink = Sink()
    committer: GroupCommitter[Checkpoint, DeadLetter] = GroupCommitter(
        sink, interval=0.001, max_batch=100
    )
    directory = Directory.from_api(org.extension_records())
    tracker = Tracker(directory, TrackerOptions(completion_grace_s=0.0), Policy(None, directory))
    pipeline = Pipeline(tracker, committer)
    real = factory.make(START, CallKind.INBOUND_ANSWERED)
    hostile = factory.make(START, CallKind.OUTBOUND_ANSWERED)
    bodies: list[dict[str, Any]] = [dict(e.body) for e in hostile.events]
    outliers = [
        bodies[0] | {"eventTime": "9999-12-31T23:59:59Z"},
        bodies[1] | {"eventTime": "1970-01-01T00:00:00Z"},
        bodies[2] | {"telephonySessionId": "s-" + "x" * 3000},
        bodies[3] | {"sequence": 10**15},
    ]
    runner = asyncio.create_task(committer.run())
    try:
        for index, event in enumerate(real.events):
            if index < len(outliers):
                await pipeline.on_notification(json.dumps(outliers[index]).encode(), START)
            received = datetime.fromisoformat(str(event.body["eventTime"]))
            await pipeline.on_notification(json.dumps(event.body).encode(), received)
        await asyncio.wait_for(committer.flush(), 5)
    finally:
        runner.cancel()
    letters = sink.letters()
    assert [d.kind for d in letters] == [DeadLetterKind.EVENT] * len(outliers)
    reasons = [d.reason for d in letters]
    assert "9999-12-31" in reasons[0]
    assert "ahead" in reasons[0]
    assert "1970-01-01" in reasons[1]
    assert "behind" in reasons[1]
    assert "length" in reasons[2]
    assert "<=" in reasons[3]
    assert {d.payload for d in letters} == {json.dumps(b).encode() for b in outliers}
    # The real call is logged, and the checkpoint only ever held the real call's times.
    assert {c.key for b in sink.batches for c in b.calls} == {x.key for x in real.expected}
    last = max(datetime.fromisoformat(str(e.body["eventTime"])) for e in real.events)
    assert all(START <= at <= last for at in sink.checkpoints())
    assert pipeline.tracker.snapshot()  # the tracker is intact
    assert len(pipeline.tracker) == 0


@pytest.mark.parametrize("decode", DECODERS)
def test_optional_ids_may_be_empty(decode: Decode) -> None:
    # Only a session's and a party's own id must be there: an optional id that comes empty
    # was always accepted, and refusing it would refuse the whole notification.
    env = _set("body.parties.0.extensionId", "")
    env["body"]["parties"][0]["park"] = {"id": ""}
    event = decode(json.dumps(env))
    assert event.body.parties[0].extension_id == ""  # type: ignore[attr-defined]
