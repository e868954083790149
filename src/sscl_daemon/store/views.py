"""Read-only queries behind the admin console (:mod:`sscl_daemon.console`).

The console answers "was this call logged, where, and if not why?", "what
is stuck?" and draws the last day, all from the outbox the daemon already
keeps: one row per call log per writer, holding the call itself (``payload``),
its state, the CRM record id and the last error. Nothing here writes; the
console's one action, retrying dead call logs, is :meth:`Store.retry_dead`,
the same as ``sscl-daemon retry-dead``.

The Calls page reads only the newest :data:`.sql.views.SEARCH_WINDOW` outbox rows (a
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
from sscl_daemon.store import sql
from sscl_daemon.store.access import from_row, outcome_of
from sscl_daemon.store.model import OutboxStatus, Outcome
from sscl_daemon.store.store import Store

_NOT_DIGIT = re.compile(r"\D")
_PHONE_TEXT = re.compile(r"^[\d\s+().-]+$")
# Fewer digits than this never match inside a number (a search for "12" is not a number).
MIN_NUMBER_DIGITS = 3


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
    return from_row(LogState, row, status=OutboxStatus(row["status"]), outcome=outcome_of(row))


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
    async with store.connection("reading recent calls") as conn:
        # A few rows per call (one per writer), so read enough rows for ``limit`` calls.
        rows = await conn.fetch(
            sql.RECENT_CALLS, text, digits, result, writer, extension, limit * 4
        )
    return group_calls(rows, limit)


async def dead_calls(store: Store, writer: str | None = None, limit: int = 200) -> list[CallLogs]:
    """Call logs parked as dead, most recently parked first, one entry per row."""
    async with store.connection("reading dead call logs") as conn:
        rows = await conn.fetch(sql.DEAD_CALLS, writer, limit)
    return [CallLogs(r["account"], decode_call(r["payload"]), (_log(r),)) for r in rows]


async def writer_days(store: Store, today: datetime, accounts: Sequence[str]) -> list[WriterDay]:
    """Each writer's figures over ``accounts`` (their sent rows; every live or dead row)."""
    async with store.connection("reading the writers' figures") as conn:
        rows = await conn.fetch(sql.WRITER_FIGURES, today, list(accounts))
    return [from_row(WriterDay, r) for r in rows]


async def last_events(store: Store) -> dict[str, datetime | None]:
    """Each account's newest committed event time (its checkpoint)."""
    async with store.connection("reading the checkpoints") as conn:
        rows = await conn.fetch(sql.CHECKPOINT_TIMES)
    return {r["account"]: r["last_event_time"] for r in rows}


async def calls_per_hour(store: Store, since: datetime, accounts: Sequence[str]) -> list[HourCount]:
    async with store.connection("counting calls per hour") as conn:
        rows = await conn.fetch(sql.HOURLY_CALLS, since, list(accounts))
    return [HourCount(r["hour"], r["result"] or "unknown", r["calls"]) for r in rows]


async def end_to_crm_latency(
    store: Store, since: datetime, accounts: Sequence[str], bounds: Sequence[float]
) -> LatencyBuckets:
    async with store.connection("measuring call-end to CRM latency") as conn:
        rows = await conn.fetch(sql.LATENCY_BUCKETS, since, list(accounts), list(bounds))
    counts = [0] * (len(bounds) + 1)
    for r in rows:
        counts[r["bucket"]] += r["n"]
    return LatencyBuckets(tuple(bounds), tuple(counts))
