"""``sscl-daemon check-config [--config FILE]``: validate a configuration file and summarise it.

Where it sits: what an admin runs before ``systemctl restart``. It loads the file as
``run`` does (every secret, from ``$CREDENTIALS_DIRECTORY`` or the credentials directory),
so a file it accepts is one the daemon starts with. The file may also be given
positionally (``check-config FILE``), as earlier versions required.
"""

from __future__ import annotations

import argparse
import sys

from sscl_daemon.config import (
    ConfigError,
    Need,
    Settings,
    add_config_argument,
    config_path,
    load_config,
)
from sscl_daemon.config.secrets import credential_source
from sscl_daemon.exitcodes import EXIT_CONFIG, EXIT_OK

HELP = "validate a configuration file (exit 2 and list every problem if invalid)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("file", nargs="?", help="the file, instead of --config (older form)")


def _credentials(settings: Settings) -> str:
    source = credential_source(settings.daemon.credentials_dir)
    return f"{source.directory}{' ($CREDENTIALS_DIRECTORY)' if source.from_systemd else ''}"


def summary(settings: Settings) -> str:
    store = "embedded PostgreSQL" if settings.store.embedded else "external PostgreSQL"
    lines = [
        f"state directory: {settings.daemon.state_dir}",
        f"credentials (credential:NAME): {_credentials(settings)}",
        f"store: {store}",
    ]
    for account in settings.accounts:
        writers = ", ".join(
            f"{w.name} ({w.type}{'' if w.enabled else ', disabled'})" for w in account.writers
        )
        rc = account.ringcentral
        lines += [
            f"account {account.name}:",
            f"  RingCentral: {rc.server} (client id {rc.client_id})",
            f"  blocklist: {len(account.blocklist)} entries; scope: {account.scope.mode.value}",
            f"  writers: {writers}",
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.file and args.config:
        print("give the file either positionally or with --config, not both", file=sys.stderr)
        return EXIT_CONFIG
    path = config_path(args.file or args.config)
    try:
        settings = load_config(path, needs=Need.ALL)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{path}: OK")
    print(summary(settings))
    return EXIT_OK
