"""One account's call-log reads: closing the stream's gaps and settling suspect sessions.

Where it sits: :class:`~sscl_daemon.daemon.accounts.AccountRunner` hands every
:class:`~sscl_daemon.ringcentral.stream_items.Gap` of its subscription (and, once
subscribed, the downtime since the checkpoint) to :meth:`CallLogReads.reconcile`, and runs
:meth:`CallLogReads.suspect_loop` as its ``suspects`` task. Both read the call log through
a :class:`~sscl_daemon.ringcentral.reconcile.Reconciler` and feed what they find to the
pipeline; a gap's reads hold the checkpoint back until they are done, so a restart reads
the gap again instead of forgetting it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp

from sscl_daemon import metrics
from sscl_daemon.calls.policy import Policy
from sscl_daemon.config import AccountSettings
from sscl_daemon.daemon.account_directory import Spawn
from sscl_daemon.daemon.pipeline import Pipeline
from sscl_daemon.daemon.supervise import supervise
from sscl_daemon.logging import get_logger
from sscl_daemon.ringcentral.auth import AuthError
from sscl_daemon.ringcentral.reconcile import Reconciler, Stretch
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted
from sscl_daemon.ringcentral.stream_items import Gap

log = get_logger(__name__)

# A gap's call log is read again this many seconds after the first read (records that
# appear late: a warm transfer's, once both its sessions ended).
GAP_READ_AGAIN = (120.0, 600.0)
# How far before a gap's end its re-reads keep the checkpoint back: a restart's gap runs
# from the checkpoint, so without a bound restarts more often than the last re-read would
# carry the checkpoint (and the startup gap's window) back without end.
GAP_READ_AGAIN_SPAN = 3600.0
# The call log is in the Heavy rate group (10 requests/min): one read per round at most.
SUSPECT_INTERVAL = 6.0
# A suspect still followed by the tracker is looked up after this long without an event.
SUSPECT_SILENCE = 10.0
# How long before it was first seen a suspect session may have started (call-log window).
SUSPECT_LOOKBACK = 900.0


def read_again_from(gap: Gap) -> datetime:
    """Where a gap's re-reads keep the checkpoint: its start, at most a bounded span back."""
    return max(gap.start, gap.end - timedelta(seconds=GAP_READ_AGAIN_SPAN))


async def read_gap_again(
    read: Callable[[], Awaitable[Stretch]],
    pipeline: Pipeline,
    hold: int,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Read a closed gap's call log again later, for calls that were wholly inside it.

    A record can appear long after its call's end: a warm transfer's records are written
    once both its sessions ended, and a first session that began and ended inside the gap
    was never seen, so no waiting session stands for it (issue 19 cause 1). Only sessions
    the tracker never saw are taken: the others are logged live or settle through their
    own schedule. ``hold`` (at :func:`read_again_from`, see :meth:`Pipeline.hold`) is
    released only after the last read: until then the checkpoint stays at the gap's start,
    so a restart reads the gap again from the call log, re-reads included, instead of
    forgetting them.
    """
    try:
        for delay in GAP_READ_AGAIN:
            await sleep(delay)
            batch = await read()
            await pipeline.add_reconciled(pipeline.unseen(batch.calls))
    except asyncio.CancelledError:
        raise  # stopping: the hold stays in the last checkpoint, the next start reads again
    except Exception:
        pipeline.release(hold)  # a failed read must not hold the checkpoint back for good
        raise
    pipeline.release(hold)


def policy_of(pipeline: Pipeline) -> Policy:
    policy = pipeline.tracker.policy
    assert policy is not None, "the daemon always runs the tracker with a policy"
    return policy


class CallLogReads:
    """The call-log reads of one account's pipeline (``account``: its settings of the moment,
    ``account_id``: its RingCentral account id once a notification named it)."""

    def __init__(
        self,
        rest: RestClient,
        pipeline: Pipeline,
        *,
        name: str,
        account: Callable[[], AccountSettings],
        account_id: Callable[[], str],
        spawn: Spawn,
    ) -> None:
        self._rest = rest
        self._pipeline = pipeline
        self._name = name
        self._account = account
        self._account_id = account_id
        self._spawn = spawn

    def reconcile(self, gap: Gap, trigger: str, held: int | None = None) -> None:
        """Close ``gap`` from the call log in the background (``held``: its hold, if taken)."""
        pipeline = self._pipeline
        pipeline.mark_suspects(pipeline.in_flight_sessions())
        hold = pipeline.hold(gap.start) if held is None else held

        async def close() -> None:
            reconciler = self.reconciler()
            try:
                resolution = await reconciler.close_gap(gap)
            except (ApiError, RetriesExhausted, aiohttp.ClientError):
                metrics.RECONCILE_RUNS.labels(trigger=trigger, result="error").inc()
                raise
            await pipeline.add_reconciled(list(resolution.batch.calls))
            # Suspects this read already covers need no call-log read of their own (the
            # Heavy budget is ten reads a minute, and a busy gap can take all of them).
            pipeline.settle_finished(resolution.batch.sessions())
            metrics.RECONCILE_RUNS.labels(trigger=trigger, result="ok").inc()
            rereads = pipeline.hold(read_again_from(gap))
            pipeline.release(hold)
            again = read_gap_again(lambda: reconciler.read_gap(gap), pipeline, rereads)
            self._spawn(f"reconcile:{trigger}:again", again)

        name = f"{self._name}:reconcile:{trigger}"
        self._spawn(f"reconcile:{trigger}", supervise(name, close, fatal=(AuthError,)))

    def reconciler(self) -> Reconciler:
        pipeline = self._pipeline
        return Reconciler(
            self._rest,
            self._account_id(),
            policy_of(pipeline),
            lambda: pipeline.tracker.directory,
            call_log_delay=self._account().ringcentral.call_log_delay,
            quarantine=pipeline.quarantine_records,
        )

    async def suspect_loop(self) -> None:
        """Sessions that may have lost events are settled from the call log (calls/settling.py).

        Each round reads the call log once for every session due (finished by the tracker,
        or silent while followed), however many: the call log is in the Heavy group. A
        session whose record is found is logged from it, together with what was seen live
        (calls/merge.py), and dropped from the tracker, whose timeout would otherwise log
        it again under its own keys. One not found is read again later on a bounded
        schedule; once that is exhausted it is logged from what was seen (a session still
        followed is first looked up: the platform may still have it live).
        """
        pipeline = self._pipeline
        delay = self._account().ringcentral.call_log_delay
        interval = max(delay, SUSPECT_INTERVAL)
        silent = max(SUSPECT_SILENCE, delay)
        while True:
            await asyncio.sleep(interval)
            now = datetime.now(UTC)
            finished, quiet = pipeline.due_suspects(now, silent)
            if finished or quiet:
                await self._settle_due(self.reconciler(), finished + quiet)
            waiting = len(pipeline.settling)
            metrics.SESSIONS_AWAITING_CALL_LOG.set(waiting)

    async def _settle_due(self, reconciler: Reconciler, sessions: list[str]) -> None:
        """One call-log read for every session due; settle the found, reschedule the rest."""
        pipeline = self._pipeline
        since = pipeline.suspect_since(sessions)
        assert since is not None
        wanted = set(sessions)
        now = datetime.now(UTC)
        batch = await reconciler.read(
            since - timedelta(seconds=SUSPECT_LOOKBACK), now + timedelta(minutes=1)
        )
        calls = [c for c in batch.calls if c.telephony_session_id in wanted]
        await pipeline.add_reconciled(calls)
        # A record is written once the call has ended (research C5): settled, followed or not.
        settled = wanted & batch.sessions()
        pipeline.settle_suspects(settled)
        exhausted = pipeline.suspects_not_found(wanted - settled, now)
        log.info(
            "daemon.sessions.settled",
            account=self._name,
            hint="sessions that may have lost events, settled from the call log",
            sessions=len(settled),
            calls=len(calls),
            waiting=len(pipeline.settling),
        )
        followed = [tsid for tsid in exhausted if tsid in pipeline.tracker]
        if followed:
            # Their end was never seen: the platform may have them live still (Light group).
            resolution = await reconciler.resolve_sessions(followed, wait=False)
            await pipeline.add_reconciled(list(resolution.batch.calls))
            pipeline.settle_suspects(resolution.ended)
            for tsid in resolution.active:
                pipeline.keep_waiting(tsid)
            exhausted = [t for t in exhausted if t in pipeline.settling]
            exhausted = [t for t in exhausted if t not in resolution.active]
        for tsid in exhausted:
            log.warning(
                "daemon.session.given_up",
                account=self._name,
                session=tsid,
                hint="no call-log record for a session that ended; logging what was seen live",
            )
            metrics.SESSIONS_GIVEN_UP.inc()
            await pipeline.give_up_suspect(tsid)
