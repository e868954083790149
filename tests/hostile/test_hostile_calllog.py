"""Hostile call-log answers (issue 19): a bad record is refused alone, the others are used.

A live in-process daemon starts after calls it never saw live (so only the call log has
them) while the simulator serves poison records among the real ones of its call-log answers
(``Simulator.inject_call_log``): a 3,000-character telephonySessionId, a 1 MB name, a
startTime in 9999 and in 1970, a negative duration, JSON nested 100,000 levels deep, wrong
types, a NUL character, a record with no telephonySessionId, a string where a record should
be. Every real call is logged from the call log with its result, nothing is blocked or
restarted, each poison record is one dead letter with its reason (once, although a later
read meets it again), and the checkpoint stays on trusted time.

A fuzzer (hypothesis, derandomized and bounded) feeds the call-log page decoder and the
mapping random bytes, random JSON and mutations of real pages: only the typed
``RecordError`` escapes, and what is taken respects the edge bounds and the read's window.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.daemon.harness import fast_simulator, webhook_crm
from tests.daemon.helpers import wait_until
from tests.hostile.test_fuzz_decoders import (
    FUZZ,
    _strings,
    byte_mutants,
    json_values,
    structural_mutants,
)
from tests.scale.test_failover import config_file

from sscl_daemon import metrics
from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import MAX_EVENT_TIME_AHEAD, MAX_EVENT_TIME_BEHIND
from sscl_daemon.calls.wire import MAX_ID_LENGTH, MAX_TEXT_LENGTH
from sscl_daemon.config import StoreSettings, load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.ringcentral.calllog import calls_from_records
from sscl_daemon.ringcentral.calllog_page import decode_call_log_page
from sscl_daemon.ringcentral.records import (
    MAX_CALL_DURATION,
    MAX_LEGS,
    CallLogPage,
    CallLogRecord,
    RecordError,
)
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind, SimCall
from sscl_daemon.store import Checkpoint, DeadLetterKind, Store

ACCOUNT = "default"
LOGGED_KINDS = [kind for kind in CallKind if kind is not CallKind.INTERNAL]
DEEP = 100_000
NO_SESSION = "has no telephonySessionId"


def _record(call: SimCall, **changes: object) -> dict[str, Any]:
    record = dict(call.call_log_records[0]) | changes
    return record


def _text(value: object) -> bytes:
    return json.dumps(value).encode()


@dataclass
class Poison:
    """Records served among the real ones, the reason each must be refused with, and the
    telephony sessions that must never be logged."""

    texts: list[bytes]
    reasons: list[str]
    sessions: set[str]


def _poison(decoys: list[SimCall], rng: random.Random) -> Poison:
    long_id = "s-" + "".join(rng.choices(string.ascii_letters + string.digits, k=3000))
    deep_value = b'{"a":' * DEEP + b"1" + b"}" * DEEP
    cases: list[tuple[bytes, str]] = [
        (_text(_record(decoys[0], telephonySessionId=long_id)), "length <= 128"),
        (
            _text(_record(decoys[1], **{"from": {"name": "x" * 1_000_000}})),
            f"length <= {MAX_TEXT_LENGTH}",
        ),
        (_text(_record(decoys[2], startTime="9999-12-31T23:59:59.000Z")), "ahead of the read"),
        (
            _text(_record(decoys[3], startTime="1970-01-01T00:00:00.000Z")),
            "before the read's window",
        ),
        (_text(_record(decoys[4], durationMs=-5000)), ">= 0"),
        (
            _text(_record(decoys[5], id="deep"))[:-1] + b',"extra":' + deep_value + b"}",
            "nested too deeply",
        ),
        (_text(_record(decoys[6], legs={"not": "a list"})), "Expected `array`"),
        (_text(_record(decoys[7], **{"to": {"name": "ACME\u0000CORP"}})), "NUL"),
        (
            _text({k: v for k, v in _record(decoys[8]).items() if k != "telephonySessionId"}),
            NO_SESSION,
        ),
        (b'"not a record"', "Expected `object`"),
    ]
    sessions = {tsid for call in decoys for tsid in call.telephony_session_ids}
    return Poison([text for text, _ in cases], [why for _, why in cases], sessions)


@dataclass
class Run:
    sim: Simulator
    crm: WebhookReceiverState
    daemon: Daemon

    @property
    def store(self) -> Store:
        assert self.daemon.store is not None
        return self.daemon.store


@pytest.fixture
async def sim_and_crm() -> AsyncIterator[tuple[Simulator, WebhookReceiverState, str]]:
    async with fast_simulator(seed=1911) as sim, webhook_crm() as (crm, crm_url):
        yield sim, crm, crm_url


async def _start_daemon(
    sim: Simulator, crm: WebhookReceiverState, crm_url: str, dsn: str, tmp_path: Path
) -> tuple[Daemon, asyncio.Task[int]]:
    daemon = Daemon(load_config(config_file(sim, crm, crm_url, dsn, tmp_path)))
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 30)
    return daemon, task


async def _letters(store: Store) -> dict[str, list[bytes]]:
    """The call-log dead letters: reason -> payloads."""
    found: dict[str, list[bytes]] = {}
    for letter in await store.dead_letters(limit=10_000):
        if letter.kind == DeadLetterKind.CALL_LOG_RECORD.value:
            found.setdefault(letter.reason, []).append(letter.payload)
    return found


def _letter_for(letters: dict[str, list[bytes]], why: str) -> list[bytes]:
    return [
        payload for reason, payloads in letters.items() if why in reason for payload in payloads
    ]


async def test_poison_records_beside_real_ones_are_dead_lettered_alone(
    sim_and_crm: tuple[Simulator, WebhookReceiverState, str], pg_dsn: str, tmp_path: Path
) -> None:
    sim, crm, crm_url = sim_and_crm
    rng = random.Random(1911)
    now = datetime.now(UTC)
    # Calls the daemon never sees live: it is not running yet, only the call log has them.
    real = [sim.factory.make(now, LOGGED_KINDS[i % len(LOGGED_KINDS)], salt=i) for i in range(12)]
    for call in real:
        sim.inject(call)
    await sim.wait_idle()
    # An earlier run's checkpoint, before those calls: the start reads the call log from it.
    store = await Store.open(StoreSettings(dsn=pg_dsn, pool_max_size=2), tmp_path)
    try:
        await store.commit_batch(ACCOUNT, [], [], Checkpoint(now - timedelta(minutes=1)))
    finally:
        await store.close()
    decoys = [sim.factory.make(now, CallKind.INBOUND_ANSWERED, salt=500 + i) for i in range(9)]
    poison = _poison(decoys, rng)
    sim.inject_call_log(poison.texts)
    errors_before = metrics.RECONCILE_RUNS.labels(trigger="startup", result="error")._value.get()
    restarts_before = {
        task: metrics.TASK_RESTARTS.labels(task=task)._value.get()
        for task in ("subscription", "committer")
    }

    daemon, task = await _start_daemon(sim, crm, crm_url, pg_dsn, tmp_path)
    run = Run(sim, crm, daemon)
    try:
        expected = {log.key: log for call in real for log in call.expected}
        await wait_until(lambda: set(expected) <= set(crm.deliveries), 60, "every real call")
        for key, log in expected.items():
            data = crm.deliveries[key].payload["data"]
            assert isinstance(data, dict)
            assert data["source"] == "call_log", key
            assert data["result"] == log.result, key
        assert not {key.rsplit(":", 1)[0] for key in crm.deliveries} & poison.sessions
        assert all(len(key) < 300 for key in crm.deliveries)

        async def all_dead_lettered() -> bool:
            letters = await _letters(run.store)
            return all(_letter_for(letters, why) for why in poison.reasons)

        await wait_until(all_dead_lettered, 30, "each poison record a dead letter")
        letters = await _letters(run.store)
        for why, text in zip(poison.reasons, poison.texts, strict=True):
            [payload] = _letter_for(letters, why)  # once
            # The bytes as served; a record the mapping refused, as it was decoded.
            assert payload == text or why == NO_SESSION, why

        # A later read (a gap) meets one of them again, beside a new one: the new one is a
        # dead letter, the old one still only once.
        late = sim.factory.make(now, CallKind.INBOUND_ANSWERED, salt=900)
        again = _text(_record(late, startTime="9999-01-01T00:00:00.000Z"))
        sim.inject_call_log([poison.texts[2], again])
        sim.refuse_recovery()
        await sim.drop_websocket(abrupt=True)

        async def new_one_dead_lettered() -> bool:
            return again in _letter_for(await _letters(run.store), "ahead of the read")

        await wait_until(new_one_dead_lettered, 30, "the gap's poison record dead-lettered")
        assert (
            _letter_for(await _letters(run.store), "ahead of the read").count(poison.texts[2]) == 1
        )

        checkpoint = await run.store.load_checkpoint(ACCOUNT)
        assert checkpoint is not None
        assert checkpoint.last_event_time is not None
        moment = datetime.now(UTC)
        assert moment - timedelta(hours=1) < checkpoint.last_event_time < moment
        # Nothing failed, crashed or blocked.
        assert (
            metrics.RECONCILE_RUNS.labels(trigger="startup", result="error")._value.get()
            == errors_before
        )
        for name, before in restarts_before.items():
            assert metrics.TASK_RESTARTS.labels(task=name)._value.get() == before, name
        assert not task.done()
    finally:
        daemon.stop()
        assert await asyncio.wait_for(task, 30) == 0


# ---- the fuzzer --------------------------------------------------------------------------

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
READ_FROM = START - timedelta(minutes=1)
READ_AT = START + timedelta(hours=1)
_ORG = Organisation.build(19, users=12, queues=2)
DIRECTORY = Directory.from_api(_ORG.extension_records())
_FACTORY = CallFactory(_ORG, 19)
SEED_CALLS = [_FACTORY.make(START + timedelta(minutes=i), kind) for i, kind in enumerate(CallKind)]
SEED_PAGES: list[dict[str, Any]] = [
    {
        "uri": "https://platform.ringcentral.com/restapi/v1.0/account/~/call-log",
        "records": list(call.call_log_records),
        "navigation": {},
    }
    for call in SEED_CALLS
]


@st.composite
def deep_records(draw: st.DrawFn) -> bytes:
    """A real page with one record nested past the recursion limit, the others intact."""
    document = draw(st.sampled_from(SEED_PAGES))
    depth = draw(st.integers(2_000, 50_000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    deep = opener * depth + b"1" + closer * depth
    inner = b",".join(_text(record) for record in document["records"])
    return b'{"records":[' + inner + b"," + deep + b'],"navigation":{}}'


SEED_TEXTS = [_text(page) for page in SEED_PAGES]
pages = st.one_of(
    st.binary(max_size=512),
    json_values.map(_text),
    structural_mutants(SEED_TEXTS),
    byte_mutants(SEED_TEXTS),
    deep_records(),
    st.sampled_from(SEED_PAGES).map(_text),
)


def _check_record(record: CallLogRecord) -> None:
    """What the edge promises of every record it takes."""
    strings = _strings(record)
    assert all(len(s) <= MAX_TEXT_LENGTH and "\x00" not in s for s in strings)
    for value in (record.id, record.telephonySessionId, record.sessionId, record.partyId):
        assert value is None or len(str(value)) <= MAX_ID_LENGTH
    assert len(record.legs) <= MAX_LEGS
    limit = MAX_CALL_DURATION.total_seconds()
    for item in (record, *record.legs):
        assert item.duration is None or 0 <= item.duration <= limit
        assert item.durationMs is None or 0 <= item.durationMs <= limit * 1000


def _decoded(body: bytes) -> CallLogPage | RecordError:
    try:
        return decode_call_log_page(body, READ_FROM, READ_AT)
    except RecordError as exc:
        return exc


@FUZZ
@given(pages)
def test_the_call_log_decoder_and_mapping_raise_only_the_typed_error(body: bytes) -> None:
    page = _decoded(body)
    if isinstance(page, RecordError):
        assert page.raw == body
        return
    for error in page.refused:
        assert isinstance(error, RecordError)
        assert error.reason
    for record in page.records:
        _check_record(record)
    calls, errors = calls_from_records(page.records, _ORG.account_id, DIRECTORY)
    assert all(isinstance(error, RecordError) and error.raw for error in errors)
    earliest = READ_FROM - MAX_EVENT_TIME_BEHIND
    latest = READ_AT + MAX_EVENT_TIME_AHEAD
    for call in calls:
        assert len(call.key) < 300
        assert earliest <= call.start_time <= latest
        assert call.start_time <= call.end_time <= latest + 2 * MAX_CALL_DURATION


def test_the_real_pages_decode_whole() -> None:
    for document in SEED_PAGES:
        page = decode_call_log_page(_text(document), READ_FROM, READ_AT)
        assert page.refused == []
        assert len(page.records) == len(document["records"])


@pytest.mark.parametrize(
    ("start", "leg_start", "refused"),
    [
        (READ_AT + timedelta(minutes=4), None, None),
        (READ_AT + timedelta(minutes=6), None, "ahead of the read"),
        (READ_FROM - timedelta(hours=23), None, None),
        (READ_FROM - timedelta(hours=25), None, "before the read's window"),
        (START, START + timedelta(days=6), None),
        (START, START + timedelta(days=8), "outside its call"),
        (START, START - timedelta(minutes=6), "outside its call"),
    ],
)
def test_a_record_is_dated_against_the_read(
    start: datetime, leg_start: datetime | None, refused: str | None
) -> None:
    record = dict(SEED_CALLS[0].call_log_records[0]) | {"startTime": start.isoformat()}
    record["legs"] = [] if leg_start is None else [{"startTime": leg_start.isoformat()}]
    page = decode_call_log_page(_text({"records": [record]}), READ_FROM, READ_AT)
    if refused is None:
        assert [r.startTime for r in page.records] == [start.isoformat()]
        assert page.refused == []
    else:
        [error] = page.refused
        assert refused in error.reason
        assert "(untrusted time)" in error.reason
        assert error.raw == _text(record)
        assert page.records == []
