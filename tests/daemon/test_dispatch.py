"""The dispatcher's state transitions, against a real Postgres store."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import structlog
from tests.daemon.helpers import make_call, wait_until

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import JsonlOptions, WriterSettings, WriterType
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    PermanentFailure,
    RetryLater,
    Skipped,
    WriteContext,
    WriteResult,
)
from sscl_daemon.dispatch import Dispatcher, Uncertain, WriteOutcome, settle
from sscl_daemon.logging import EVENT_NAME
from sscl_daemon.metrics import REGISTRY
from sscl_daemon.store import OutboxRow, OutboxStatus, Outcome, Store

WRITER = "crm"


def _settings(**kw: object) -> WriterSettings:
    base: dict[str, object] = {
        "name": WRITER,
        "type": WriterType.JSONL,
        "options": JsonlOptions(Path("unused.jsonl")),
        "retry_initial": 0.01,
        "retry_max": 0.05,
        "max_attempts": 5,
        "timeout": 5.0,
    }
    base.update(kw)
    return WriterSettings(**base)  # type: ignore[arg-type]


Script = Callable[[CompletedCall, WriteContext], "WriteResult | None"]


class ScriptedCrm:
    """A writer whose answers the test decides; records every request it gets."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[tuple[str, WriteContext]] = []
        self.active = 0
        self.max_active = 0
        self.release = asyncio.Event()
        self.release.set()
        self.closed = False

    @property
    def name(self) -> str:
        return WRITER

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult:
        return (await self.write_batch([(call, ctx)]))[0]

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.release.wait()
            results: list[WriteResult] = []
            for call, ctx in items:
                self.requests.append((call.key, ctx))
                answer = self.script(call, ctx)
                if answer is None:
                    await asyncio.Event().wait()  # never answers: the dispatcher times out
                else:
                    results.append(answer)
            return results
        finally:
            self.active -= 1

    async def close(self) -> None:
        self.closed = True


async def _commit(store: Store, calls: Sequence[CompletedCall]) -> None:
    await store.commit_batch("acc-1", calls, [WRITER], None)


async def _settled(store: Store, count: int) -> list[OutboxRow]:
    rows: list[OutboxRow] = []

    async def done() -> bool:
        nonlocal rows
        rows = await store.outbox_rows(writer=WRITER)
        finished = [r for r in rows if r.status in (OutboxStatus.SENT, OutboxStatus.DEAD)]
        return len(finished) >= count

    await wait_until(done, what=f"{count} rows settled")
    return rows


async def _run(dispatcher: Dispatcher) -> asyncio.Task[None]:
    return asyncio.create_task(dispatcher.run())


def test_settle_transitions() -> None:
    rng = random.Random(5)
    s = _settings(max_attempts=3, retry_initial=1.0, retry_max=10.0)
    assert settle(Created("r1"), 1, s, rng).outcome is WriteOutcome.CREATED
    existed = settle(AlreadyExisted("r2"), 1, s, rng)
    assert (existed.outcome, existed.record_id) == (WriteOutcome.ALREADY_EXISTED, "r2")
    told = settle(RetryLater("429", delay=42.0), 1, s, rng)
    assert (told.outcome, told.retry_in, told.uncertain) == (WriteOutcome.RETRY, 42.0, False)
    backoff = settle(RetryLater("503"), 2, s, rng)
    assert backoff.retry_in is not None
    assert 1.0 <= backoff.retry_in <= 2.0
    unsure = settle(Uncertain("timeout"), 1, s, rng)
    assert (unsure.outcome, unsure.uncertain) == (WriteOutcome.UNCERTAIN, True)
    # A writer's own timeout (the request may have reached the CRM) is uncertain too.
    lost = settle(RetryLater("timed out", uncertain=True), 1, s, rng)
    assert (lost.outcome, lost.uncertain) == (WriteOutcome.UNCERTAIN, True)
    permanent = settle(PermanentFailure("400 bad phone"), 1, s, rng)
    assert (permanent.outcome, permanent.reason) == (
        WriteOutcome.PERMANENT_FAILURE,
        "400 bad phone",
    )
    skip = settle(Skipped("no contact matches +14155550123"), 1, s, rng)
    assert (skip.outcome, skip.record_id, skip.retry_in) == (WriteOutcome.SKIPPED, None, None)
    dead = settle(RetryLater("503"), 3, s, rng)
    assert dead.outcome is WriteOutcome.DEAD
    assert dead.reason is not None
    assert "503" in dead.reason


async def test_created_retried_and_permanent_rows(store: Store) -> None:
    calls = [make_call(n) for n in range(3)]

    def script(call: CompletedCall, ctx: WriteContext) -> WriteResult:
        if call.key == calls[0].key:
            return Created("crm-0")
        if call.key == calls[1].key:
            return RetryLater("503 busy", delay=0.0) if ctx.attempt == 1 else Created("crm-1")
        return PermanentFailure("422 phone number rejected")

    crm = ScriptedCrm(script)
    dispatcher = Dispatcher(store, crm, _settings(), claimer="t1", idle_poll=0.05)
    task = await _run(dispatcher)
    await _commit(store, calls)
    try:
        rows = {r.call_key: r for r in await _settled(store, 3)}
    finally:
        await dispatcher.drain(1.0)
        await asyncio.wait_for(task, 5)
    assert (rows[calls[0].key].status, rows[calls[0].key].crm_record_id) == (
        OutboxStatus.SENT,
        "crm-0",
    )
    assert rows[calls[0].key].outcome is Outcome.CREATED
    assert (rows[calls[1].key].status, rows[calls[1].key].attempts) == (OutboxStatus.SENT, 2)
    assert rows[calls[2].key].status is OutboxStatus.DEAD
    assert rows[calls[2].key].last_error == "422 phone number rejected"
    assert crm.closed


async def test_timeout_makes_the_next_attempt_uncertain(store: Store) -> None:
    def script(call: CompletedCall, ctx: WriteContext) -> WriteResult | None:
        return None if ctx.attempt == 1 else AlreadyExisted("found-by-key")

    crm = ScriptedCrm(script)
    settings = _settings(timeout=0.02)  # the attempt times out after 3 x 20 ms
    dispatcher = Dispatcher(store, crm, settings, claimer="t2", idle_poll=0.05)
    task = await _run(dispatcher)
    await _commit(store, [make_call(1)])
    try:
        (row,) = await _settled(store, 1)
    finally:
        await dispatcher.drain(1.0)
        await asyncio.wait_for(task, 5)
    assert [ctx for _, ctx in crm.requests] == [
        WriteContext(attempt=1, uncertain=False),
        WriteContext(attempt=2, uncertain=True),
    ]
    assert (row.status, row.outcome, row.crm_record_id) == (
        OutboxStatus.SENT,
        Outcome.EXISTED,
        "found-by-key",
    )


async def test_a_writer_exception_is_uncertain_too(store: Store) -> None:
    def script(call: CompletedCall, ctx: WriteContext) -> WriteResult:
        if ctx.attempt == 1:
            raise ConnectionResetError("peer reset after sending")
        return Created("crm-9") if ctx.uncertain else PermanentFailure("not uncertain")

    crm = ScriptedCrm(script)
    dispatcher = Dispatcher(store, crm, _settings(), claimer="t3", idle_poll=0.05)
    task = await _run(dispatcher)
    await _commit(store, [make_call(9)])
    try:
        (row,) = await _settled(store, 1)
    finally:
        await dispatcher.drain(1.0)
        await asyncio.wait_for(task, 5)
    assert (row.status, row.crm_record_id) == (OutboxStatus.SENT, "crm-9")


async def test_attempts_run_out_into_a_dead_letter(store: Store) -> None:
    crm = ScriptedCrm(lambda call, ctx: RetryLater("503 again", delay=0.0))
    dispatcher = Dispatcher(store, crm, _settings(max_attempts=3), claimer="t4", idle_poll=0.05)
    task = await _run(dispatcher)
    await _commit(store, [make_call(4)])
    try:
        (row,) = await _settled(store, 1)
    finally:
        await dispatcher.drain(1.0)
        await asyncio.wait_for(task, 5)
    assert (row.status, row.attempts) == (OutboxStatus.DEAD, 3)
    assert row.last_error is not None
    assert "503 again" in row.last_error
    assert len(crm.requests) == 3


async def test_concurrency_and_batches_are_bounded(store: Store) -> None:
    crm = ScriptedCrm(lambda call, ctx: Created(f"r-{call.key}"))
    crm.release.clear()
    settings = _settings(concurrency=2, batch_size=3)
    dispatcher = Dispatcher(store, crm, settings, claimer="t5", idle_poll=0.05)
    await _commit(store, [make_call(n) for n in range(20)])
    task = await _run(dispatcher)

    await wait_until(lambda: crm.active == 2, what="two batches in flight")
    assert dispatcher.in_flight == 2
    crm.release.set()
    try:
        rows = await _settled(store, 20)
    finally:
        await dispatcher.drain(1.0)
        await asyncio.wait_for(task, 5)
    assert crm.max_active == 2
    assert all(r.status is OutboxStatus.SENT for r in rows)
    assert len({key for key, _ in crm.requests}) == 20


async def test_concurrent_answers_share_one_settlement_each_call_once(store: Store) -> None:
    def is_new(key: str) -> bool:  # keys are "s-N:ext-1": even N are new records
        return int(key.split(":")[0][2:]) % 2 == 0

    def answer(call: CompletedCall, ctx: WriteContext) -> WriteResult:
        if is_new(call.key):
            return Created(f"r-{call.key}")
        return AlreadyExisted(f"x-{call.key}")

    crm = ScriptedCrm(answer)
    crm.release.clear()
    groups: list[int] = []
    mark_sent_many = store.mark_sent_many

    async def counted(
        items: Sequence[tuple[int, str | None, Outcome]], claimer: str, **kw: object
    ) -> set[int]:
        groups.append(len(items))
        return await mark_sent_many(items, claimer, **kw)  # type: ignore[arg-type]

    store.mark_sent_many = counted  # type: ignore[method-assign]
    sent: list[tuple[str, str, WriteOutcome]] = []
    dispatcher = Dispatcher(
        store,
        crm,
        _settings(concurrency=8),
        claimer="t9",
        idle_poll=0.05,
        on_sent=lambda _w, call, record, outcome: sent.append((call.key, record, outcome)),
    )
    calls = [make_call(n) for n in range(30)]
    await _commit(store, calls)
    task = await _run(dispatcher)
    await wait_until(lambda: crm.active == 8, what="eight requests in flight")
    crm.release.set()
    try:
        rows = await _settled(store, 30)
    finally:
        await dispatcher.drain(1.0)
        await asyncio.wait_for(task, 5)
    assert sum(groups) == 30
    # The eight answers released together were recorded in one transaction.
    assert groups[0] == 8
    by_key = {r.call_key: r for r in rows}
    assert len(sent) == len({key for key, _, _ in sent}) == 30
    for key, record, outcome in sent:
        row = by_key[key]
        assert row.status is OutboxStatus.SENT
        assert row.crm_record_id == record
        expected = Outcome.CREATED if outcome is WriteOutcome.CREATED else Outcome.EXISTED
        assert row.outcome is expected
        assert (record, outcome) == (
            (f"r-{key}", WriteOutcome.CREATED)
            if is_new(key)
            else (f"x-{key}", WriteOutcome.ALREADY_EXISTED)
        )


async def test_a_batch_answer_is_recorded_in_one_settlement(store: Store) -> None:
    """All calls of one CRM answer share one transaction, not one each in turn."""
    crm = ScriptedCrm(lambda call, ctx: Created(f"r-{call.key}"))
    groups: list[int] = []
    mark_sent_many = store.mark_sent_many

    async def counted(
        items: Sequence[tuple[int, str | None, Outcome]], claimer: str, **kw: object
    ) -> set[int]:
        groups.append(len(items))
        return await mark_sent_many(items, claimer, **kw)  # type: ignore[arg-type]

    store.mark_sent_many = counted  # type: ignore[method-assign]
    dispatcher = Dispatcher(
        store, crm, _settings(concurrency=1, batch_size=50), claimer="t10", idle_poll=0.05
    )
    await _commit(store, [make_call(n) for n in range(50)])
    task = await _run(dispatcher)
    try:
        rows = await _settled(store, 50)
    finally:
        await dispatcher.drain(1.0)
        await asyncio.wait_for(task, 5)
    assert groups == [50]
    assert all(r.status is OutboxStatus.SENT for r in rows)


async def test_drain_waits_for_requests_in_flight_then_gives_up(store: Store) -> None:
    crm = ScriptedCrm(lambda call, ctx: Created("late"))
    crm.release.clear()
    dispatcher = Dispatcher(store, crm, _settings(), claimer="t6", idle_poll=0.05)
    await _commit(store, [make_call(1)])
    task = await _run(dispatcher)

    await wait_until(lambda: crm.active == 1, what="a request in flight")
    assert await dispatcher.drain(0.05) is False
    await asyncio.wait_for(task, 5)
    (row,) = await store.outbox_rows(writer=WRITER)
    # Cut off mid-request: still claimed, it comes back as uncertain once the lease lapses.
    assert row.status is OutboxStatus.IN_FLIGHT


async def test_drain_lets_a_quick_request_finish(store: Store) -> None:
    crm = ScriptedCrm(lambda call, ctx: Created("quick"))
    crm.release.clear()
    dispatcher = Dispatcher(store, crm, _settings(), claimer="t7", idle_poll=0.05)
    await _commit(store, [make_call(1)])
    task = await _run(dispatcher)

    await wait_until(lambda: crm.active == 1, what="a request in flight")
    drained = asyncio.create_task(dispatcher.drain(5.0))
    crm.release.set()
    assert await drained is True
    await asyncio.wait_for(task, 5)
    (row,) = await store.outbox_rows(writer=WRITER)
    assert row.status is OutboxStatus.SENT


@pytest.mark.parametrize("answer", [Created("x"), AlreadyExisted("y")])
def test_success_settlements_carry_the_record_id(answer: WriteResult) -> None:
    assert settle(answer, 1, _settings(), random.Random(1)).record_id in ("x", "y")


def _writes(outcome: WriteOutcome) -> float:
    value = REGISTRY.get_sample_value(
        "sscl_writes_total", {"writer": WRITER, "outcome": outcome.value}
    )
    return value or 0.0


async def test_a_skipped_call_is_settled_not_dead_and_never_retried(store: Store) -> None:
    calls = [make_call(n) for n in range(3)]
    skipped, created, refused = (c.key for c in calls)
    reason = "2 contacts match +14155550123 (contacts.several_contacts = skip)"

    def script(call: CompletedCall, ctx: WriteContext) -> WriteResult:
        if call.key == skipped:
            return Skipped(reason)
        if call.key == created:
            return Created("crm-1")
        return PermanentFailure("422 phone number rejected")

    crm = ScriptedCrm(script)
    sent: list[str] = []
    dispatcher = Dispatcher(
        store,
        crm,
        _settings(),
        claimer="t-skip",
        idle_poll=0.05,
        on_sent=lambda _w, call, _r, _o: sent.append(call.key),
    )
    before = _writes(WriteOutcome.SKIPPED)
    task = await _run(dispatcher)
    await _commit(store, calls)
    try:
        with structlog.testing.capture_logs() as logs:
            rows = {r.call_key: r for r in await _settled(store, 3)}
    finally:
        await dispatcher.drain(1.0)
        await asyncio.wait_for(task, 5)
    row = rows[skipped]
    assert (row.status, row.outcome, row.crm_record_id, row.attempts) == (
        OutboxStatus.SENT,
        Outcome.SKIPPED,
        None,
        1,
    )
    assert rows[refused].status is OutboxStatus.DEAD
    # Not a CRM record: the sent hook (reconciliation, suspects) never hears of it.
    assert sent == [created]
    assert _writes(WriteOutcome.SKIPPED) == before + 1
    said = [e for e in logs if e.get("call") == skipped]
    assert [(e["log_level"], e["reason"]) for e in said] == [("info", reason)]
    stats = (await store.status()).writer(WRITER)
    assert (stats.sent, stats.skipped, stats.dead) == (1, 1, 1)
    # retry-dead resends the refused call only; nothing of the skipped one is due again.
    assert await store.retry_dead(WRITER) == 1
    due = await store.claim_due(WRITER, 10, "probe", 30.0)
    assert [item.call.key for item in due] == [refused]
    assert [key for key, _ in crm.requests].count(skipped) == 1


async def test_one_info_line_per_logged_call_and_event_names_follow_the_scheme(
    store: Store,
) -> None:
    """``dispatch.call.logged`` says which call went where (issue 18 item 12)."""
    calls = [make_call(n) for n in range(4)]

    def script(call: CompletedCall, ctx: WriteContext) -> WriteResult:
        if call.key == calls[0].key:
            return AlreadyExisted("crm-0")
        if call.key == calls[1].key:
            return RetryLater("503 busy", delay=0.0) if ctx.attempt == 1 else Created("crm-1")
        if call.key == calls[2].key:
            return PermanentFailure("422 phone number rejected")
        return Created("crm-3")

    dispatcher = Dispatcher(
        store, ScriptedCrm(script), _settings(), claimer="t-log", idle_poll=0.05
    )
    with structlog.testing.capture_logs() as logs:
        task = await _run(dispatcher)
        await _commit(store, calls)
        try:
            await _settled(store, 4)
        finally:
            await dispatcher.drain(1.0)
            await asyncio.wait_for(task, 5)
    logged = [e for e in logs if e["event"] == "dispatch.call.logged"]
    assert all(e["log_level"] == "info" for e in logged)
    assert sorted((e["call"], e["outcome"], e["record"]) for e in logged) == [
        (calls[0].key, "already_existed", "crm-0"),
        (calls[1].key, "created", "crm-1"),
        (calls[3].key, "created", "crm-3"),
    ]
    assert {(e["writer"], e["crm"], e["result"]) for e in logged} == {(WRITER, "jsonl", "answered")}
    events = {e["event"] for e in logs}
    assert {"dispatch.call.retry_scheduled", "dispatch.call.dead_lettered"} <= events
    assert all(EVENT_NAME.fullmatch(event) for event in events), events
