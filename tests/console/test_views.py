"""The console's read-only queries (store/views.py) on a real PostgreSQL outbox, and the
retry of one dead call log by id (the same Store.retry_dead as ``sscl-daemon retry-dead``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from tests.daemon.helpers import make_call

from sscl_daemon.calls.model import CallResult
from sscl_daemon.store import OutboxStatus, Outcome, Store, views

ACCOUNT = "default"
WRITERS = ("crm", "log")


async def _settle(store: Store) -> dict[str, int]:
    """Call 1 sent everywhere, call 2 dead for crm, call 3 pending: the outbox ids by role."""
    now = datetime.now(UTC)
    calls = [
        make_call(1, end=now - timedelta(minutes=30), number="+14155550101"),
        make_call(2, end=now - timedelta(minutes=20), number="+14155550102"),
        msgspec.structs.replace(
            make_call(3, end=now - timedelta(minutes=10), number="+442071838750"),
            result=CallResult.MISSED,
        ),
    ]
    await store.commit_batch(ACCOUNT, calls, WRITERS, None)
    ids: dict[str, int] = {}
    for writer in WRITERS:
        for item in await store.claim_due(writer, 10, "test", 60.0):
            key = item.call.key
            if key == "s-1:ext-1" or (key == "s-2:ext-1" and writer == "log"):
                await store.mark_sent(item.id, "test", f"rec-{item.id}", Outcome.CREATED)
            elif key == "s-2:ext-1":
                await store.mark_dead(item.id, "test", "crm rejected the request (HTTP 422)")
                ids["dead"] = item.id
            else:
                await store.schedule_retry(
                    item.id, "test", 60.0, "crm unavailable (HTTP 503)", False
                )
    return ids


async def test_recent_calls_newest_first_with_each_writers_log(store: Store) -> None:
    await _settle(store)
    calls = await views.recent_calls(store)
    assert [c.call.telephony_session_id for c in calls] == ["s-3", "s-2", "s-1"]
    by_writer = {log.writer: log for log in calls[1].logs}
    assert by_writer["crm"].status is OutboxStatus.DEAD
    assert by_writer["crm"].last_error == "crm rejected the request (HTTP 422)"
    assert by_writer["log"].status is OutboxStatus.SENT
    assert by_writer["log"].crm_record_id is not None
    pending = {log.writer: log for log in calls[0].logs}
    assert pending["crm"].status is OutboxStatus.PENDING
    assert pending["crm"].last_error == "crm unavailable (HTTP 503)"


async def test_search_by_session_id_number_and_filters(store: Store) -> None:
    await _settle(store)

    async def sessions(**filters: str) -> list[str]:
        return [c.call.telephony_session_id for c in await views.recent_calls(store, **filters)]

    assert await sessions(search="s-2") == ["s-2"]
    assert await sessions(search="+1 (415) 555-0101") == ["s-1"]  # punctuation ignored
    assert await sessions(search="2071838750") == ["s-3"]
    assert await sessions(search="101") == ["s-3", "s-2", "s-1"]  # the extension number
    assert await sessions(result="missed") == ["s-3"]
    assert await sessions(extension="102") == []
    assert await sessions(search="+19995550000") == []
    only_crm = await views.recent_calls(store, writer="crm")
    assert {log.writer for c in only_crm for log in c.logs} == {"crm"}


async def test_dead_calls_writer_days_and_retry_of_one(store: Store) -> None:
    ids = await _settle(store)
    dead = await views.dead_calls(store)
    assert [(d.call.key, d.logs[0].writer) for d in dead] == [("s-2:ext-1", "crm")]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = {w.writer: w for w in await views.writer_days(store, today, [ACCOUNT])}
    assert days["crm"].dead == days["crm"].dead_today == 1
    assert days["crm"].depth == 1  # call 3 waits for its retry
    assert days["crm"].last_error == "crm unavailable (HTTP 503)"
    assert days["log"].sent_today == 2
    assert days["log"].depth == 1

    assert await store.retry_dead(item_id=ids["dead"] + 1000) == 0
    assert await store.retry_dead(item_id=ids["dead"]) == 1
    assert await views.dead_calls(store) == []


async def test_chart_figures_come_from_the_outbox(store: Store) -> None:
    await _settle(store)
    since = datetime.now(UTC) - timedelta(days=1)
    hours = await views.calls_per_hour(store, since, [ACCOUNT])
    assert sum(h.calls for h in hours) == 3  # calls, not call logs (two writers each)
    assert {h.result for h in hours} == {"answered", "missed"}
    latency = await views.end_to_crm_latency(store, since, [ACCOUNT], (60.0, 3600.0))
    other = await views.end_to_crm_latency(store, since, ["other"], (60.0, 3600.0))
    assert other.counts == (0, 0, 0)
    # Sent 10-30 min after the calls "ended": all in the middle bucket.
    assert latency.counts == (0, 3, 0)
