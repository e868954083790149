"""``sscl-daemon backfill --from DATE --to DATE [--dry-run] --config FILE``.

Logs the calls of a past period from the RingCentral call log (first enablement, or an
outage longer than the checkpoint can cover): the records go through the same mapping and
policy as the daemon's gap reconciliation (`ringcentral/backfill.py`) and into the outbox,
which the running daemon's dispatchers then write to the CRMs. Calls already in the outbox
are not logged again. A progress bar is shown on a terminal; a summary is printed at the end.
``--dry-run`` prints the calls instead and touches no database. A period older than
``store.sent_retention_days`` is refused without ``--past-retention`` (see
``ringcentral/backfill.py``).

It logs in with its own JWT session: reusing the daemon's refresh token would rotate it
under the running daemon's feet.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sscl_daemon.calls.model import CallSource, CompletedCall
from sscl_daemon.calls.policy import Policy
from sscl_daemon.config import ConfigError, Settings, load_config
from sscl_daemon.logging import configure_logging
from sscl_daemon.ringcentral.auth import Authenticator, AuthError
from sscl_daemon.ringcentral.backfill import (
    PAST_RETENTION_OPTION,
    Commit,
    Period,
    PeriodError,
    Summary,
    check_retention,
    parse_period,
    run_backfill,
)
from sscl_daemon.ringcentral.directory import load_directory
from sscl_daemon.ringcentral.reconcile import Batch, Reconciler
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted

HELP = "log the calls of a past period from the RingCentral call log (--dry-run to preview)"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


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
        "--dry-run", action="store_true", help="print the calls that would be logged; store nothing"
    )
    parser.add_argument(
        PAST_RETENTION_OPTION, action="store_true",
        help="allow --from before store.sent_retention_days (calls that were never logged)",
    )  # fmt: skip
    parser.add_argument(
        "--config", "-c", required=True, metavar="FILE", help="the daemon's TOML configuration"
    )


def run(args: argparse.Namespace) -> int:
    try:
        period = parse_period(args.date_from, args.date_to, datetime.now(UTC))
    except PeriodError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    past = check_retention(period, settings.store.sent_retention_days, datetime.now(UTC))
    if past is not None and not args.dry_run:
        if not args.past_retention:
            print(f"backfill: {past}", file=sys.stderr)
            return EXIT_USAGE
        print(f"backfill: warning: {past}", file=sys.stderr)
    configure_logging(settings)
    return asyncio.run(_backfill(settings, period, args.dry_run, Console()))


def _describe(call: CompletedCall) -> str:
    who = call.extension_number or call.extension_id or "-"
    other = call.external_number or call.internal_number or "-"
    return (
        f"{call.start_time:%Y-%m-%d %H:%M:%S} {call.key} {call.result.value} "
        f"{call.direction.value} ext {who} <-> {other}"
    )


async def _backfill(settings: Settings, period: Period, dry_run: bool, console: Console) -> int:
    from sscl_daemon.daemon.app import ACCOUNT, policy_options

    rc = settings.ringcentral
    writers = [w.name for w in settings.writers if w.enabled]
    if not dry_run and not writers:
        console.print("backfill: no enabled writer in the configuration: nothing to log into")
        return EXIT_USAGE
    store = None
    try:
        async with aiohttp.ClientSession() as http:
            rest = RestClient(
                http, Authenticator(http, rc), rc.server, request_timeout=rc.request_timeout
            )
            directory = await load_directory(rest)
            reconciler = Reconciler(
                rest,
                "~",
                Policy(policy_options(settings), directory),
                lambda: directory,
                call_log_delay=0.0,
                source=CallSource.BACKFILL,
            )
            commit: Commit | None = None
            if not dry_run:
                from sscl_daemon.store import Store

                store = await Store.open(settings.store, settings.daemon.state_dir)
                opened = store

                async def commit_calls(calls: Sequence[CompletedCall]) -> int:
                    return await opened.commit_batch(ACCOUNT, calls, writers, None)

                commit = commit_calls
            summary = await _with_progress(reconciler, period, commit, dry_run, console)
    except AuthError as exc:
        console.print(f"backfill: {exc}")
        return EXIT_FAILED
    except (ApiError, RetriesExhausted) as exc:
        console.print(f"backfill: RingCentral call failed: {exc}")
        return EXIT_FAILED
    finally:
        if store is not None:
            await store.close()
    console.print(
        f"backfill {period.start:%Y-%m-%d %H:%M} .. {period.end:%Y-%m-%d %H:%M} UTC",
        markup=False,
        highlight=False,
    )
    for line in summary.lines(dry_run):
        console.print(f"  {line}", markup=False, highlight=False)
    return EXIT_OK


async def _with_progress(
    reconciler: Reconciler,
    period: Period,
    commit: Commit | None,
    dry_run: bool,
    console: Console,
) -> Summary:
    def show(_part: Period, batch: Batch) -> None:
        if dry_run:
            for call in batch.calls:
                console.print(_describe(call), markup=False, highlight=False)

    if not console.is_terminal:
        return await run_backfill(reconciler, period, commit, show)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[calls]} calls"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("backfill", total=period.seconds, calls=0)
        found = 0

        def advance(part: Period, batch: Batch) -> None:
            nonlocal found
            found += len(batch.calls)
            show(part, batch)
            bar.update(task, advance=part.seconds, calls=found)

        return await run_backfill(reconciler, period, commit, advance)
