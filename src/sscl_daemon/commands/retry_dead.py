"""``sscl-daemon retry-dead [--config FILE] [--writer NAME] [--since WHEN]``.

Moves call logs parked as dead letters back into the outbox as pending, for
example after fixing a CRM field or a credential. The running daemon picks
them up within seconds (the store notifies its dispatchers). Opens the
daemon's existing store as ``status`` does (:mod:`.attach`): never a new one.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta

from sscl_daemon.commands.attach import open_store, store_failed
from sscl_daemon.config import ConfigError, Need, Settings, add_config_argument, load_for_command
from sscl_daemon.exitcodes import EXIT_CONFIG, EXIT_OK
from sscl_daemon.store import StoreError

HELP = "send call logs parked as dead letters to their CRM again"

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``2h`` / ``30m`` / ``7d`` ago, or an ISO 8601 time (UTC when no offset is given)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(value.strip())
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither a duration (30m, 2h, 7d) nor an ISO time (2026-01-31T08:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--writer", metavar="NAME", help="only this writer's dead call logs")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        type=parse_since,
        help="only call logs parked since WHEN (a duration like 2h, or an ISO time)",
    )


async def _retry(settings: Settings, writer: str | None, since: datetime | None) -> int:
    store = await open_store(settings)
    try:
        return await store.retry_dead(writer=writer, since=since)
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_for_command(args, needs=Need.STORE)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    known = {w.name for w in settings.writers}
    if args.writer is not None and args.writer not in known:
        print(
            f"sscl-daemon retry-dead: no writer named {args.writer!r} in {settings.source} "
            f"(writers: {', '.join(sorted(known)) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        moved = asyncio.run(_retry(settings, args.writer, args.since))
    except StoreError as exc:
        return store_failed("retry-dead", exc)
    scope = f" for writer {args.writer}" if args.writer else ""
    print(f"{moved} dead call log{'s' if moved != 1 else ''}{scope} moved back to pending")
    return EXIT_OK
