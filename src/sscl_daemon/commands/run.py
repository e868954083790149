"""``sscl-daemon run [--config FILE]``: the long-running daemon (what systemd starts).

Where it sits: the unit's ``ExecStart=``. It loads the whole configuration (every secret),
checks that the state directory is usable, then hands over to :class:`~sscl_daemon.daemon.
app.Daemon`. Problems a restart cannot fix exit with
:data:`~sscl_daemon.exitcodes.EXIT_CONFIG`, which the unit does not restart on.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sscl_daemon.commands import command_settings
from sscl_daemon.config import Need, add_config_argument
from sscl_daemon.config.files import state_dir_problem
from sscl_daemon.exitcodes import EXIT_CONFIG

HELP = "run the daemon: subscribe to the account's calls and log them into the CRM(s)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def run(args: argparse.Namespace) -> int:
    settings = command_settings(args, Need.ALL)
    if settings is None:
        return EXIT_CONFIG
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    problem = state_dir_problem(settings.daemon.state_dir)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_CONFIG
    from sscl_daemon.daemon.app import Daemon

    return asyncio.run(Daemon(settings).run())
