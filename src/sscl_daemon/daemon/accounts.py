"""One account's runtime inside the daemon: from its WebSocket to its CRM writers.

Where it sits: the daemon (:mod:`.app`) owns what the process shares (store,
admin endpoint, signals, systemd notifications, metrics); the lease loop
(:mod:`.lease`) starts an :class:`AccountRunner` for an account only while this
instance holds the account's lease, and stops it the moment the lease is lost.

A runner logs in to RingCentral with the account's credentials, loads its
extension directory, restores the tracker's snapshot and the WebSocket recovery
point, then runs the subscription feeding the pipeline, the group committer,
one dispatcher per writer, the reconciler for gaps (and, once subscribed, for
the time since the checkpoint), expiry, snapshots, the outbox retention, and token and
directory refresh. Every store write of the account carries the lease as ``fence``, so a
deposed runner's writes are refused (:class:`LeaseLostError`), which stops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from sscl_daemon import metrics
from sscl_daemon.calls.directory import Directory, DirectoryError
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.config import DEFAULT_ACCOUNT, AccountSettings, Settings, WriterSettings
from sscl_daemon.configured_policy import policy_options
from sscl_daemon.crm.base import Described
from sscl_daemon.crm.enrich import Enricher
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.daemon.groupcommit import CommitHealth
from sscl_daemon.daemon.pipeline import Committer, Pipeline, make_committer
from sscl_daemon.daemon.retention import prune_loop
from sscl_daemon.daemon.supervise import Backoff, FatalError, supervise
from sscl_daemon.dispatch import Dispatcher, SentHook
from sscl_daemon.enrichment import EnrichmentRunner
from sscl_daemon.logging import get_logger
from sscl_daemon.ringcentral.auth import Authenticator, AuthError, KeptSession
from sscl_daemon.ringcentral.directory import (
    ZoneBook,
    keep_fresh,
    load_directory,
    stored_directory,
)
from sscl_daemon.ringcentral.media import MediaClient
from sscl_daemon.ringcentral.reconcile import Reconciler, Stretch
from sscl_daemon.ringcentral.recorder import open_recorder
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted
from sscl_daemon.ringcentral.subscription import (
    ConnectionState,
    Gap,
    GapReason,
    Item,
    RawNotification,
    RecoveryPoint,
    StateChange,
    Subscription,
)
from sscl_daemon.store import (
    DeadLetter,
    DeadLetterKind,
    Lease,
    LeaseLostError,
    Store,
    StoreError,
)
from sscl_daemon.store.credentials import CredentialVault, credential_name
from sscl_daemon.store.enrichments import Enrichments

log = get_logger(__name__)

# How often sessions whose completion grace passed are completed without a new event.
EXPIRE_INTERVAL = 0.25
# A gap's call log is read again this many seconds after the first read (records that
# appear late: a warm transfer's, once both its sessions ended).
GAP_READ_AGAIN = (120.0, 600.0)
# How far before a gap's end its re-reads keep the checkpoint back: a restart's gap runs
# from the checkpoint, so without a bound restarts more often than the last re-read would
# carry the checkpoint (and the startup gap's window) back without end.
GAP_READ_AGAIN_SPAN = 3600.0
# At most one directory load per this many seconds for extensions it did not know.
DIRECTORY_ON_DEMAND_INTERVAL = 60.0
# The call log is in the Heavy rate group (10 requests/min): one read per round at most.
SUSPECT_INTERVAL = 6.0
# A suspect still followed by the tracker is looked up after this long without an event.
SUSPECT_SILENCE = 10.0
# How long before it was first seen a suspect session may have started (call-log window).
SUSPECT_LOOKBACK = 900.0
REFRESH_TOKEN_FILE = "ringcentral-refresh-token"
# The tasks that keep the live stream going while the writers drain at a stop: the
# subscription (and the token it reconnects with), the expiry completing its sessions and
# the committer writing their calls.
STREAMING = ("subscription", "auth-refresh", "expiry", "committer")
# The gateway's default recovery window when none was recorded (research A8).
DEFAULT_RECOVERY_WINDOW = 180.0


def tracker_options(account: AccountSettings) -> TrackerOptions:
    return TrackerOptions(
        completion_grace_s=account.calls.completion_grace,
        session_timeout_s=account.calls.session_timeout,
        default_region=account.calls.default_region,
    )


def refresh_token_path(state_dir: Path, account: str) -> Path:
    """Where versions before the credentials table kept the refresh token (read on upgrade)."""
    if account == DEFAULT_ACCOUNT:
        return state_dir / REFRESH_TOKEN_FILE
    return state_dir / f"{REFRESH_TOKEN_FILE}-{account}"


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


class AccountRunner:
    """Processes one account while its lease is held; :meth:`start`, then one of the stops."""

    def __init__(
        self,
        settings: Settings,
        account: AccountSettings,
        store: Store,
        http: aiohttp.ClientSession,
        lease: Lease,
        *,
        claimer: str,
        may_write: Callable[[], bool],
        on_sent: SentHook | None,
        on_fatal: Callable[[str], None],
        on_state: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.account = account
        self.lease = lease
        self._store = store
        self._http = http
        self._claimer = claimer
        self._may_write = may_write
        self._on_sent = on_sent
        self._on_fatal = on_fatal
        self._on_state = on_state
        self.subscribed = False
        self.ever_subscribed = False
        # Set when a fenced write was refused: another instance holds the account now.
        self.lost = asyncio.Event()
        self.calls_committed = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._dispatchers: dict[str, Dispatcher] = {}
        self._runners: dict[str, EnrichmentRunner] = {}
        self._account_id = "~"
        self._startup_gap_from: datetime | None = None
        self._startup_hold: int | None = None
        self._recovery: RecoveryPoint | None = None
        self._pipeline: Pipeline | None = None
        self._committer: Committer | None = None
        self._rest: RestClient | None = None
        # The users' RingCentral time zones, shared by every load of the directory.
        self._zones = ZoneBook()

    @property
    def name(self) -> str:
        return self.account.name

    def _vault(self, name: str) -> CredentialVault:
        """This account's credential ``name`` in the store (rotated CRM refresh tokens)."""
        return CredentialVault(self._store, self.name, name)

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Restore and start the account's tasks (refused credentials stop the subscription)."""
        store, http, rc = self._store, self._http, self.account.ringcentral
        # In Postgres, so a standby on another machine resumes the same OAuth session.
        kept = KeptSession(
            self._vault(ringcentral_credential(self.account)),
            legacy_file=refresh_token_path(self.settings.daemon.state_dir, self.name),
        )
        auth = Authenticator(
            http, rc, refresh_token=await kept.refresh_token(), on_tokens=kept.keep
        )
        rest = RestClient(http, auth, rc.server, request_timeout=rc.request_timeout)
        self._rest = rest
        # The directory of the last run: a fresh one is loaded beside the subscription (a
        # throttled or paused extension-list read must not hold live logging back).
        directory = await self._load_directory()
        policy = Policy(policy_options(self.account), directory)
        tracker = Tracker(directory, tracker_options(self.account), policy)
        committer = make_committer(
            store,
            self.lease.account,
            lambda: list(self._dispatchers),
            interval=self.settings.store.commit_interval_ms / 1000,
            max_batch=self.settings.store.commit_max_batch,
            on_committed=self._committed,
            fence=self.lease,
        )
        recorder = open_recorder(self.settings.daemon.state_dir, self.account.ringcentral)
        pipeline = Pipeline(tracker, committer, recorder)
        self._pipeline = pipeline
        self._committer = committer
        pipeline.on_directory_wanted = self._directory_wanted(rest, pipeline)
        await self._restore(pipeline)
        # Claims of earlier holders of this account cannot be settled any more (their
        # writes are fenced): make their rows due now, as uncertain, instead of at claim end.
        released = await store.expire_claims("", self._claimer, self.name)
        if released:
            log.info(
                "daemon.account.calls_taken_over",
                account=self.name,
                rows=released,
                hint="calls a former holder had in flight are written again (once, by key)",
            )
        for writer_settings in self.account.writers:
            if writer_settings.enabled:
                self._dispatchers[writer_settings.name] = Dispatcher(
                    store,
                    build_writer(writer_settings, http, self._vault),
                    writer_settings,
                    claimer=self._claimer,
                    account=self.name,
                    on_sent=self._on_sent,
                    fence=self.lease,
                    may_write=self._may_write,
                )
                self._enrichment(self._dispatchers[writer_settings.name], rest)
        if not self._dispatchers:
            log.warning(
                "daemon.account.no_writer",
                account=self.name,
                hint="no writer is enabled: calls are tracked and stored but not logged",
            )
        self._supervise("committer", committer.run)
        self._supervise("subscription", lambda: self._subscribe(rest, pipeline), fatal=(AuthError,))
        for name, dispatcher in self._dispatchers.items():
            self._supervise(f"dispatcher:{name}", _prepared(dispatcher))
        for name, runner in self._runners.items():
            self._supervise(f"enricher:{name}", runner.run, fatal=(AuthError,))
        self._supervise("auth-refresh", auth.keep_fresh, fatal=(AuthError,))
        self._supervise(
            "directory-refresh",
            lambda: keep_fresh(
                rest,
                rc.directory_refresh,
                self._new_directory(pipeline),
                keep=self._keep_directory,
                first_delay=0.0,
                zones=self._zones,
            ),
            fatal=(AuthError,),
        )
        self._supervise("expiry", lambda: self._expire_loop(pipeline))
        self._supervise("suspects", lambda: self._suspect_loop(pipeline), fatal=(AuthError,))
        self._supervise("snapshots", lambda: self._snapshot_loop(pipeline))
        # The store settings are read each round, so that a reload applies to the retention.
        self._supervise(
            "retention", lambda: prune_loop(store, self.lease, lambda: self.settings.store)
        )

    def _enrichment(self, dispatcher: Dispatcher, rest: RestClient) -> None:
        """A writer that can update its logs gets a runner for their recordings and voicemail
        (issue 15); the dispatcher queues the updates of every record it creates."""
        if not isinstance(dispatcher.writer, Enricher):
            return
        runner = EnrichmentRunner(
            Enrichments(self._store),
            lambda: dispatcher.writer,
            lambda: dispatcher.settings,
            MediaClient(
                self._http, rest, max_bytes=dispatcher.settings.contacts.media_max_mb * 1_000_000
            ),
            account=self.name,
            claimer=self._claimer,
            fence=self.lease,
            may_write=self._may_write,
        )
        dispatcher.on_created = runner.created
        self._runners[dispatcher.name] = runner

    async def shutdown(self) -> None:
        """Graceful stop while the lease is still held: drain the writers, commit, snapshot.

        The stream goes on while the writers finish their requests (up to ``grace``): after
        the restart the gateway replays only its last 100 notifications (research A8), so
        each second the WebSocket is closed before the process ends costs live events.
        It stops only before the final commit, so the snapshot and recovery point saved
        there are of the same moment.
        """
        grace = self.settings.daemon.shutdown_timeout
        writing = {f"dispatcher:{n}" for n in self._dispatchers}
        await cancel_tasks(
            [t for name, t in self._tasks.items() if name not in {*STREAMING, *writing}]
        )
        await cancel_tasks(list(self._background))
        drained = await asyncio.gather(
            *(d.drain(grace) for d in self._dispatchers.values()), return_exceptions=True
        )
        await cancel_tasks([t for name, t in self._tasks.items() if name != "committer"])
        # and the gap reads the stream started meanwhile (a subscription after a reconnect)
        await cancel_tasks(list(self._background))
        self._set_subscribed(False)
        if self._pipeline is not None:
            try:
                async with asyncio.timeout(grace):
                    await self._save_state(self._pipeline)
            except (TimeoutError, StoreError) as exc:
                log.error(
                    "daemon.account.final_commit_failed",
                    account=self.name,
                    error=repr(exc),
                )
        if not all(result is True for result in drained):
            log.warning(
                "daemon.account.drain_timed_out",
                account=self.name,
                grace=grace,
                hint="the CRM requests that did not finish in time are retried after restart",
            )
        await cancel_tasks(list(self._tasks.values()))

    async def abort(self) -> None:
        """The lease is lost: stop everything now, write nothing more (the new holder goes on).

        Requests already sent to a CRM cannot be recalled; their rows are settled
        by the new holder, which sends them again as uncertain (look up first).
        """
        await cancel_tasks([*self._tasks.values(), *self._background])
        await asyncio.gather(
            *(d.drain(0.0) for d in self._dispatchers.values()), return_exceptions=True
        )
        self._set_subscribed(False)

    # ---- supervision -----------------------------------------------------------------

    def _supervise(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        fatal: tuple[type[BaseException], ...] = (),
    ) -> None:
        task_name = f"{self.name}:{name}"
        coro = supervise(task_name, self._fenced(run), backoff=Backoff(), fatal=fatal)
        task = asyncio.create_task(coro, name=task_name)
        self._tasks[name] = task
        task.add_done_callback(self._task_done)

    def _fenced(self, run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """A refused fenced write is not a crash to retry: the account belongs to another now."""

        async def guarded() -> None:
            try:
                await run()
            except LeaseLostError as exc:
                log.warning(
                    "daemon.account.fenced_out",
                    account=self.name,
                    error=str(exc),
                    hint="a fenced write was refused: the lease is lost; stopping the account",
                )
                self.lost.set()
                # Parked until the lease loop cancels the runner.
                await asyncio.Event().wait()

        return guarded

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        self._task_done(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, FatalError):
            self._on_fatal(str(exc))
        elif isinstance(exc, LeaseLostError):
            self.lost.set()
        elif exc is not None:
            log.error(
                "daemon.task.failed", account=self.name, task=task.get_name(), error=repr(exc)
            )

    # ---- start-up state --------------------------------------------------------------

    async def _load_directory(self) -> Directory | None:
        """The directory the last run stored (None: heuristics until the first load)."""
        data = await self._store.load_directory(self.name)
        if data is None:
            log.info(
                "daemon.directory.not_stored",
                account=self.name,
                hint="using heuristics until the extension directory loads",
            )
            return None
        try:
            directory = stored_directory(data, self._zones)
        except DirectoryError as exc:
            log.warning("daemon.directory.unusable", account=self.name, error=str(exc))
            return None
        log.info("daemon.directory.restored", account=self.name, extensions=len(directory))
        return directory

    async def _keep_directory(self, data: bytes) -> None:
        if self._pipeline is not None and self._pipeline.recorder is not None:
            self._pipeline.recorder.keep_directory(data)
        try:
            await self._store.save_directory(self.name, data, fence=self.lease)
        except LeaseLostError:
            raise
        except StoreError as exc:
            # Only the next start's first minutes depend on it: not worth failing the reload.
            log.warning("daemon.directory.store_failed", account=self.name, error=str(exc))

    def _directory_wanted(self, rest: RestClient, pipeline: Pipeline) -> Callable[[set[str]], None]:
        """A session names extensions the directory does not know: load it again now.

        At most one load per DIRECTORY_ON_DEMAND_INTERVAL (an unknown-extension flood must
        not eat the rate budget); the tracker decides such sessions after its own wait
        whether or not a load came.
        """
        last: list[float] = []

        def wanted(extension_ids: set[str]) -> None:
            now = asyncio.get_running_loop().time()
            if last and now - last[0] < DIRECTORY_ON_DEMAND_INTERVAL:
                return
            last[:] = [now]
            log.info(
                "daemon.directory.reload_wanted",
                account=self.name,
                extensions=len(extension_ids),
                hint="calls name extensions the directory does not know; loading it again",
            )
            self._spawn("directory-on-demand", self._load_directory_now(rest, pipeline))

        return wanted

    async def _load_directory_now(self, rest: RestClient, pipeline: Pipeline) -> None:
        try:
            directory = await load_directory(rest, self._zones)
        except (ApiError, RetriesExhausted, DirectoryError, aiohttp.ClientError) as exc:
            log.warning("daemon.directory.load_failed", account=self.name, error=str(exc))
            return
        self._new_directory(pipeline)(directory)

    def _new_directory(self, pipeline: Pipeline) -> Callable[[Directory], None]:
        def apply(directory: Directory) -> None:
            pipeline.tracker.replace_directory(directory)

        return apply

    async def _restore(self, pipeline: Pipeline) -> None:
        store, account = self._store, self.name
        checkpoint = await store.load_checkpoint(account)
        snapshot = await store.load_snapshot(account)
        try:
            restored = pipeline.restore(snapshot, checkpoint)
        except ValueError as exc:
            log.error(
                "daemon.snapshot.dead_lettered",
                account=account,
                error=str(exc),
                hint="the in-flight snapshot cannot be restored; kept as a dead letter",
            )
            letter = DeadLetter(DeadLetterKind.SNAPSHOT, str(exc), snapshot or b"")
            await store.add_dead_letters(account, [letter])
            restored = pipeline.restore(None, checkpoint)
        # Events between the snapshot and the stop are gone from memory.
        pipeline.mark_suspects(pipeline.in_flight_sessions())
        if checkpoint is not None and checkpoint.last_event_time is not None:
            self._startup_gap_from = checkpoint.last_event_time
            # Until the downtime is read from the call log, the checkpoint must not pass it.
            self._startup_hold = pipeline.hold(checkpoint.last_event_time)
        token = await store.load_recovery_token(account)
        if token is not None:
            self._recovery = RecoveryPoint.from_stored(
                token.token,
                token.expires_at,
                token.oauth_session or None,
                DEFAULT_RECOVERY_WINDOW,
                sequence=token.sequence,
            )
        log.info(
            "daemon.state.restored",
            account=account,
            in_flight_sessions=restored,
            checkpoint=checkpoint.last_event_time.isoformat()
            if checkpoint and checkpoint.last_event_time
            else None,
            websocket_resume="possible" if token is not None else "no",
        )

    # ---- the subscription ------------------------------------------------------------

    async def _subscribe(self, rest: RestClient, pipeline: Pipeline) -> None:
        async def persist(point: RecoveryPoint) -> None:
            # Written with the next snapshot, so that a recovery after a restart replays
            # exactly what the restored tracker has not seen.
            self._recovery = point

        subscription = Subscription(
            rest, self.account.ringcentral, recovery=self._recovery, persist=persist
        )
        try:
            await subscription.run(lambda item: self._on_item(item, pipeline))
        except AuthError as exc:
            # The first RingCentral request of a start is the subscription's (the directory
            # no longer goes first): this is where refused credentials show.
            log.error(
                "daemon.account.credentials_refused",
                account=self.name,
                error=str(exc),
                hint="RingCentral refused the credentials; stopping",
            )
            raise FatalError(f"account {self.name}: {exc}") from exc
        finally:
            self._recovery = subscription.recovery_point or self._recovery
            self._set_subscribed(False)

    async def _on_item(self, item: Item, pipeline: Pipeline) -> None:
        if isinstance(item, RawNotification):
            await pipeline.on_notification(item.envelope, item.received_at)
            if pipeline.account_id is not None:
                self._account_id = pipeline.account_id
        elif isinstance(item, Gap):
            metrics.WS_GAPS.inc()
            if item.reason is GapReason.RECOVERY_FAILED:
                metrics.WS_RECOVERIES.labels(result="failed").inc()
            self._reconcile(item, "gap", pipeline)
        elif isinstance(item, StateChange):
            self._state_change(item, pipeline)

    def _state_change(self, change: StateChange, pipeline: Pipeline) -> None:
        state = change.state
        if state is ConnectionState.DISCONNECTED:
            self._set_subscribed(False)
            return
        if state not in (ConnectionState.SUBSCRIBED, ConnectionState.RECOVERED):
            return
        if state is ConnectionState.RECOVERED:
            metrics.WS_RECOVERIES.labels(result="successful").inc()
        if self.ever_subscribed:
            metrics.WS_RECONNECTS.inc()
        if self._startup_gap_from is not None:
            start, self._startup_gap_from = self._startup_gap_from, None
            gap = Gap(start, datetime.now(UTC), GapReason.NO_RECOVERY_TOKEN, "daemon restart")
            self._reconcile(gap, "startup", pipeline, self._startup_hold)
        if not self.ever_subscribed:
            log.info("daemon.account.subscribed", account=self.name)
        self.ever_subscribed = True
        self._set_subscribed(True)

    def _set_subscribed(self, value: bool) -> None:
        changed = self.subscribed != value
        self.subscribed = value
        if changed:
            self._on_state()

    def _reconcile(
        self, gap: Gap, trigger: str, pipeline: Pipeline, held: int | None = None
    ) -> None:
        pipeline.mark_suspects(pipeline.in_flight_sessions())
        hold = pipeline.hold(gap.start) if held is None else held

        async def close() -> None:
            reconciler = self._reconciler(pipeline)
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

        name = f"{self.name}:reconcile:{trigger}"
        self._spawn(f"reconcile:{trigger}", supervise(name, close, fatal=(AuthError,)))

    def _reconciler(self, pipeline: Pipeline) -> Reconciler:
        rest = self._rest
        assert rest is not None
        return Reconciler(
            rest,
            self._account_id,
            policy_of(pipeline),
            lambda: pipeline.tracker.directory,
            call_log_delay=self.account.ringcentral.call_log_delay,
            quarantine=pipeline.quarantine_records,
        )

    async def _suspect_loop(self, pipeline: Pipeline) -> None:
        """Sessions that may have lost events are settled from the call log (calls/settling.py).

        Each round reads the call log once for every session due (finished by the tracker,
        or silent while followed), however many: the call log is in the Heavy group. A
        session whose record is found is logged from it, together with what was seen live
        (calls/merge.py), and dropped from the tracker, whose timeout would otherwise log
        it again under its own keys. One not found is read again later on a bounded
        schedule; once that is exhausted it is logged from what was seen (a session still
        followed is first looked up: the platform may still have it live).
        """
        delay = self.account.ringcentral.call_log_delay
        interval = max(delay, SUSPECT_INTERVAL)
        silent = max(SUSPECT_SILENCE, delay)
        while True:
            await asyncio.sleep(interval)
            now = datetime.now(UTC)
            finished, quiet = pipeline.due_suspects(now, silent)
            if finished or quiet:
                await self._settle_due(self._reconciler(pipeline), pipeline, finished + quiet)
            waiting = len(pipeline.settling)
            metrics.SESSIONS_AWAITING_CALL_LOG.set(waiting)

    async def _settle_due(
        self, reconciler: Reconciler, pipeline: Pipeline, sessions: list[str]
    ) -> None:
        """One call-log read for every session due; settle the found, reschedule the rest."""
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
            account=self.name,
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
                account=self.name,
                session=tsid,
                hint="no call-log record for a session that ended; logging what was seen live",
            )
            metrics.SESSIONS_GIVEN_UP.inc()
            await pipeline.give_up_suspect(tsid)

    # ---- periodic work ---------------------------------------------------------------

    async def _expire_loop(self, pipeline: Pipeline) -> None:
        while True:
            await pipeline.expire(datetime.now(UTC))
            await asyncio.sleep(EXPIRE_INTERVAL)

    async def _snapshot_loop(self, pipeline: Pipeline) -> None:
        while True:
            await asyncio.sleep(self.settings.daemon.snapshot_interval)
            await self._save_state(pipeline)

    async def _save_state(self, pipeline: Pipeline) -> None:
        """Snapshot and recovery point of the same moment, once its calls are committed."""
        point, store, lease = self._recovery, self._store, self.lease

        async def save(data: bytes) -> None:
            await store.save_snapshot(self.name, data, fence=lease)
            if point is None:
                return
            if point.token is None:
                await store.clear_recovery_token(self.name)
            else:
                await store.save_recovery_token(
                    self.name,
                    point.token,
                    point.expires_at,
                    point.oauth_session or "",
                    sequence=point.sequence,
                    fence=lease,
                )

        await pipeline.snapshot(save)

    def _committed(self, calls: list[CompletedCall]) -> None:
        self.calls_committed += len(calls)
        for dispatcher in self._dispatchers.values():
            dispatcher.wake()

    # ---- reload ----------------------------------------------------------------------

    @property
    def pipeline(self) -> Pipeline | None:
        return self._pipeline

    def writer_facts(self) -> dict[str, dict[str, str]]:
        """What each writer found out about its CRM (HubSpot's key mode), for ``status``."""
        return {
            name: dict(d.writer.facts())
            for name, d in self._dispatchers.items()
            if isinstance(d.writer, Described) and d.writer.facts()
        }

    def commit_health(self) -> CommitHealth | None:
        """Whether this account's commits are failing (None before it started)."""
        return None if self._committer is None else self._committer.health()

    def apply(self, settings: Settings, account: AccountSettings) -> None:
        """Live reload: new call policy, blocklist, scope and writer tuning."""
        self.settings = settings
        old, self.account = self.account, account
        pipeline = self._pipeline
        if pipeline is None:
            return
        policy = policy_of(pipeline)
        policy.replace_options(policy_options(account))
        if tracker_options(old) != tracker_options(account):
            directory = pipeline.tracker.directory
            pipeline.replace_tracker(Tracker(directory, tracker_options(account), policy))
        for writer in account.writers:
            self._retune(writer)

    def _retune(self, settings: WriterSettings) -> None:
        dispatcher = self._dispatchers.get(settings.name)
        if dispatcher is None or dispatcher.settings == settings:
            return
        dispatcher.replace_writer(build_writer(settings, self._http, self._vault), settings)


def policy_of(pipeline: Pipeline) -> Policy:
    policy = pipeline.tracker.policy
    assert policy is not None, "the daemon always runs the tracker with a policy"
    return policy


async def cancel_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them to end (bounded: a stuck task is left behind)."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5.0)


def ringcentral_credential(account: AccountSettings) -> str:
    """The credentials-table name of the account's RingCentral refresh token.

    Bound to the server, app and JWT user it was issued for: another login configuration
    starts a new session instead of resuming one of somebody else's.
    """
    rc = account.ringcentral
    return credential_name("ringcentral:refresh_token", rc.server, rc.client_id, rc.jwt.reveal())


def _prepared(dispatcher: Dispatcher) -> Callable[[], Awaitable[None]]:
    """The dispatcher's run once its writer read what it needs of its CRM (HubSpot's key
    mode: known, logged once and in ``status`` from the start, not from the first call)."""

    async def run() -> None:
        if isinstance(dispatcher.writer, Described):
            await dispatcher.writer.prepare()
        await dispatcher.run()

    return run
