"""``sscl-daemon check-config FILE``: validate a configuration file and summarise it."""

from __future__ import annotations

import argparse
import sys

from sscl_daemon.config import ConfigError, Settings, load_config

HELP = "validate a configuration file (exit 2 and list every problem if invalid)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the TOML configuration file")


def summary(settings: Settings) -> str:
    store = "embedded PostgreSQL" if settings.store.embedded else "external PostgreSQL"
    lines = [f"state directory: {settings.daemon.state_dir}", f"store: {store}"]
    for account in settings.account_list():
        writers = ", ".join(
            f"{w.name} ({w.type}{'' if w.enabled else ', disabled'})" for w in account.writers
        )
        rc = account.ringcentral
        lines += [
            f"account {account.name}:",
            f"  RingCentral: {rc.server} (client id {rc.client_id})",
            f"  blocklist: {len(account.blocklist)} entries; scope: {account.scope.mode.value}",
            f"  writers: {writers or 'none (calls are tracked but not logged anywhere)'}",
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{args.file}: OK")
    print(summary(settings))
    return 0
