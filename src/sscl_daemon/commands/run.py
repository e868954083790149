"""``sscl-daemon run --config FILE``: the long-running daemon (what systemd starts)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sscl_daemon.config import ConfigError, load_config

HELP = "run the daemon: subscribe to the account's calls and log them into the CRM(s)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        required=True,
        metavar="FILE",
        help="the TOML configuration file (see config.example.toml)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from sscl_daemon.daemon.app import Daemon

    return asyncio.run(Daemon(settings).run())
