"""``sscl-daemon retry-dead --config FILE [--writer NAME] [--since WHEN]``.

Moves call logs parked as dead letters back into the outbox as pending, for
example after fixing a CRM field or a credential. The running daemon picks
them up within seconds (the store notifies its dispatchers).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta

from sscl_daemon.commands.status import add_config_option, load, open_store
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
    add_config_option(parser)
    parser.add_argument("--writer", metavar="NAME", help="only this writer's dead call logs")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        type=parse_since,
        help="only call logs parked since WHEN (a duration like 2h, or an ISO time)",
    )


async def _retry(args: argparse.Namespace) -> int:
    settings = load(args)
    if settings is None:
        return 2
    known = {w.name for w in settings.writers}
    if args.writer is not None and args.writer not in known:
        print(
            f"sscl-daemon retry-dead: no writer named {args.writer!r} in {args.config} "
            f"(writers: {', '.join(sorted(known)) or 'none'})",
            file=sys.stderr,
        )
        return 2
    store = await open_store(settings)
    try:
        moved = await store.retry_dead(writer=args.writer, since=args.since)
    finally:
        await store.close()
    scope = f" for writer {args.writer}" if args.writer else ""
    print(f"{moved} dead call log{'s' if moved != 1 else ''}{scope} moved back to pending")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_retry(args))
    except StoreError as exc:
        print(f"sscl-daemon retry-dead: {exc}", file=sys.stderr)
        return 1
