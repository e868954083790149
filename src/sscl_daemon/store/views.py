"""Read-only queries behind the admin console (:mod:`sscl_daemon.console`).

The console answers "was this call logged, where, and if not why?", "what
is stuck?" and draws the last day, all from the outbox the daemon already
keeps: one row per call log per writer, holding the call itself (``payload``),
its state, the CRM record id and the last error. Nothing here writes; the
console's one action, retrying dead call logs, is :meth:`Store.retry_dead`,
the same as ``sscl-daemon retry-dead``.

The Calls page reads only the newest :data:`SEARCH_WINDOW` outbox rows (a
bounded walk of the primary key backwards), so a search for a number that
is not there costs the same on a big outbox as on a small one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from sscl_daemon.calls.model import CompletedCall, decode_call
from sscl_daemon.store.model import OutboxStatus, Outcome
from sscl_daemon.store.store import Store

# Outbox rows (newest first) a search of the Calls page looks through.
SEARCH_WINDOW = 200_000

_NOT_DIGIT = re.compile(r"\D")
_PHONE_TEXT = re.compile(r"^[\d\s+().-]+$")
# Fewer digits than this never match inside a number (a search for "12" is not a number).
MIN_NUMBER_DIGITS = 3

_CALL_COLUMNS = """id, account, call_key, writer, status, outcome, crm_record_id, last_error,
attempts, sent_at, updated_at, payload"""

# $1 search text (exact session id / extension), $2 its digits (part of a number),
# $3 result, $4 writer, $5 extension number, $6 rows to read.
_RECENT_CALLS = f"""
SELECT {_CALL_COLUMNS} FROM outbox
WHERE id > (SELECT coalesce(max(id), 0) FROM outbox) - {SEARCH_WINDOW}
  AND ($1::text IS NULL
       OR payload->>'telephony_session_id' = $1
       OR payload->>'extension_number' = $1
       OR payload->>'internal_number' = $1
       OR ($2 <> '' AND regexp_replace(coalesce(payload->>'external_number', ''), '\\D', '', 'g')
                        LIKE '%' || $2 || '%'))
  AND ($3::text IS NULL OR payload->>'result' = $3)
  AND ($4::text IS NULL OR writer = $4)
  AND ($5::text IS NULL OR payload->>'extension_number' = $5)
ORDER BY id DESC
LIMIT $6
"""

_DEAD_CALLS = f"""
SELECT {_CALL_COLUMNS} FROM outbox
WHERE status = 'dead' AND ($1::text IS NULL OR writer = $1)
ORDER BY updated_at DESC, id DESC
LIMIT $2
"""

# The rows still moving or parked, and the sent rows of a recent period ($1) of the
# accounts $2: the first found through outbox_by_status, the others through
# outbox_sent_by_time, so a month of retained sent rows is never scanned.
_LIVE_OR_SENT_SINCE = """(status IN ('pending', 'in_flight', 'dead')
       OR (status = 'sent' AND account = ANY($2::text[]) AND sent_at >= $1))"""

# $1 the start of "today" (UTC midnight). A skipped row is settled like a sent one.
_WRITERS = f"""
SELECT writer,
       count(*) FILTER (WHERE status IN ('pending', 'in_flight')) AS depth,
       extract(epoch FROM now() - min(created_at)
               FILTER (WHERE status IN ('pending', 'in_flight')))::float8 AS oldest,
       count(*) FILTER (WHERE status = 'sent' AND outcome IS DISTINCT FROM 'skipped')
           AS sent_today,
       count(*) FILTER (WHERE status = 'sent' AND outcome = 'skipped') AS skipped_today,
       count(*) FILTER (WHERE status = 'dead' AND updated_at >= $1) AS dead_today,
       count(*) FILTER (WHERE status = 'dead') AS dead,
       (array_agg(last_error ORDER BY updated_at DESC)
            FILTER (WHERE last_error IS NOT NULL AND status <> 'sent'))[1] AS last_error
FROM outbox
WHERE {_LIVE_OR_SENT_SINCE}
GROUP BY writer
ORDER BY writer
"""

_CHECKPOINTS = "SELECT account, last_event_time FROM checkpoints ORDER BY account"

# Calls (not call logs: one call may go to several writers) per hour and result.
_HOURLY = f"""
SELECT date_trunc('hour', call_ended_at) AS hour, payload->>'result' AS result,
       count(DISTINCT (account, call_key)) AS calls
FROM outbox
WHERE {_LIVE_OR_SENT_SINCE} AND call_ended_at >= $1
GROUP BY 1, 2
ORDER BY 1, 2
"""

# $3 the bucket bounds in seconds: bucket i counts latencies in [bounds[i-1], bounds[i]).
_LATENCY = """
SELECT width_bucket(extract(epoch FROM sent_at - call_ended_at)::float8, $3::float8[]) AS bucket,
       count(*) AS n
FROM outbox
WHERE status = 'sent' AND account = ANY($2::text[]) AND sent_at >= $1
  AND outcome IS DISTINCT FROM 'skipped'
GROUP BY 1
ORDER BY 1
"""


@dataclass(frozen=True, slots=True)
class LogState:
    """One writer's call log of a call, as the outbox holds it."""

    id: int
    writer: str
    status: OutboxStatus
    outcome: Outcome | None
    crm_record_id: str | None
    last_error: str | None
    attempts: int
    sent_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CallLogs:
    """A call and where its logs went (one entry per writer)."""

    account: str
    call: CompletedCall
    logs: tuple[LogState, ...]


@dataclass(frozen=True, slots=True)
class WriterDay:
    writer: str
    depth: int
    oldest_pending_age: float | None
    sent_today: int
    skipped_today: int
    dead_today: int
    dead: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class HourCount:
    hour: datetime
    result: str
    calls: int


@dataclass(frozen=True, slots=True)
class LatencyBuckets:
    """Call end to CRM: ``counts[i]`` latencies below ``bounds[0]`` (i = 0), between
    ``bounds[i-1]`` and ``bounds[i]``, or at least ``bounds[-1]`` (the last)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]


def number_digits(search: str | None) -> str:
    """The digits of a search that reads as (part of) a phone number, else ""."""
    if not search or not _PHONE_TEXT.match(search):
        return ""
    digits = _NOT_DIGIT.sub("", search)
    return digits if len(digits) >= MIN_NUMBER_DIGITS else ""


def _log(row: asyncpg.Record) -> LogState:
    return LogState(
        id=row["id"],
        writer=row["writer"],
        status=OutboxStatus(row["status"]),
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        crm_record_id=row["crm_record_id"],
        last_error=row["last_error"],
        attempts=row["attempts"],
        sent_at=row["sent_at"],
        updated_at=row["updated_at"],
    )


def group_calls(rows: Sequence[asyncpg.Record], limit: int) -> list[CallLogs]:
    """Rows newest first -> calls newest first, each with its writers' logs."""
    calls: dict[tuple[str, str], tuple[CompletedCall, list[LogState]]] = {}
    for row in rows:
        key = (row["account"], row["call_key"])
        entry = calls.get(key)
        if entry is None:
            if len(calls) == limit:
                continue
            entry = calls[key] = (decode_call(row["payload"]), [])
        entry[1].append(_log(row))
    return [
        CallLogs(account, call, tuple(sorted(logs, key=lambda log: log.writer)))
        for (account, _), (call, logs) in calls.items()
    ]


async def recent_calls(
    store: Store,
    *,
    search: str | None = None,
    result: str | None = None,
    writer: str | None = None,
    extension: str | None = None,
    limit: int = 100,
) -> list[CallLogs]:
    """The newest logged calls matching the filters; ``search`` is a telephony session
    id, an extension number or (part of) a phone number."""
    text = search.strip() if search and search.strip() else None
    digits = number_digits(text)
    async with store.reading("reading recent calls") as conn:
        # A few rows per call (one per writer), so read enough rows for ``limit`` calls.
        rows = await conn.fetch(_RECENT_CALLS, text, digits, result, writer, extension, limit * 4)
    return group_calls(rows, limit)


async def dead_calls(store: Store, writer: str | None = None, limit: int = 200) -> list[CallLogs]:
    """Call logs parked as dead, most recently parked first, one entry per row."""
    async with store.reading("reading dead call logs") as conn:
        rows = await conn.fetch(_DEAD_CALLS, writer, limit)
    return [CallLogs(r["account"], decode_call(r["payload"]), (_log(r),)) for r in rows]


async def writer_days(store: Store, today: datetime, accounts: Sequence[str]) -> list[WriterDay]:
    """Each writer's figures over ``accounts`` (their sent rows; every live or dead row)."""
    async with store.reading("reading the writers' figures") as conn:
        rows = await conn.fetch(_WRITERS, today, list(accounts))
    return [
        WriterDay(
            writer=r["writer"],
            depth=r["depth"],
            oldest_pending_age=r["oldest"],
            sent_today=r["sent_today"],
            skipped_today=r["skipped_today"],
            dead_today=r["dead_today"],
            dead=r["dead"],
            last_error=r["last_error"],
        )
        for r in rows
    ]


async def last_events(store: Store) -> dict[str, datetime | None]:
    """Each account's newest committed event time (its checkpoint)."""
    async with store.reading("reading the checkpoints") as conn:
        rows = await conn.fetch(_CHECKPOINTS)
    return {r["account"]: r["last_event_time"] for r in rows}


async def calls_per_hour(store: Store, since: datetime, accounts: Sequence[str]) -> list[HourCount]:
    async with store.reading("counting calls per hour") as conn:
        rows = await conn.fetch(_HOURLY, since, list(accounts))
    return [HourCount(r["hour"], r["result"] or "unknown", r["calls"]) for r in rows]


async def end_to_crm_latency(
    store: Store, since: datetime, accounts: Sequence[str], bounds: Sequence[float]
) -> LatencyBuckets:
    async with store.reading("measuring call-end to CRM latency") as conn:
        rows = await conn.fetch(_LATENCY, since, list(accounts), list(bounds))
    counts = [0] * (len(bounds) + 1)
    for r in rows:
        counts[r["bucket"]] += r["n"]
    return LatencyBuckets(tuple(bounds), tuple(counts))
