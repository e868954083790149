"""``sscl-daemon migrate [--config FILE]``: bring the store's schema to this version.

The daemon migrates at every start; this command does it ahead of time (before a
rolling upgrade, or to check that the DSN works). It never creates a database: the
configured one (the embedded server in the state directory, made by the daemon's first
start, or the DSN's database) must exist, else it says which one it looked at and fails.
With the embedded store and the daemon running, it migrates through the daemon's server.
Exit statuses: :mod:`sscl_daemon.exitcodes`; errors are one readable line on stderr,
never a traceback or a password.
"""

from __future__ import annotations

import argparse

from sscl_daemon.commands.attach import open_store, store_command
from sscl_daemon.config import Settings, add_config_argument
from sscl_daemon.exitcodes import EXIT_OK

HELP = "apply the database schema migrations (the daemon also does this at start)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


async def _migrate(settings: Settings) -> int:
    store = await open_store(settings, require_schema=False)
    async with store:
        target, report = store.target, await store.migrate()
    for migration in report.applied:
        print(f"applied {migration.label}")
    if report.applied:
        print(f"{target}: schema now at version {report.version}")
    else:
        print(f"{target}: schema already at version {report.version}, nothing to do")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    return store_command("migrate", args, _migrate)
