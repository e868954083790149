"""``sscl-daemon migrate [--config FILE]``: bring the store's schema to this version.

The daemon migrates at every start; this command does it ahead of time
(before a rolling upgrade, or to check that the DSN works). Without
``--config`` it uses the defaults: the embedded server under ``./state``.
Exit 0 on success, 2 for a configuration problem, 1 when the store cannot
be used; errors are one readable message, never a traceback or a password.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sscl_daemon.config import ConfigError, Settings, load_config
from sscl_daemon.store import MigrationReport, Store, StoreError

HELP = "apply the database schema migrations (the daemon also does this at start)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="the TOML configuration file")


async def _migrate(settings: Settings) -> tuple[str, MigrationReport]:
    store = await Store.open(settings.store, settings.daemon.state_dir, apply_migrations=False)
    async with store:
        return store.target, await store.migrate()


def run(args: argparse.Namespace) -> int:
    try:
        settings = (
            load_config(args.config, require_credentials=False) if args.config else Settings()
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        target, report = asyncio.run(_migrate(settings))
    except StoreError as exc:
        print(f"sscl-daemon migrate: {exc}", file=sys.stderr)
        return 1
    for migration in report.applied:
        print(f"applied {migration.label}")
    if report.applied:
        print(f"{target}: schema now at version {report.version}")
    else:
        print(f"{target}: schema already at version {report.version}, nothing to do")
    return 0
