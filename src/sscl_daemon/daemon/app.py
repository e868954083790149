"""The daemon process: builds every part from the settings and runs them until stopped.

Start-up: open the store (starting the embedded PostgreSQL and applying
migrations), serve the admin endpoint, log in to RingCentral and load the
extension directory, restore the tracker's snapshot and the WebSocket
recovery point, then start the supervised tasks: the subscription feeding
the pipeline, the group committer, one dispatcher per writer, the
reconciler for gaps (and, once subscribed, for the time since the
checkpoint), housekeeping (expiry, snapshots, outbox gauges), token and
directory refresh, and the systemd watchdog. READY=1 goes out once the
subscription is live.

SIGHUP re-reads the file and applies what can change live (see
:mod:`.reload`); SIGTERM/SIGINT stop the subscription, commit what was
received, save the snapshot and give the writers ``daemon.shutdown_timeout``
to finish their requests. A failure that cannot heal (RingCentral refusing
the credentials) stops the daemon with exit code 2.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from sscl_daemon import metrics
from sscl_daemon.admin import AdminServer
from sscl_daemon.calls.directory import Directory, DirectoryError
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.policy import Policy, PolicyOptions
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.config import ConfigError, Secret, Settings, WriterSettings, load_config
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.daemon.pipeline import Pipeline, make_committer
from sscl_daemon.daemon.reload import plan_reload
from sscl_daemon.daemon.signals import SignalRequests, installed
from sscl_daemon.daemon.supervise import Backoff, FatalError, supervise
from sscl_daemon.dispatch import Dispatcher, SentHook
from sscl_daemon.logging import configure_logging, get_logger
from sscl_daemon.ringcentral.auth import Authenticator, AuthError, TokenSet
from sscl_daemon.ringcentral.directory import keep_fresh, load_directory
from sscl_daemon.ringcentral.reconcile import Reconciler
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted
from sscl_daemon.ringcentral.subscription import (
    ConnectionState,
    Gap,
    GapReason,
    Item,
    Notification,
    RecoveryPoint,
    StateChange,
    Subscription,
)
from sscl_daemon.sdnotify import Notifier
from sscl_daemon.store import DeadLetter, DeadLetterKind, Store, StoreError

log = get_logger(__name__)

# One daemon serves one RingCentral account; its rows in the store carry this key.
ACCOUNT = "default"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
# How often sessions whose completion grace passed are completed without a new event.
EXPIRE_INTERVAL = 0.25
OUTBOX_POLL_INTERVAL = 5.0
# Lookups of an ended session whose call-log record does not appear before giving up.
SUSPECT_ROUNDS = 10
# The call log is in the Heavy rate group (10 requests/min): one read per round at most.
SUSPECT_INTERVAL = 6.0
# A suspect still followed by the tracker is looked up after this long without an event.
SUSPECT_SILENCE = 10.0
# How long before it was first seen a suspect session may have started (call-log window).
SUSPECT_LOOKBACK = 900.0
REFRESH_TOKEN_FILE = "ringcentral-refresh-token"
# The gateway's default recovery window when none was recorded (research A8).
DEFAULT_RECOVERY_WINDOW = 180.0


def policy_options(settings: Settings) -> PolicyOptions:
    calls = settings.calls
    return PolicyOptions(
        log_internal=calls.log_internal,
        log_abandoned=calls.log_abandoned,
        missed_attribution=calls.missed_attribution,
        missed_owner_extension=calls.missed_owner_extension,
        blocklist=settings.blocklist,
        scope=settings.scope,
    )


def tracker_options(settings: Settings) -> TrackerOptions:
    return TrackerOptions(
        completion_grace_s=settings.calls.completion_grace,
        session_timeout_s=settings.calls.session_timeout,
        default_region=settings.calls.default_region,
    )


def claimer_name(settings: Settings) -> str:
    """Unique per process incarnation, so a restarted daemon never settles a dead one's claim."""
    return f"{settings.daemon.instance_name}:{os.getpid()}:{secrets.token_hex(3)}"


class Daemon:
    """One running daemon; :meth:`run` returns the process exit code."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
        on_sent: SentHook | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.settings = settings
        self._config_path = config_path or settings.source
        self._notifier = notifier or Notifier.from_env()
        self._on_sent = on_sent
        self._handle_signals = handle_signals
        self.requests = SignalRequests()
        self.subscribed = False
        self.ready = asyncio.Event()
        self._fatal: str | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._dispatchers: dict[str, Dispatcher] = {}
        self._account_id = "~"
        self._startup_gap_from: datetime | None = None
        self._recovery: RecoveryPoint | None = None
        self.store: Store | None = None
        self.admin_port: int | None = None
        self.calls_committed = 0
        self._suspect_rounds: dict[str, int] = {}
        self._startup_hold: int | None = None
        self._pipeline: Pipeline | None = None
        self._rest: RestClient | None = None
        self._http: aiohttp.ClientSession | None = None

    # ---- lifecycle -------------------------------------------------------------------

    async def run(self) -> int:
        configure_logging(self.settings)
        self._notifier.status("starting: opening the store")
        try:
            store = await Store.open(self.settings.store, self.settings.daemon.state_dir)
        except StoreError as exc:
            log.error("cannot open the store", error=str(exc))
            self._notifier.status(f"failed: {exc}")
            return EXIT_FAILURE
        self.store = store
        admin: AdminServer | None = None
        try:
            if self.settings.admin.enabled:
                admin = AdminServer(self.settings.admin, self._readiness)
                self.admin_port = await admin.start()
            async with aiohttp.ClientSession() as http:
                return await self._serve(store, http)
        finally:
            if admin is not None:
                await admin.stop()
            await store.close()
            self._notifier.close()

    async def _serve(self, store: Store, http: aiohttp.ClientSession) -> int:
        rc = self.settings.ringcentral
        refresh_file = self.settings.daemon.state_dir / REFRESH_TOKEN_FILE
        auth = Authenticator(
            http,
            rc,
            refresh_token=_read_secret(refresh_file),
            on_tokens=lambda tokens: _save_refresh_token(refresh_file, tokens),
        )
        rest = RestClient(http, auth, rc.server, request_timeout=rc.request_timeout)
        self._notifier.status("starting: loading the extension directory")
        try:
            directory = await self._load_directory(rest)
        except AuthError as exc:
            log.error("RingCentral refused the credentials; stopping", error=str(exc))
            self._notifier.status(f"failed: {exc}")
            return EXIT_CONFIG
        policy = Policy(policy_options(self.settings), directory)
        tracker = Tracker(directory, tracker_options(self.settings), policy)
        committer = make_committer(
            store,
            ACCOUNT,
            lambda: list(self._dispatchers),
            interval=self.settings.store.commit_interval_ms / 1000,
            max_batch=self.settings.store.commit_max_batch,
            on_committed=self._committed,
        )
        pipeline = Pipeline(tracker, committer)
        await self._restore(store, pipeline)
        claimer = claimer_name(self.settings)
        for writer_settings in self.settings.writers:
            if writer_settings.enabled:
                self._dispatchers[writer_settings.name] = Dispatcher(
                    store,
                    build_writer(writer_settings, http),
                    writer_settings,
                    claimer=claimer,
                    account=ACCOUNT,
                    on_sent=self._on_sent,
                )
        if not self._dispatchers:
            log.warning("no writer is enabled: calls are tracked and stored but not logged")

        self._supervise("committer", committer.run)
        for name, dispatcher in self._dispatchers.items():
            self._supervise(f"dispatcher:{name}", dispatcher.run)
        self._supervise("auth-refresh", auth.keep_fresh, fatal=(AuthError,))
        self._supervise(
            "directory-refresh",
            lambda: keep_fresh(rest, rc.directory_refresh, self._new_directory(pipeline)),
            fatal=(AuthError,),
        )
        self._supervise("subscription", lambda: self._subscribe(rest, pipeline), fatal=(AuthError,))
        self._supervise("expiry", lambda: self._expire_loop(pipeline))
        self._supervise("suspects", lambda: self._suspect_loop(pipeline), fatal=(AuthError,))
        self._supervise("snapshots", lambda: self._snapshot_loop(store, pipeline))
        self._supervise("outbox-gauges", lambda: self._outbox_loop(store))
        self._supervise("watchdog", self._notifier.run_watchdog)
        self._pipeline = pipeline
        self._rest = rest
        self._http = http
        if self._handle_signals:
            with installed(self.requests):
                await self._main_loop()
        else:
            await self._main_loop()
        await self._shutdown(store, pipeline)
        if self._fatal is not None:
            log.error("stopped because of an unrecoverable error", error=self._fatal)
            return EXIT_CONFIG
        log.info("stopped cleanly")
        return EXIT_OK

    async def _main_loop(self) -> None:
        while True:
            reload = asyncio.ensure_future(self.requests.reload.wait())
            stop = asyncio.ensure_future(self.requests.stop.wait())
            await asyncio.wait({reload, stop}, return_when=asyncio.FIRST_COMPLETED)
            reload.cancel()
            stop.cancel()
            if self.requests.stop.is_set():
                return
            self.requests.reload.clear()
            await self.reload()

    def stop(self) -> None:
        """Ask the daemon to drain and exit (what SIGTERM does)."""
        self.requests.request_stop("request")

    async def _shutdown(self, store: Store, pipeline: Pipeline) -> None:
        grace = self.settings.daemon.shutdown_timeout
        self._notifier.stopping("draining")
        log.info("stopping: no new events; committing and draining writers", grace=grace)
        keep = {"committer", *(f"dispatcher:{n}" for n in self._dispatchers)}
        await _cancel([t for name, t in self._tasks.items() if name not in keep])
        await _cancel(list(self._background))
        metrics.SUBSCRIBED.set(0)
        try:
            async with asyncio.timeout(grace):
                await self._save_state(store, pipeline)
        except (TimeoutError, StoreError) as exc:
            log.error("could not commit the last events and snapshot", error=repr(exc))
        drained = await asyncio.gather(
            *(d.drain(grace) for d in self._dispatchers.values()), return_exceptions=True
        )
        if not all(result is True for result in drained):
            log.warning(
                "some CRM requests did not finish in time; they are retried after restart",
                grace=grace,
            )
        await _cancel(list(self._tasks.values()))

    # ---- supervision -----------------------------------------------------------------

    def _supervise(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        fatal: tuple[type[BaseException], ...] = (),
    ) -> None:
        task = asyncio.create_task(supervise(name, run, backoff=Backoff(), fatal=fatal), name=name)
        self._tasks[name] = task
        task.add_done_callback(self._task_done)

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=name)
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
            if self._fatal is None:
                self._fatal = str(exc)
                self._notifier.status(f"failed: {exc}")
            self.requests.request_stop("fatal error")
        elif exc is not None:
            log.error("task ended with an error", task=task.get_name(), error=repr(exc))

    # ---- start-up state --------------------------------------------------------------

    async def _load_directory(self, rest: RestClient) -> Directory | None:
        try:
            directory = await load_directory(rest)
        except (ApiError, RetriesExhausted, DirectoryError, aiohttp.ClientError) as exc:
            log.warning(
                "extension directory unavailable; using heuristics until the next refresh",
                error=str(exc),
            )
            return None
        log.info("extension directory loaded", extensions=len(directory))
        return directory

    def _new_directory(self, pipeline: Pipeline) -> Callable[[Directory], None]:
        def apply(directory: Directory) -> None:
            pipeline.tracker.replace_directory(directory)

        return apply

    async def _restore(self, store: Store, pipeline: Pipeline) -> None:
        checkpoint = await store.load_checkpoint(ACCOUNT)
        snapshot = await store.load_snapshot(ACCOUNT)
        try:
            restored = pipeline.restore(snapshot, checkpoint)
        except ValueError as exc:
            log.error(
                "the in-flight snapshot cannot be restored; kept as a dead letter", error=str(exc)
            )
            letter = DeadLetter(DeadLetterKind.SNAPSHOT, str(exc), snapshot or b"")
            await store.add_dead_letters(ACCOUNT, [letter])
            restored = pipeline.restore(None, checkpoint)
        # Events between the snapshot and the stop are gone from memory.
        pipeline.mark_suspects(pipeline.in_flight_sessions())
        if checkpoint is not None and checkpoint.last_event_time is not None:
            self._startup_gap_from = checkpoint.last_event_time
            # Until the downtime is read from the call log, the checkpoint must not pass it.
            self._startup_hold = pipeline.hold(checkpoint.last_event_time)
        token = await store.load_recovery_token(ACCOUNT)
        if token is not None:
            self._recovery = RecoveryPoint(
                token=token.token,
                sequence=0,
                last_seen=token.expires_at - timedelta(seconds=DEFAULT_RECOVERY_WINDOW),
                recovery_timeout=DEFAULT_RECOVERY_WINDOW,
                oauth_session=token.oauth_session or None,
            )
        log.info(
            "state restored",
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
            rest, self.settings.ringcentral, recovery=self._recovery, persist=persist
        )
        try:
            await subscription.run(lambda item: self._on_item(item, pipeline))
        finally:
            self._recovery = subscription.recovery_point or self._recovery
            self._set_subscribed(False)

    async def _on_item(self, item: Item, pipeline: Pipeline) -> None:
        if isinstance(item, Notification):
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
        if self.ready.is_set():
            metrics.WS_RECONNECTS.inc()
        self._set_subscribed(True)
        if self._startup_gap_from is not None:
            start, self._startup_gap_from = self._startup_gap_from, None
            gap = Gap(start, datetime.now(UTC), GapReason.NO_RECOVERY_TOKEN, "daemon restart")
            self._reconcile(gap, "startup", pipeline, self._startup_hold)
        if not self.ready.is_set():
            self.ready.set()
            log.info("subscribed; logging calls")
            self._notifier.ready("subscribed; logging calls")

    def _set_subscribed(self, value: bool) -> None:
        self.subscribed = value
        metrics.SUBSCRIBED.set(1 if value else 0)
        if self.ready.is_set():
            self._notifier.status("subscribed; logging calls" if value else "reconnecting")

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
            pipeline.release(hold)
            metrics.RECONCILE_RUNS.labels(trigger=trigger, result="ok").inc()

        self._spawn(
            f"reconcile:{trigger}",
            supervise(f"reconcile:{trigger}", close, fatal=(AuthError,)),
        )

    def _reconciler(self, pipeline: Pipeline) -> Reconciler:
        rest = self._rest
        assert rest is not None
        return Reconciler(
            rest,
            self._account_id,
            _policy(pipeline),
            lambda: pipeline.tracker.directory,
            call_log_delay=self.settings.ringcentral.call_log_delay,
        )

    async def _suspect_loop(self, pipeline: Pipeline) -> None:
        """Sessions that may have lost events are settled from the call log once they end.

        The tracker finishes such a session from what it saw (maybe missing a user who
        left before the gap); the call log has all of it. Keys are the same, so what the
        tracker already logged is not logged again.
        """
        interval = max(self.settings.ringcentral.call_log_delay, SUSPECT_INTERVAL)
        silent = max(SUSPECT_SILENCE, self.settings.ringcentral.call_log_delay)
        while True:
            await asyncio.sleep(interval)
            finished, quiet = pipeline.due_suspects(datetime.now(UTC), silent)
            reconciler = self._reconciler(pipeline)
            if finished:
                await self._settle_finished(reconciler, pipeline, finished)
            if quiet:
                since = pipeline.suspect_since(quiet)
                assert since is not None
                resolution = await reconciler.resolve_sessions(
                    quiet, since=since - timedelta(seconds=SUSPECT_LOOKBACK), wait=False
                )
                await pipeline.add_reconciled(list(resolution.batch.calls))
                pipeline.settle_suspects(resolution.ended)
                await self._count_rounds(pipeline, resolution.unresolved)

    async def _settle_finished(
        self, reconciler: Reconciler, pipeline: Pipeline, sessions: list[str]
    ) -> None:
        """Read the call log once for suspects the tracker already finished (they ended)."""
        since = pipeline.suspect_since(sessions)
        assert since is not None
        wanted = set(sessions)
        batch = await reconciler.read(
            since - timedelta(seconds=SUSPECT_LOOKBACK), datetime.now(UTC) + timedelta(minutes=1)
        )
        calls = [c for c in batch.calls if c.telephony_session_id in wanted]
        found = {c.telephony_session_id for c in calls}
        found.update(d.key.rsplit(":", 1)[0] for d in batch.skipped)
        await pipeline.add_reconciled(calls)
        settled = wanted & found
        pipeline.settle_suspects(settled)
        log.info(
            "sessions that may have lost events settled from the call log",
            sessions=len(settled),
            calls=len(calls),
            waiting=len(wanted - settled),
        )
        await self._count_rounds(pipeline, wanted - settled)

    async def _count_rounds(self, pipeline: Pipeline, unresolved: Iterable[str]) -> None:
        rounds = self._suspect_rounds
        for tsid in unresolved:
            rounds[tsid] = rounds.get(tsid, 0) + 1
            if rounds[tsid] > SUSPECT_ROUNDS:
                del rounds[tsid]
                log.warning(
                    "no call-log record for a session that ended; logging what was seen live",
                    session=tsid,
                )
                await pipeline.give_up_suspect(tsid)

    # ---- periodic work ---------------------------------------------------------------

    async def _expire_loop(self, pipeline: Pipeline) -> None:
        while True:
            await pipeline.expire(datetime.now(UTC))
            await asyncio.sleep(EXPIRE_INTERVAL)

    async def _snapshot_loop(self, store: Store, pipeline: Pipeline) -> None:
        while True:
            await asyncio.sleep(self.settings.daemon.snapshot_interval)
            await self._save_state(store, pipeline)

    async def _save_state(self, store: Store, pipeline: Pipeline) -> None:
        """Snapshot and recovery point of the same moment, once its calls are committed."""
        point = self._recovery

        async def save(data: bytes) -> None:
            await store.save_snapshot(ACCOUNT, data)
            if point is None:
                return
            if point.token is None:
                await store.clear_recovery_token(ACCOUNT)
            else:
                await store.save_recovery_token(
                    ACCOUNT, point.token, point.expires_at, point.oauth_session or ""
                )

        await pipeline.snapshot(save)

    async def _outbox_loop(self, store: Store) -> None:
        while True:
            status = await store.status(ACCOUNT)
            metrics.OUTBOX.update(
                {
                    w.writer: metrics.OutboxFigures(
                        w.pending + w.in_flight, w.oldest_pending_age or 0.0, w.dead
                    )
                    for w in status.writers
                }
            )
            await asyncio.sleep(OUTBOX_POLL_INTERVAL)

    def _committed(self, calls: list[CompletedCall]) -> None:
        self.calls_committed += len(calls)
        for dispatcher in self._dispatchers.values():
            dispatcher.wake()

    async def _readiness(self) -> Mapping[str, bool]:
        store_ok = False
        if self.store is not None:
            try:
                async with asyncio.timeout(2.0):
                    await self.store.schema_version()
                store_ok = True
            except (StoreError, TimeoutError):
                store_ok = False
        return {"subscribed": self.subscribed, "store": store_ok}

    # ---- reload ----------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config file and apply what can change live; False if rejected."""
        self._notifier.reloading()
        try:
            return self._reload()
        finally:
            self._notifier.ready("subscribed; logging calls" if self.subscribed else "reconnecting")

    def _reload(self) -> bool:
        if self._config_path is None:
            log.warning("reload requested but the daemon was not started from a file")
            return False
        try:
            new = load_config(self._config_path)
        except ConfigError as exc:
            metrics.CONFIG_RELOADS.labels(result="rejected").inc()
            log.error(
                "reload rejected; the running configuration stays in force",
                file=str(self._config_path),
                problems=[str(issue) for issue in exc.issues],
            )
            return False
        plan = plan_reload(self.settings, new)
        old = self.settings
        self.settings = plan.effective
        configure_logging(plan.effective)
        pipeline = self._pipeline
        assert pipeline is not None
        policy = _policy(pipeline)
        policy.replace_options(policy_options(plan.effective))
        if tracker_options(old) != tracker_options(plan.effective):
            directory = pipeline.tracker.directory
            pipeline.replace_tracker(Tracker(directory, tracker_options(plan.effective), policy))
        for writer in plan.effective.writers:
            self._retune(writer)
        metrics.CONFIG_RELOADS.labels(result="applied").inc()
        log.info(
            "configuration reloaded",
            applied=list(plan.applied) or "nothing changed",
            needs_restart=list(plan.needs_restart),
        )
        if plan.needs_restart:
            log.warning(
                "some changes take effect only after a restart",
                keys=list(plan.needs_restart),
            )
        return True

    def _retune(self, settings: WriterSettings) -> None:
        dispatcher = self._dispatchers.get(settings.name)
        if dispatcher is None or dispatcher.settings == settings or self._http is None:
            return
        dispatcher.replace_writer(build_writer(settings, self._http), settings)


def _policy(pipeline: Pipeline) -> Policy:
    policy = pipeline.tracker.policy
    assert policy is not None, "the daemon always runs the tracker with a policy"
    return policy


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5.0)


def _read_secret(path: Path) -> Secret | None:
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return Secret(value) if value else None


async def _save_refresh_token(path: Path, tokens: TokenSet) -> None:
    """Keep the OAuth session across restarts, so the WebSocket can recover after one."""
    if not tokens.refresh_token:
        return
    data = tokens.refresh_token.encode()

    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    try:
        await asyncio.to_thread(write)
    except OSError as exc:
        log.warning("cannot keep the RingCentral session for restarts", error=exc.strerror)
