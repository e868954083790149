"""The daemon process: the parts every account shares, and one lease loop per account.

Start-up: open the store (starting the embedded PostgreSQL and applying
migrations), serve the admin endpoint, then run one lease loop (:mod:`.lease`)
per configured account. An account whose lease this instance gets is run by
its own :class:`~.accounts.AccountRunner` (RingCentral login, directory,
subscription, tracker, pipeline, reconciler, one dispatcher per writer); the
others are watched as a standby and taken over when their holder dies. A
:class:`~.balance.Balancer` announces the instance to the others sharing the
store and keeps the accounts shared fairly (an instance above its share hands
an account over gracefully; ``daemon.balance``). The store, the admin
endpoint, signals, systemd notifications, the watchdog and the metrics belong
to the process.

READY=1 goes out once every account's first lease attempt is over and each
account this instance got is subscribed; an instance that got no account at
all is ready as a standby (its status line says so). ``/readyz`` lists the
held accounts (``account:NAME``: subscribed) or says ``standby``.

SIGHUP re-reads the file and applies what can change live (see
:mod:`.reload`), per account; SIGTERM/SIGINT stop the subscriptions, commit
what was received, save the snapshots, give the writers
``daemon.shutdown_timeout`` to finish their requests and release the leases
(after withdrawing the instance's announcement, so the others take the
accounts over at once).
A failure that cannot heal (RingCentral refusing an account's credentials,
PostgreSQL refusing the login or lacking the database) stops the daemon with
exit code 2, the status the unit does not restart on. A store that stays
unusable (:mod:`.storewatch`: reconnects, restarts the embedded server that
died, gives up after ``store.outage_limit`` seconds) stops it with exit code
1, which the unit restarts on; the systemd watchdog is no longer fed from
then on (exit codes: :mod:`sscl_daemon.exitcodes`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from sscl_daemon import metrics
from sscl_daemon.admin import AdminAddressError, AdminServer
from sscl_daemon.config import DEFAULT_ACCOUNT, AccountSettings, Settings
from sscl_daemon.config.plugins import ignored as ignored_plugins
from sscl_daemon.configured_policy import policy_options
from sscl_daemon.console.web import WebConsole
from sscl_daemon.daemon.accounts import (
    AccountRunner,
    cancel_tasks,
    tracker_options,
)
from sscl_daemon.daemon.balance import Balancer
from sscl_daemon.daemon.config_reload import read_plan, report_applied
from sscl_daemon.daemon.lease import LeaseLoop, Runner
from sscl_daemon.daemon.signals import SignalRequests, installed
from sscl_daemon.daemon.storewatch import StoreWatch
from sscl_daemon.daemon.supervise import supervise
from sscl_daemon.daemon.tasks import Tasks
from sscl_daemon.daemon.umask import UMASK
from sscl_daemon.dispatch import SentHook
from sscl_daemon.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from sscl_daemon.logging import configure_logging, get_logger
from sscl_daemon.sdnotify import Notifier
from sscl_daemon.store import Announcement, CommitFailure, Lease, Store, StoreError

log = get_logger(__name__)

# The account key of a one-account file (``[ringcentral]`` at the top level).
ACCOUNT = DEFAULT_ACCOUNT
OUTBOX_POLL_INTERVAL = 5.0

__all__ = [
    "ACCOUNT",
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "Daemon",
    "claimer_name",
    "holder_name",
    "policy_options",
    "tracker_options",
]


def claimer_name(settings: Settings) -> str:
    """Unique per process incarnation, so a restarted daemon never settles a dead one's claim."""
    return f"{settings.daemon.instance_name}:{os.getpid()}:{secrets.token_hex(3)}"


def holder_name(settings: Settings) -> str:
    """The lease holder shown by ``sscl-daemon status``: instance name and process id, so two
    instances started from one file on one host can be told apart."""
    return f"{settings.daemon.instance_name}:{os.getpid()}"


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
        self.ready = asyncio.Event()
        self._fatal: str | None = None
        self._fatal_code = EXIT_CONFIG
        self.store_watch: StoreWatch | None = None
        self._loops: dict[str, LeaseLoop] = {}
        self._runners: dict[str, AccountRunner] = {}
        self._tasks = Tasks(self._fail)
        self.store: Store | None = None
        self.admin_port: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._claimer = claimer_name(settings)
        self.holder = holder_name(settings)
        self.balancer: Balancer | None = None

    # ---- what the instance holds -----------------------------------------------------

    @property
    def held_accounts(self) -> list[str]:
        return sorted(name for name, loop in self._loops.items() if loop.held)

    def in_flight(self, telephony_session_id: str) -> bool:
        """A held account's tracker still follows the session (the console's search)."""
        return any(
            runner.pipeline is not None and telephony_session_id in runner.pipeline.tracker
            for name, runner in self._runners.items()
            if name in self.held_accounts
        )

    @property
    def subscribed(self) -> bool:
        """Every account this instance holds is subscribed (vacuously true for a standby)."""
        return all(self._runners[name].subscribed for name in self.held_accounts)

    @property
    def calls_committed(self) -> int:
        return sum(runner.calls_committed for runner in self._runners.values())

    def _status_line(self) -> str:
        held = self.held_accounts
        if not held:
            return "standby: waiting for an account's lease"
        if not self.subscribed:
            return "reconnecting"
        return f"subscribed; logging calls of {', '.join(held)}"

    def _state_changed(self) -> None:
        """An account was taken, lost, subscribed or disconnected."""
        held = self.held_accounts
        metrics.SUBSCRIBED.set(1 if held and self.subscribed else 0)
        if self.ready.is_set():
            self._notifier.status(self._status_line())
            return
        if not all(loop.settled.is_set() for loop in self._loops.values()):
            return
        if not all(self._runners[name].ever_subscribed for name in held):
            return
        self.ready.set()
        line = self._status_line()
        log.info("daemon.service.ready", held=held, holder=self.holder)
        self._notifier.ready(line)

    # ---- lifecycle -------------------------------------------------------------------

    async def run(self) -> int:
        # Every file the daemon makes (state, call data, recordings) is the service's alone.
        with UMASK.held():
            return await self._run()

    async def _run(self) -> int:
        configure_logging(self.settings)
        for left in ignored_plugins():  # found while the file was parsed, before logging
            log.warning("config.plugin.ignored", **dataclasses.asdict(left))
        self._notifier.status("starting: opening the store")
        try:
            store = await Store.open(self.settings.store, self.settings.daemon.state_dir)
        except StoreError as exc:
            log.error("store.open.failed", error=str(exc), permanent=exc.permanent)
            self._notifier.status(f"failed: {exc}")
            # A refused login or a missing database needs the admin, not a restart.
            return EXIT_CONFIG if exc.permanent else EXIT_FAILURE
        self.store = store
        admin: AdminServer | None = None
        try:
            if self.settings.admin.enabled:
                console = WebConsole(self, self._readiness)
                admin = AdminServer(self.settings.admin, self._readiness, console)
                try:
                    self.admin_port = await admin.start()
                except AdminAddressError as exc:
                    admin = None  # nothing to stop: start() released what it set up
                    log.error("admin.endpoint.bind_failed", error=str(exc))
                    self._notifier.status(f"failed: {exc}")
                    return EXIT_CONFIG
            async with aiohttp.ClientSession() as http:
                self._http = http
                return await self._serve(store)
        finally:
            if admin is not None:
                await admin.stop()
            await store.close()
            self._notifier.close()

    async def _serve(self, store: Store) -> int:
        self._notifier.status("starting: waiting for account leases")
        daemon = self.settings.daemon
        accounts = [account.name for account in self.settings.accounts]
        instance = Announcement(self.holder, socket.gethostname(), os.getpid(), tuple(accounts))
        balancer = Balancer(
            store,
            instance,
            self._loops,
            ttl=daemon.lease_ttl,
            poll=daemon.lease_poll,
            enabled=daemon.balance,
        )
        self.balancer = balancer
        # Announced before the first lease attempt, so the others see this instance's share.
        await balancer.check()
        for name in accounts:
            loop = LeaseLoop(
                store,
                name,
                self.holder,
                self._runner_factory(store, name),
                on_change=self._state_changed,
                ttl=daemon.lease_ttl,
                poll=daemon.lease_poll,
                admit=balancer.admit(name),
            )
            self._loops[name] = loop
            self._tasks.start(f"lease:{name}", loop.run)
        self._tasks.start("balance", lambda: supervise("balance", balancer.run))
        self._tasks.start("outbox-gauges", lambda: supervise("outbox-gauges", self._outbox(store)))
        recorder = self._commit_failures_recorder(store)
        self._tasks.start("commit-failures", lambda: supervise("commit-failures", recorder))
        watch = StoreWatch(
            store,
            lambda message: self._fail(message, EXIT_FAILURE),
            limit=self.settings.store.outage_limit,
        )
        self.store_watch = watch
        self._tasks.start("store-watch", lambda: supervise("store-watch", watch.run))
        self._tasks.start("watchdog", lambda: supervise("watchdog", self._feed_watchdog))
        if self._handle_signals:
            with installed(self.requests):
                await self._main_loop()
        else:
            await self._main_loop()
        await self._shutdown()
        if self._fatal is not None:
            log.error("daemon.service.failed", error=self._fatal)
            return self._fatal_code
        log.info("daemon.service.stopped")
        return EXIT_OK

    def _runner_factory(
        self, store: Store, name: str
    ) -> Callable[[Lease, Callable[[], bool]], Runner]:
        def make(lease: Lease, may_write: Callable[[], bool]) -> Runner:
            http = self._http
            assert http is not None
            account = self._account_settings(name)
            runner = AccountRunner(
                self.settings,
                account,
                store,
                http,
                lease,
                claimer=self._claimer,
                may_write=may_write,
                on_sent=self._on_sent,
                on_fatal=self._fail,
                on_state=self._state_changed,
            )
            self._runners[name] = runner
            return runner

        return make

    def _account_settings(self, name: str) -> AccountSettings:
        return next(a for a in self.settings.accounts if a.name == name)

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

    async def _shutdown(self) -> None:
        grace = self.settings.daemon.shutdown_timeout
        self._notifier.stopping("draining")
        log.info(
            "daemon.service.stopping",
            grace=grace,
            hint="no new events; committing and draining the writers",
        )
        # Out of the fleet first: the others count this instance out and take its accounts
        # as soon as each lease is released below, instead of waiting for its heartbeat to age.
        await cancel_tasks(self._tasks.named(lambda name: name == "balance"))
        if self.balancer is not None:
            await self.balancer.leave()
        for loop in self._loops.values():
            loop.stop()
        loops = self._tasks.named(lambda name: name.startswith("lease:"))
        # Each held account commits, snapshots and drains within ``grace``, in parallel.
        _, pending = await asyncio.wait(loops, timeout=grace + 10.0)
        if pending:
            log.warning("daemon.accounts.stop_timed_out", accounts=len(pending))
        await cancel_tasks(self._tasks.all())
        metrics.SUBSCRIBED.set(0)

    # ---- supervision -----------------------------------------------------------------

    def _fail(self, message: str, code: int = EXIT_CONFIG) -> None:
        """Stop the daemon; it exits with ``code`` (the first failure's)."""
        if self._fatal is None:
            self._fatal = message
            self._fatal_code = code
            self._notifier.status(f"failed: {message}")
        self.requests.request_stop("fatal error")

    async def _feed_watchdog(self) -> None:
        """Ping systemd's watchdog while the daemon is of use (not once the store is given up)."""
        interval = self._notifier.watchdog_interval
        if interval is None:
            return
        while self.store_watch is None or not self.store_watch.gave_up:
            self._notifier.watchdog()
            await asyncio.sleep(interval)

    # ---- periodic work ---------------------------------------------------------------

    def _outbox(self, store: Store) -> Callable[[], Awaitable[None]]:
        """The outbox gauges, over every account in the database (all instances show the same)."""

        async def loop() -> None:
            while True:
                status = await store.status()
                metrics.OUTBOX.update(
                    {
                        w.writer: metrics.OutboxFigures(
                            w.pending + w.in_flight, w.oldest_pending_age or 0.0, w.dead
                        )
                        for w in status.writers
                    }
                )
                await asyncio.sleep(OUTBOX_POLL_INTERVAL)

        return loop

    def commit_failures(self) -> dict[str, CommitFailure]:
        """The held accounts whose commits are failing, since when and why."""
        failures: dict[str, CommitFailure] = {}
        for name in self.held_accounts:
            health = self._runners[name].commit_health()
            if health is not None and health.failing_since is not None:
                since = datetime.fromtimestamp(health.failing_since, UTC)
                failures[name] = CommitFailure(since, health.last_error or "unknown error")
        return failures

    def writer_facts(self) -> dict[str, dict[str, dict[str, str]]]:
        """Per held account, what its writers found out about their CRMs."""
        return {n: f for n in self.held_accounts if (f := self._runners[n].writer_facts())}

    def _commit_failures_recorder(self, store: Store) -> Callable[[], Awaitable[None]]:
        """Keeps this instance's row saying which accounts' commits fail and what their
        writers found out about their CRMs (HubSpot's key mode), for ``status``."""

        async def loop() -> None:
            recorded: dict[str, CommitFailure] = {}
            known: dict[str, dict[str, dict[str, str]]] = {}
            while True:
                failures = self.commit_failures()
                # Rewritten while any fails: a row made again by the heartbeat starts empty.
                if failures or failures != recorded:
                    await store.record_commit_failures(self.holder, failures)
                    recorded = failures
                facts = self.writer_facts()
                if facts or facts != known:  # (the same, for a row made again)
                    await store.record_writer_facts(self.holder, facts)
                    known = facts
                await asyncio.sleep(self.settings.daemon.lease_poll)

        return loop

    async def _readiness(self) -> Mapping[str, bool]:
        store_ok = False
        if self.store is not None:
            try:
                async with asyncio.timeout(2.0):
                    await self.store.schema_version()
                store_ok = True
            except (StoreError, TimeoutError):
                store_ok = False
        checks = {"subscribed": self.subscribed, "store": store_ok}
        held = self.held_accounts
        checks.update({f"account:{name}": self._runners[name].subscribed for name in held})
        for name in held:
            # Commits failing while the store still answers reads (a full disk, say).
            health = self._runners[name].commit_health()
            checks[f"commits:{name}"] = health is None or not health.failing
        if not held:
            checks["standby"] = True
        return checks

    # ---- reload ----------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config file and apply what can change live; False if rejected."""
        self._notifier.reloading()
        try:
            return self._reload()
        finally:
            self._notifier.ready(self._status_line())

    def _reload(self) -> bool:
        plan = read_plan(self._config_path, self.settings)
        if plan is None:
            return False
        self.settings = plan.effective
        configure_logging(plan.effective)
        for name in self.held_accounts:
            self._runners[name].apply(plan.effective, self._account_settings(name))
        report_applied(plan)
        return True
