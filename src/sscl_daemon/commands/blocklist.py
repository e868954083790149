"""``sscl-daemon blocklist check NUMBER [--extension EXT] [--config FILE]``.

Answers "would a call with this number be logged, and why?" with the same
policy the daemon applies (blocklist, scope, and the call rules), for an
inbound answered call from NUMBER to the given extension. When NUMBER is an
extension number, it answers for that user's own calls and then says
whether the other people in a call with that extension are logged
(``[blocklist] log_other_parties``). Without a config file the defaults
apply (an empty blocklist).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction, idempotency_key
from sscl_daemon.calls.numbers import looks_like_extension, to_e164
from sscl_daemon.calls.policy import Policy
from sscl_daemon.config import ConfigError, Settings, load_config

HELP = "check whether calls with a number would be logged, and why"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="would a call with NUMBER be logged?")
    check.add_argument("number", help="an external number (E.164, or national with a region)")
    check.add_argument("--extension", metavar="EXT", help="the user's extension number")
    check.add_argument("--config", "-c", metavar="FILE", help="the daemon's configuration")


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
    if args.config:
        try:
            settings = load_config(args.config, require_credentials=False)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
    else:
        settings = Settings()
    from sscl_daemon.daemon.app import policy_options

    policy = Policy(policy_options(settings))
    if looks_like_extension(args.number):
        return _check_extension(policy, args.number)
    region = settings.calls.default_region
    external = to_e164(args.number, region)
    if external is None:
        hint = "" if region else " (national numbers need calls.default_region in the config)"
        print(f"{args.number!r} is not a phone number we can read{hint}", file=sys.stderr)
        return 2
    decision = policy.explain(probe_call(external, args.extension))
    who = f" to extension {args.extension}" if args.extension else ""
    if decision.logged:
        print(f"LOGGED: a call with {external}{who} would be logged ({decision.detail})")
        return 0
    print(f"NOT LOGGED: a call with {external}{who} would be skipped: {decision.detail}")
    return 1


def _check_extension(policy: Policy, extension: str) -> int:
    """The extension's own calls, then the other people in its calls (two lines)."""
    own = policy.explain(probe_call(None, extension))
    if own.logged:
        print(f"LOGGED: calls of extension {extension} would be logged ({own.detail})")
    else:
        print(f"NOT LOGGED: calls of extension {extension} would be skipped: {own.detail}")
    blocklist = policy.options.blocklist
    if blocklist.matches_extension(extension):
        if blocklist.log_other_parties:
            print(
                f"OTHERS LOGGED: the other people in a call with extension {extension} "
                "(a transfer target, the other agents a queue rang) still get their call "
                "logs (blocklist.log_other_parties = true)"
            )
        else:
            print(
                f"OTHERS NOT LOGGED: no one in a call with extension {extension} gets a "
                "call log (blocklist.log_other_parties = false)"
            )
    return 0 if own.logged else 1
