"""Closes gaps in the live stream from the call-log API.

The daemon calls `close_gap` for every `Gap` the subscription reports (and at start-up from
its checkpoint), and `resolve_sessions` for sessions restored from a snapshot, or left
in flight by a gap, whose end it never saw. Both page through the account call log (Detailed
view, Heavy rate group), map the records with `calllog.calls_from_records` into the same
`CompletedCall`s (same keys) the tracker makes, and pass them through the same `Policy`: the
outbox's unique key then makes a call seen live and again here one log.

Records the call-log edge refused (`calllog_page.py`: out of bounds, untrusted time) and those
the mapping could not use are the stretch's `errors`; with a `quarantine` (the daemon's
pipeline) they are kept as dead letters with their reason, and the page's other records used.

Call-log records appear 15-30 s after a call ends (research/rc-protocol.md C5), so a gap is
read only `call_log_delay` after its end; the window is widened by `margin` on both sides
because the call log filters on a call's start time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import CallSource, CompletedCall
from sscl_daemon.calls.policy import Decision, MissedAttribution, Policy
from sscl_daemon.ringcentral.calllog import RecordError, calls_from_records
from sscl_daemon.ringcentral.ratelimit import Sleep
from sscl_daemon.ringcentral.records import CallLogPage, CallLogRecord
from sscl_daemon.ringcentral.rest import RestClient
from sscl_daemon.ringcentral.subscription import Gap, utc_now

log = structlog.get_logger(__name__)

# Where refused call-log records go (the daemon's pipeline: dead letters).
Quarantine = Callable[[Sequence[RecordError]], Awaitable[None]]


@dataclass(frozen=True)
class Stretch:
    """What one stretch of the call log produced."""

    records: int
    calls: tuple[CompletedCall, ...]  # to be logged
    skipped: tuple[Decision, ...]  # kept out by the policy, with the reason
    errors: tuple[RecordError, ...]  # records that could not be read

    @staticmethod
    def empty() -> Stretch:
        return Stretch(0, (), (), ())

    def sessions(self) -> set[str]:
        """The telephony sessions this stretch holds a record of (logged or skipped)."""
        found = {call.telephony_session_id for call in self.calls}
        found.update(d.key.rsplit(":", 1)[0] for d in self.skipped)
        return found

    def __add__(self, other: Stretch) -> Stretch:
        return Stretch(
            self.records + other.records,
            self.calls + other.calls,
            self.skipped + other.skipped,
            self.errors + other.errors,
        )


@dataclass(frozen=True)
class EndsLookup:
    """Outcome of looking up sessions whose end was missed."""

    batch: Stretch
    ended: tuple[str, ...]  # gone from the platform, records found
    active: tuple[str, ...]  # still live: the tracker will see their end
    unresolved: tuple[str, ...] = field(default=())  # gone, but no record (yet)


class Reconciler:
    """Turns stretches of the account call log into call logs for the outbox."""

    def __init__(
        self,
        rest: RestClient,
        account_id: str,
        policy: Policy,
        directory: Callable[[], Directory | None],
        *,
        call_log_delay: float,
        margin: float = 60.0,
        session_lookback: float = 86_400.0,
        source: CallSource = CallSource.CALL_LOG,
        now: Callable[[], datetime] = utc_now,
        sleep: Sleep = asyncio.sleep,
        quarantine: Quarantine | None = None,
    ) -> None:
        self._rest = rest
        self._account = account_id
        self._policy = policy
        self._directory = directory
        self._delay = call_log_delay
        self._margin = timedelta(seconds=margin)
        self._lookback = timedelta(seconds=session_lookback)
        self._source = source
        self._now = now
        self._sleep = sleep
        self._quarantine = quarantine

    def map_records(
        self, records: list[CallLogRecord], refused: Sequence[RecordError] = ()
    ) -> Stretch:
        """Pure part: records -> call logs and policy decisions (`refused`: records the edge
        refused, counted among the errors)."""
        options = self._policy.options
        owner = (
            options.missed_owner_extension
            if options.missed_attribution is MissedAttribution.OWNER
            else None
        )
        calls, errors = calls_from_records(
            records, self._account, self._directory(), source=self._source, missed_owner=owner
        )
        logged: list[CompletedCall] = []
        skipped: list[Decision] = []
        for call in calls:
            decision = self._policy.explain(call)
            if decision.logged:
                logged.append(call)
            else:
                skipped.append(decision)
        errors = [*refused, *errors]
        for error in errors:
            log.warning("ringcentral.call_log.unreadable_record", error=str(error))
        return Stretch(len(records) + len(refused), tuple(logged), tuple(skipped), tuple(errors))

    async def _mapped(
        self, records: list[CallLogRecord], refused: Sequence[RecordError]
    ) -> Stretch:
        batch = self.map_records(records, refused)
        if batch.errors and self._quarantine is not None:
            await self._quarantine(batch.errors)
        return batch

    async def pages(self, start: datetime, end: datetime) -> AsyncIterator[Stretch]:
        """The call log of calls started in [start, end), one mapped page at a time."""
        async for page in self._rest.call_log_pages(start, end):
            yield await self._mapped(page.records, page.refused)

    async def read(self, start: datetime, end: datetime) -> Stretch:
        total = Stretch.empty()
        async for batch in self.pages(start, end):
            total = total + batch
        return total

    async def wait_for_records(self, ended_at: datetime) -> None:
        """Sleep until calls that ended by `ended_at` are in the call log."""
        ready = ended_at + timedelta(seconds=self._delay)
        wait = (ready - self._now()).total_seconds()
        if wait > 0:
            await self._sleep(wait)

    async def read_gap(self, gap: Gap) -> Stretch:
        """The call log of the calls that started in ``gap`` (widened by the margin), now."""
        return await self.read(gap.start - self._margin, gap.end + self._margin)

    async def close_gap(self, gap: Gap, in_flight: Iterable[str] = ()) -> EndsLookup:
        """Everything that happened in `gap`, plus the in-flight sessions it may have ended."""
        await self.wait_for_records(gap.end)
        batch = await self.read_gap(gap)
        seen = batch.sessions()
        log.info(
            "ringcentral.gap.closed",
            start=gap.start.isoformat(),
            end=gap.end.isoformat(),
            reason=gap.reason.value,
            records=batch.records,
            calls=len(batch.calls),
        )
        pending = [tsid for tsid in dict.fromkeys(in_flight) if tsid not in seen]
        resolution = await self.resolve_sessions(pending, wait=False)
        return EndsLookup(
            batch + resolution.batch,
            resolution.ended,
            resolution.active,
            resolution.unresolved,
        )

    async def resolve_sessions(
        self, session_ids: Iterable[str], *, since: datetime | None = None, wait: bool = True
    ) -> EndsLookup:
        """Sessions whose end was missed: still live, or ended (then their call logs).

        With `since` (no session started before it) the ended ones are read with one call-log
        query instead of one per session: the call log is in the Heavy group (10/min).
        """
        ended: list[str] = []
        active: list[str] = []
        for tsid in dict.fromkeys(session_ids):
            if await self._rest.telephony_session(tsid) is None:
                ended.append(tsid)
            else:
                active.append(tsid)
        if not ended:
            return EndsLookup(Stretch.empty(), (), tuple(active))
        if wait:
            await self.wait_for_records(self._now())
        now = self._now()
        pages: list[CallLogPage] = []
        if since is not None:
            wanted = set(ended)
            for page in await self._pages(since - self._margin, now):
                records = [r for r in page.records if r.telephonySessionId in wanted]
                pages.append(CallLogPage(records, page.refused))
        else:
            for tsid in ended:
                pages.append(await self._rest.call_log_for_session(tsid, now - self._lookback, now))
        records = [record for page in pages for record in page.records]
        found = {record.telephonySessionId for record in records}
        return EndsLookup(
            await self._mapped(records, [error for page in pages for error in page.refused]),
            tuple(t for t in ended if t in found),
            tuple(active),
            tuple(t for t in ended if t not in found),
        )

    async def _pages(self, start: datetime, end: datetime) -> list[CallLogPage]:
        return [page async for page in self._rest.call_log_pages(start, end)]
