"""Backfill: the calls of a past period, read from the call log and handed to the outbox.

Used by `sscl-daemon backfill` (commands/backfill.py) when logging is first switched on or
after an outage longer than the checkpoint can cover. The period is read in chunks (so a
progress display can follow it) through the same `Reconciler` as the live gaps, with
`source=backfill`; the outbox's unique key keeps calls already logged from being logged again.
Parsing and checking of the period are pure and raise `PeriodError` with a message that
names the option and the fix. A period older than the outbox's retention
(`store.sent_retention_days`, see `daemon/retention.py`) is refused unless confirmed: the
dedupe rows of calls logged then may be gone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.errors import SsclError
from sscl_daemon.ringcentral.reconcile import Reconciler, Stretch

DEFAULT_CHUNK = timedelta(hours=6)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PeriodError(SsclError, ValueError):
    """`--from`/`--to` are unusable; the message says which and how to fix it."""


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def chunks(self, size: timedelta = DEFAULT_CHUNK) -> list[Period]:
        out: list[Period] = []
        cursor = self.start
        while cursor < self.end:
            nxt = min(cursor + size, self.end)
            out.append(Period(cursor, nxt))
            cursor = nxt
        return out


def parse_moment(text: str, option: str, *, end_of_day: bool) -> datetime:
    """`YYYY-MM-DD` (a whole day) or an ISO date-time; no zone means UTC."""
    value = text.strip()
    if _DATE_ONLY.match(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise PeriodError(f"{option} {text!r} is not a real date (YYYY-MM-DD)") from None
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return moment + timedelta(days=1) if end_of_day else moment
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PeriodError(
            f"{option} {text!r} is not a date: use YYYY-MM-DD or an ISO date-time "
            "such as 2026-01-31T14:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_period(from_text: str, to_text: str, now: datetime) -> Period:
    """The period `--from`..`--to` (a date-only `--to` includes that whole day)."""
    start = parse_moment(from_text, "--from", end_of_day=False)
    end = parse_moment(to_text, "--to", end_of_day=True)
    if start >= end:
        raise PeriodError(f"--from {from_text!r} must be before --to {to_text!r}")
    if start >= now:
        raise PeriodError(f"--from {from_text!r} is in the future; nothing to backfill")
    return Period(start, min(end, now))


PAST_RETENTION_OPTION = "--past-retention"


def check_retention(period: Period, retention_days: int, now: datetime) -> str | None:
    """Whether ``period`` starts before the outbox's retention (``store.sent_retention_days``).

    The sent rows of calls logged then may have been deleted, so such calls would be logged
    again. None when the period is inside the retention (or it is 0, forever); else the
    message to refuse with (or, with :data:`PAST_RETENTION_OPTION`, to warn with).
    """
    if retention_days <= 0:
        return None
    kept_since = now - timedelta(days=retention_days)
    if period.start >= kept_since:
        return None
    return (
        f"--from {period.start:%Y-%m-%d %H:%M} UTC is older than store.sent_retention_days "
        f"({retention_days} days: sent calls are remembered since {kept_since:%Y-%m-%d %H:%M} "
        "UTC); calls of that time that were already logged may be logged again. Start at "
        f"{kept_since:%Y-%m-%d} or later, or add {PAST_RETENTION_OPTION} if those calls "
        "were never logged (a first backfill)"
    )


@dataclass
class Summary:
    records: int = 0
    calls: int = 0
    # Of ``calls``, those the outbox already had for every writer (None: not checked).
    already_logged: int | None = None
    inserted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0

    def lines(self, dry_run: bool) -> list[str]:
        out = [f"call-log records read: {self.records}", f"calls found: {self.calls}"]
        if dry_run:
            if self.already_logged is None:
                out.append(f"would be logged: {self.calls} (the outbox was not checked)")
            else:
                out.append(f"already logged: {self.already_logged}")
                out.append(f"would be logged: {self.calls - self.already_logged}")
        else:
            out.append(
                f"new outbox rows: {self.inserted} (one per call and writer not logged before)"
            )
        for reason, count in sorted(self.skipped.items()):
            out.append(f"skipped ({reason}): {count}")
        if self.unreadable:
            out.append(f"unreadable records (see the log): {self.unreadable}")
        return out


Commit = Callable[[Sequence[CompletedCall]], Awaitable[int]]
# The keys, among a batch's calls, that the outbox already holds for every writer.
Logged = Callable[[Sequence[CompletedCall]], Awaitable[set[str]]]
Progress = Callable[[Period, Stretch, set[str]], None]


async def run_backfill(
    reconciler: Reconciler,
    period: Period,
    commit: Commit | None,
    progress: Progress | None = None,
    chunk: timedelta = DEFAULT_CHUNK,
    logged: Logged | None = None,
) -> Summary:
    """Read `period` chunk by chunk; `commit` (None = dry run) stores each chunk's calls.

    With `logged`, a dry run tells the calls already logged from those it would log;
    `progress` gets each chunk with the keys found already logged.
    """
    summary = Summary(already_logged=0 if logged is not None else None)
    for part in period.chunks(chunk):
        batch = await reconciler.read(part.start, part.end)
        summary.records += batch.records
        summary.calls += len(batch.calls)
        summary.unreadable += len(batch.errors)
        summary.skipped.update(str(d.reason) for d in batch.skipped)
        known: set[str] = set()
        if logged is not None and batch.calls:
            known = await logged(batch.calls)
            summary.already_logged = (summary.already_logged or 0) + len(known)
        if commit is not None and batch.calls:
            summary.inserted += await commit(batch.calls)
        if progress is not None:
            progress(part, batch, known)
    return summary
