"""``sscl-daemon blocklist check NUMBER [--extension EXT] [--config FILE]``.

Answers "would a call with this number be logged, and why?" with the same
policy the daemon applies (blocklist, scope, and the call rules), for an
inbound answered call from NUMBER to the given extension. When NUMBER is an
extension number, it answers for that user's own calls and then says
whether the other people in a call with that extension are logged
(``[blocklist] log_other_parties``). The configuration is found as for
every command (``--config``, ``$SSCL_DAEMON_CONFIG``, the default path); a
file that cannot be read is an error (exit 2), never an empty blocklist. In
a file with several ``[accounts.NAME]``, each account is answered in turn
(``--account NAME`` picks one).
"""

from __future__ import annotations

import argparse
import sys

from sscl_daemon.calls.policy import Policy
from sscl_daemon.commands import command_settings
from sscl_daemon.config import Need, add_config_argument
from sscl_daemon.configured_policy import answer, policy_options
from sscl_daemon.exitcodes import EXIT_CONFIG

HELP = "check whether calls with a number would be logged, and why"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="would a call with NUMBER be logged?")
    check.add_argument("number", help="an external number (E.164, or national with a region)")
    check.add_argument("--extension", metavar="EXT", help="the user's extension number")
    add_config_argument(check)
    check.add_argument("--account", metavar="NAME", help="only this [accounts.NAME]")


def run(args: argparse.Namespace) -> int:
    settings = command_settings(args, Need.NONE)
    if settings is None:
        return EXIT_CONFIG
    accounts = settings.accounts
    if args.account is not None:
        accounts = tuple(a for a in accounts if a.name == args.account)
        if not accounts:
            names = ", ".join(a.name for a in settings.accounts)
            print(f"no account {args.account!r} in the configuration ({names})", file=sys.stderr)
            return EXIT_CONFIG
    worst = 0
    for account in accounts:
        policy = Policy(policy_options(account))
        status, lines = answer(policy, args.number, args.extension, account.calls.default_region)
        if len(accounts) > 1:
            lines = [f"account {account.name}: {line}" for line in lines]
        for line in lines:
            print(line, file=sys.stderr if status == 2 else sys.stdout)
        worst = max(worst, status)
    return worst
