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

The runner holds the order of things; each job is a module of its own: its tasks
(:mod:`.account_tasks`), what it restores and saves (:mod:`.account_state`), the
extension directory (:mod:`.account_directory`) and the call-log reads that close the
stream's gaps and settle suspect sessions (:mod:`.account_calllog`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp

from sscl_daemon import metrics
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.config import AccountSettings, Settings, WriterSettings
from sscl_daemon.configured_policy import policy_options
from sscl_daemon.crm.base import Described
from sscl_daemon.crm.enrich import Enricher
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.daemon.account_calllog import (
    GAP_READ_AGAIN,
    GAP_READ_AGAIN_SPAN,
    CallLogReads,
    policy_of,
    read_again_from,
    read_gap_again,
)
from sscl_daemon.daemon.account_directory import AccountDirectory
from sscl_daemon.daemon.account_state import (
    refresh_token_path,
    restore_state,
    ringcentral_credential,
    save_state,
)
from sscl_daemon.daemon.account_tasks import AccountTasks, cancel_tasks
from sscl_daemon.daemon.groupcommit import CommitHealth
from sscl_daemon.daemon.pipeline import Committer, Pipeline, make_committer
from sscl_daemon.daemon.retention import prune_loop
from sscl_daemon.daemon.supervise import FatalError
from sscl_daemon.dispatch import Dispatcher, SentHook
from sscl_daemon.enrichment import EnrichmentRunner
from sscl_daemon.logging import get_logger
from sscl_daemon.ringcentral.auth import Authenticator, AuthError, KeptSession
from sscl_daemon.ringcentral.media import MediaClient
from sscl_daemon.ringcentral.recorder import open_recorder
from sscl_daemon.ringcentral.rest import RestClient
from sscl_daemon.ringcentral.stream_items import (
    ConnectionState,
    Gap,
    GapReason,
    Item,
    RawNotification,
    RecoveryPoint,
    StateChange,
)
from sscl_daemon.ringcentral.subscription import Subscription
from sscl_daemon.ringcentral.wstoken import KeptWsToken
from sscl_daemon.store import Lease, Store, StoreError
from sscl_daemon.store.credentials import CredentialVault
from sscl_daemon.store.enrichments import Enrichments

# Named here too, where the daemon and the tests import them.
__all__ = [
    "GAP_READ_AGAIN",
    "GAP_READ_AGAIN_SPAN",
    "AccountRunner",
    "cancel_tasks",
    "policy_of",
    "read_again_from",
    "read_gap_again",
    "tracker_options",
]

log = get_logger(__name__)

# How often sessions whose completion grace passed are completed without a new event.
EXPIRE_INTERVAL = 0.25
# The tasks that keep the live stream going while the writers drain at a stop: the
# subscription (and the token it reconnects with), the expiry completing its sessions and
# the committer writing their calls.
STREAMING = ("subscription", "auth-refresh", "expiry", "committer")


def tracker_options(account: AccountSettings) -> TrackerOptions:
    return TrackerOptions(
        completion_grace_s=account.calls.completion_grace,
        session_timeout_s=account.calls.session_timeout,
        default_region=account.calls.default_region,
    )


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
        self._on_state = on_state
        self.subscribed = False
        self.ever_subscribed = False
        # Set when a fenced write was refused: another instance holds the account now.
        self.lost = asyncio.Event()
        self.calls_committed = 0
        self._tasks = AccountTasks(account.name, on_fatal=on_fatal, lost=self.lost)
        self._dispatchers: dict[str, Dispatcher] = {}
        self._runners: dict[str, EnrichmentRunner] = {}
        self._account_id = "~"
        self._startup_gap_from: datetime | None = None
        self._startup_hold: int | None = None
        self._recovery: RecoveryPoint | None = None
        self._pipeline: Pipeline | None = None
        self._committer: Committer | None = None
        self._directory = AccountDirectory(store, account.name, lease, self._tasks.spawn)

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
            access_vault=self._vault(ringcentral_credential(self.account, "access_token")),
        )
        auth = Authenticator(
            http,
            rc,
            refresh_token=await kept.refresh_token(),
            access=await kept.access(),
            on_tokens=kept.keep,
        )
        rest = RestClient(http, auth, rc.server, request_timeout=rc.request_timeout)
        # The directory of the last run: a fresh one is loaded beside the subscription (a
        # throttled or paused extension-list read must not hold live logging back).
        directory = await self._directory.stored()
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
        pipeline.on_directory_wanted = self._directory.wanted(rest, pipeline)
        restored = await restore_state(store, self.name, pipeline)
        self._startup_gap_from, self._startup_hold = (
            restored.startup_gap_from,
            restored.startup_hold,
        )
        self._recovery = restored.recovery
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
        self._add_dispatchers(rest)
        self._start_tasks(auth, rest, pipeline, committer)

    def _add_dispatchers(self, rest: RestClient) -> None:
        """A dispatcher per enabled writer (and its enrichment runner, if it has one)."""
        for writer_settings in self.account.writers:
            if writer_settings.enabled:
                self._dispatchers[writer_settings.name] = Dispatcher(
                    self._store,
                    build_writer(writer_settings, self._http, self._vault),
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

    def _start_tasks(
        self, auth: Authenticator, rest: RestClient, pipeline: Pipeline, committer: Committer
    ) -> None:
        """The account's tasks, the subscription among the first: nothing slow before it."""
        store, rc, supervise = self._store, self.account.ringcentral, self._tasks.supervise
        reads = CallLogReads(
            rest,
            pipeline,
            name=self.name,
            account=lambda: self.account,
            account_id=lambda: self._account_id,
            spawn=self._tasks.spawn,
        )
        supervise("committer", committer.run)
        supervise(
            "subscription", lambda: self._subscribe(rest, pipeline, reads), fatal=(AuthError,)
        )
        for name, dispatcher in self._dispatchers.items():
            supervise(f"dispatcher:{name}", _prepared(dispatcher))
        for name, runner in self._runners.items():
            supervise(f"enricher:{name}", runner.run, fatal=(AuthError,))
        supervise("auth-refresh", auth.keep_fresh, fatal=(AuthError,))
        supervise(
            "directory-refresh",
            lambda: self._directory.keep_fresh(rest, rc.directory_refresh, pipeline),
            fatal=(AuthError,),
        )
        supervise("expiry", lambda: self._expire_loop(pipeline))
        supervise("suspects", reads.suspect_loop, fatal=(AuthError,))
        supervise("snapshots", lambda: self._snapshot_loop(pipeline))
        # The store settings are read each round, so that a reload applies to the retention.
        supervise("retention", lambda: prune_loop(store, self.lease, lambda: self.settings.store))

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
            [t for name, t in self._tasks.supervised.items() if name not in {*STREAMING, *writing}]
        )
        await cancel_tasks(list(self._tasks.background))
        drained = await asyncio.gather(
            *(d.drain(grace) for d in self._dispatchers.values()), return_exceptions=True
        )
        await cancel_tasks([t for name, t in self._tasks.supervised.items() if name != "committer"])
        # and the gap reads the stream started meanwhile (a subscription after a reconnect)
        await cancel_tasks(list(self._tasks.background))
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
        await cancel_tasks(list(self._tasks.supervised.values()))

    async def abort(self) -> None:
        """The lease is lost: stop everything now, write nothing more (the new holder goes on).

        Requests already sent to a CRM cannot be recalled; their rows are settled
        by the new holder, which sends them again as uncertain (look up first).
        """
        await cancel_tasks([*self._tasks.supervised.values(), *self._tasks.background])
        await asyncio.gather(
            *(d.drain(0.0) for d in self._dispatchers.values()), return_exceptions=True
        )
        self._set_subscribed(False)

    # ---- the subscription ------------------------------------------------------------

    async def _subscribe(self, rest: RestClient, pipeline: Pipeline, reads: CallLogReads) -> None:
        async def persist(point: RecoveryPoint) -> None:
            # Written with the next snapshot, so that a recovery after a restart replays
            # exactly what the restored tracker has not seen.
            self._recovery = point

        subscription = Subscription(
            rest,
            self.account.ringcentral,
            recovery=self._recovery,
            persist=persist,
            kept_token=KeptWsToken(self._vault(ringcentral_credential(self.account, "ws_token"))),
        )
        try:
            await subscription.run(lambda item: self._on_item(item, pipeline, reads))
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

    async def _on_item(self, item: Item, pipeline: Pipeline, reads: CallLogReads) -> None:
        if isinstance(item, RawNotification):
            await pipeline.on_notification(item.envelope, item.received_at)
            if pipeline.account_id is not None:
                self._account_id = pipeline.account_id
        elif isinstance(item, Gap):
            metrics.WS_GAPS.inc()
            if item.reason is GapReason.RECOVERY_FAILED:
                metrics.WS_RECOVERIES.labels(result="failed").inc()
            reads.reconcile(item, "gap")
        elif isinstance(item, StateChange):
            self._state_change(item, reads)

    def _state_change(self, change: StateChange, reads: CallLogReads) -> None:
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
            reads.reconcile(gap, "startup", self._startup_hold)
        if not self.ever_subscribed:
            log.info("daemon.account.subscribed", account=self.name)
        self.ever_subscribed = True
        self._set_subscribed(True)

    def _set_subscribed(self, value: bool) -> None:
        changed = self.subscribed != value
        self.subscribed = value
        if changed:
            self._on_state()

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
        await save_state(self._store, self.name, self.lease, self._recovery, pipeline)

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


def _prepared(dispatcher: Dispatcher) -> Callable[[], Awaitable[None]]:
    """The dispatcher's run once its writer read what it needs of its CRM (HubSpot's key
    mode: known, logged once and in ``status`` from the start, not from the first call)."""

    async def run() -> None:
        if isinstance(dispatcher.writer, Described):
            await dispatcher.writer.prepare()
        await dispatcher.run()

    return run
