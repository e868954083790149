"""``sscl-daemon backfill --from DATE --to DATE [--dry-run] [--account NAME] [--config FILE]``.

Logs the calls of a past period from the RingCentral call log (first enablement, or an
outage longer than the checkpoint can cover): the records go through the same mapping and
policy as the daemon's gap reconciliation (`ringcentral/backfill.py`) and into the outbox,
which the running daemon's dispatchers then write to the CRMs. Calls already in the outbox
are not logged again. The store is the daemon's existing one (:mod:`.attach`): with the
embedded store and the daemon running, the command is a client of the daemon's server.
A period older than ``store.sent_retention_days`` is refused without ``--past-retention``
(see ``ringcentral/backfill.py``).

``--dry-run`` stores nothing and prints one line per call, ``already-logged`` or
``would-log`` first (the outbox is read when it can be; otherwise every call is listed as
``would-log`` and a warning says the outbox was not checked). Output is for machines
too: calls and the summary on stdout, one unwrapped line each; errors, warnings and
progress on stderr (a progress bar on a terminal, a line every
:data:`PROGRESS_INTERVAL` seconds otherwise).

It logs in with its own JWT session: reusing the daemon's refresh token would rotate it
under the running daemon's feet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TextIO

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sscl_daemon.calls.directory import DirectoryError
from sscl_daemon.calls.model import CallSource, CompletedCall
from sscl_daemon.calls.policy import Policy
from sscl_daemon.commands.attach import open_store, store_failed
from sscl_daemon.config import (
    AccountSettings,
    ConfigError,
    Need,
    Settings,
    add_config_argument,
    load_for_command,
)
from sscl_daemon.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from sscl_daemon.logging import configure_logging
from sscl_daemon.ringcentral.auth import Authenticator, AuthError
from sscl_daemon.ringcentral.backfill import (
    PAST_RETENTION_OPTION,
    Commit,
    Logged,
    Period,
    PeriodError,
    Summary,
    check_retention,
    parse_period,
    run_backfill,
)
from sscl_daemon.ringcentral.directory import ZoneBook, load_directory, stored_directory
from sscl_daemon.ringcentral.reconcile import Reconciler, Stretch
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted
from sscl_daemon.store import Store, StoreError

HELP = "log the calls of a past period from the RingCentral call log (--dry-run to preview)"

# Seconds between two progress lines when stderr is not a terminal.
PROGRESS_INTERVAL = 10.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from", dest="date_from", required=True, metavar="DATE",
        help="start of the period: YYYY-MM-DD or an ISO date-time (UTC unless a zone is given)",
    )  # fmt: skip
    parser.add_argument(
        "--to", dest="date_to", required=True, metavar="DATE",
        help="end of the period (a date includes that whole day); capped at now",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print each call (already-logged or would-log); store nothing",
    )
    parser.add_argument(
        "--account", metavar="NAME",
        help="the [accounts.NAME] to backfill (needed when the file has several)",
    )  # fmt: skip
    parser.add_argument(
        PAST_RETENTION_OPTION, action="store_true",
        help="allow --from before store.sent_retention_days (calls that were never logged)",
    )  # fmt: skip
    add_config_argument(parser)


def run(args: argparse.Namespace) -> int:
    try:
        period = parse_period(args.date_from, args.date_to, datetime.now(UTC))
    except PeriodError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = load_for_command(args, needs=Need.RINGCENTRAL | Need.STORE)
        account = settings.account(args.account)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    past = check_retention(period, settings.store.sent_retention_days, datetime.now(UTC))
    if past is not None and not args.dry_run:
        if not args.past_retention:
            print(f"backfill: {past}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"backfill: warning: {past}", file=sys.stderr)
    configure_logging(settings)
    return asyncio.run(_backfill(settings, account, period, args.dry_run))


def describe(call: CompletedCall, logged: bool) -> str:
    """One line per call, fields without spaces: state, start, key, result, direction, parties."""
    who = call.extension_number or call.extension_id or "-"
    other = call.external_number or call.internal_number or "-"
    return (
        f"{'already-logged' if logged else 'would-log'} {call.start_time:%Y-%m-%dT%H:%M:%S%z} "
        f"{call.key} {call.result.value} {call.direction.value} ext={who} other={other}"
    )


class Reporter:
    """Progress on ``err``: a bar on a terminal, else a line every ``interval`` seconds."""

    def __init__(self, period: Period, err: TextIO, terminal: bool, interval: float) -> None:
        self._period = period
        self._err = err
        self._interval = interval
        self._next_line = time.monotonic() + interval
        self._done = 0.0
        self._calls = 0
        self._bar: Progress | None = None
        if terminal:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[calls]} calls"),
                TimeRemainingColumn(),
            )
            console = Console(file=err, force_terminal=True)
            self._bar = Progress(*columns, console=console, transient=True)
            self._task = self._bar.add_task("backfill", total=period.seconds, calls=0)

    @contextlib.contextmanager
    def shown(self) -> Iterator[Reporter]:
        """The reporter while the backfill runs: the bar (rich's Progress) starts and stops."""
        with self._bar if self._bar is not None else contextlib.nullcontext():
            yield self

    def advance(self, part: Period, batch: Stretch) -> None:
        self._done += part.seconds
        self._calls += len(batch.calls)
        if self._bar is not None:
            self._bar.update(self._task, advance=part.seconds, calls=self._calls)
            return
        now = time.monotonic()
        if now >= self._next_line or part.end >= self._period.end:
            self._next_line = now + self._interval
            share = 100.0 * self._done / self._period.seconds if self._period.seconds else 100.0
            print(
                f"backfill: {share:.0f}% read (up to {part.end:%Y-%m-%d %H:%M} UTC), "
                f"{self._calls} calls",
                file=self._err,
                flush=True,
            )


async def stored_zones(store: Store | None, account: str) -> ZoneBook:
    """The users' RingCentral time zones the daemon stored with its directory, so backfilled
    calls carry them as live ones do (``timezone = "user"``); none without a store."""
    zones = ZoneBook()
    # A nicety: without them each call is written in its writer's configured zone.
    with contextlib.suppress(StoreError, DirectoryError):
        data = await store.load_directory(account) if store is not None else None
        if data is not None:
            stored_directory(data, zones)
    return zones


async def _backfill(
    settings: Settings,
    account: AccountSettings,
    period: Period,
    dry_run: bool,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    terminal: bool | None = None,
    progress_interval: float = PROGRESS_INTERVAL,
) -> int:
    from sscl_daemon.daemon.app import policy_options

    out = out or sys.stdout
    err = err or sys.stderr
    terminal = err.isatty() if terminal is None else terminal
    writers = [w.name for w in account.writers if w.enabled]
    if not dry_run and not writers:
        print("backfill: no enabled writer in the configuration: nothing to log into", file=err)
        return EXIT_CONFIG
    store: Store | None = None
    try:
        store = await open_store(settings)
    except StoreError as exc:
        if not dry_run:
            return store_failed("backfill", exc, err)
        print(f"backfill: warning: the outbox was not checked: {exc}", file=err)
    try:
        commit: Commit | None = None
        logged: Logged | None = None
        if store is not None:
            opened = store
            if dry_run:

                async def logged_keys(calls: Sequence[CompletedCall]) -> set[str]:
                    return await opened.logged_keys(account.name, [c.key for c in calls], writers)

                logged = logged_keys
            else:

                async def commit_calls(calls: Sequence[CompletedCall]) -> int:
                    return await opened.commit_batch(account.name, calls, writers, None)

                commit = commit_calls
        rc = account.ringcentral
        async with aiohttp.ClientSession() as http:
            rest = RestClient(
                http, Authenticator(http, rc), rc.server, request_timeout=rc.request_timeout
            )
            directory = await load_directory(rest, await stored_zones(store, account.name))
            reconciler = Reconciler(
                rest,
                "~",
                Policy(policy_options(account), directory),
                lambda: directory,
                call_log_delay=0.0,
                source=CallSource.BACKFILL,
            )
            with Reporter(period, err, terminal, progress_interval).shown() as reporter:

                def show(part: Period, batch: Stretch, known: set[str]) -> None:
                    if dry_run:
                        for call in batch.calls:
                            print(describe(call, call.key in known), file=out)
                    reporter.advance(part, batch)

                summary = await run_backfill(reconciler, period, commit, show, logged=logged)
    except AuthError as exc:
        print(f"backfill: {exc}", file=err)
        return EXIT_CONFIG
    except (ApiError, RetriesExhausted) as exc:
        print(f"backfill: RingCentral call failed: {exc}", file=err)
        return EXIT_FAILURE
    except StoreError as exc:
        return store_failed("backfill", exc, err)
    finally:
        if store is not None:
            await store.close()
    _print_summary(summary, period, dry_run, out)
    return EXIT_OK


def _print_summary(summary: Summary, period: Period, dry_run: bool, out: TextIO) -> None:
    print(f"backfill {period.start:%Y-%m-%d %H:%M} .. {period.end:%Y-%m-%d %H:%M} UTC", file=out)
    for line in summary.lines(dry_run):
        print(f"  {line}", file=out)
