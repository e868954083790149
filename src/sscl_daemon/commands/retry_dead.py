"""``sscl-daemon retry-dead [--config FILE] [--writer NAME] [--since WHEN]``.

Moves call logs parked as dead letters back into the outbox as pending, for
example after fixing a CRM field or a credential. The running daemon picks
them up within seconds (the store notifies its dispatchers). Opens the
daemon's existing store as ``status`` does (:mod:`.attach`): never a new one.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from sscl_daemon.commands.attach import open_store, store_command
from sscl_daemon.config import Settings, add_config_argument
from sscl_daemon.exitcodes import EXIT_CONFIG, EXIT_OK
from sscl_daemon.since import parse_since

HELP = "send call logs parked as dead letters to their CRM again"


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
    """Move the dead call logs back; the exit status."""
    known = {w.name for account in settings.accounts for w in account.writers}
    if writer is not None and writer not in known:
        print(
            f"sscl-daemon retry-dead: no writer named {writer!r} in {settings.source} "
            f"(writers: {', '.join(sorted(known)) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    store = await open_store(settings)
    try:
        moved = await store.retry_dead(writer=writer, since=since)
    finally:
        await store.close()
    scope = f" for writer {writer}" if writer else ""
    print(f"{moved} dead call log{'s' if moved != 1 else ''}{scope} moved back to pending")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    return store_command(
        "retry-dead", args, lambda settings: _retry(settings, args.writer, args.since)
    )
