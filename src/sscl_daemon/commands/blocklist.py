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
from datetime import UTC, datetime

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction, idempotency_key
from sscl_daemon.calls.numbers import looks_like_extension, to_e164
from sscl_daemon.calls.policy import Policy
from sscl_daemon.config import ConfigError, Need, add_config_argument, load_for_command

HELP = "check whether calls with a number would be logged, and why"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="would a call with NUMBER be logged?")
    check.add_argument("number", help="an external number (E.164, or national with a region)")
    check.add_argument("--extension", metavar="EXT", help="the user's extension number")
    add_config_argument(check)
    check.add_argument("--account", metavar="NAME", help="only this [accounts.NAME]")


def probe_call(
    external: str | None, extension: str | None, participants: tuple[str, ...] = ()
) -> CompletedCall:
    """An inbound answered call from ``external`` to ``extension``, as the policy sees calls."""
    now = datetime.now(UTC)
    return CompletedCall(
        key=idempotency_key("blocklist-check", extension),
        telephony_session_id="blocklist-check",
        session_id=None,
        account_id="-",
        extension_id=None,
        extension_number=extension,
        user_name=None,
        user_email=None,
        direction=Direction.INBOUND,
        external_number=external,
        external_name=None,
        internal_number=None,
        result=CallResult.ANSWERED,
        start_time=now,
        answer_time=now,
        end_time=now,
        ring_ms=0,
        queue_ms=0,
        talk_ms=0,
        hold_ms=0,
        total_ms=0,
        participants=participants,
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_for_command(args, Need.NONE)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from sscl_daemon.daemon.app import policy_options

    accounts = settings.account_list()
    if args.account is not None:
        accounts = tuple(a for a in accounts if a.name == args.account)
        if not accounts:
            names = ", ".join(a.name for a in settings.account_list())
            print(f"no account {args.account!r} in the configuration ({names})", file=sys.stderr)
            return 2
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


def answer(
    policy: Policy, number: str, extension: str | None, region: str | None
) -> tuple[int, list[str]]:
    """The check's lines and exit status (0 logged, 1 skipped, 2 unreadable number); the
    admin console's tester shows the same lines."""
    if looks_like_extension(number):
        return _check_extension(policy, number)
    external = to_e164(number, region)
    if external is None:
        hint = "" if region else " (national numbers need calls.default_region in the config)"
        return 2, [f"{number!r} is not a phone number we can read{hint}"]
    decision = policy.explain(probe_call(external, extension))
    who = f" to extension {extension}" if extension else ""
    if decision.logged:
        return 0, [f"LOGGED: a call with {external}{who} would be logged ({decision.detail})"]
    return 1, [f"NOT LOGGED: a call with {external}{who} would be skipped: {decision.detail}"]


def _check_extension(policy: Policy, extension: str) -> tuple[int, list[str]]:
    """The extension's own calls, then the other people in its calls (two lines)."""
    own = policy.explain(probe_call(None, extension))
    if own.logged:
        lines = [f"LOGGED: calls of extension {extension} would be logged ({own.detail})"]
    else:
        lines = [f"NOT LOGGED: calls of extension {extension} would be skipped: {own.detail}"]
    blocklist = policy.options.blocklist
    if blocklist.matches_extension(extension):
        if blocklist.log_other_parties:
            lines.append(
                f"OTHERS LOGGED: the other people in a call with extension {extension} "
                "(a transfer target, the other agents a queue rang) still get their call "
                "logs (blocklist.log_other_parties = true)"
            )
        else:
            lines.append(
                f"OTHERS NOT LOGGED: no one in a call with extension {extension} gets a "
                "call log (blocklist.log_other_parties = false)"
            )
    return (0 if own.logged else 1), lines
