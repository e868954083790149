"""``sscl-daemon blocklist check NUMBER [--extension EXT] [--config FILE]``.

Answers "would a call with this number be logged, and why?" with the same
policy the daemon applies (blocklist, scope, and the call rules), for an
inbound answered call from NUMBER to the given extension. Without a config
file the defaults apply (an empty blocklist).
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


def probe_call(number: str, extension: str | None, region: str | None) -> CompletedCall:
    """An inbound answered call from ``number`` to ``extension``, as the policy sees calls."""
    external = to_e164(number, region)
    internal = number if looks_like_extension(number) else None
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
        direction=Direction.INTERNAL if internal else Direction.INBOUND,
        external_number=None if internal else external,
        external_name=None,
        internal_number=internal,
        result=CallResult.ANSWERED,
        start_time=now,
        answer_time=now,
        end_time=now,
        ring_ms=0,
        queue_ms=0,
        talk_ms=0,
        hold_ms=0,
        total_ms=0,
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

    region = settings.calls.default_region
    if not looks_like_extension(args.number) and to_e164(args.number, region) is None:
        hint = "" if region else " (national numbers need calls.default_region in the config)"
        print(f"{args.number!r} is not a phone number we can read{hint}", file=sys.stderr)
        return 2
    call = probe_call(args.number, args.extension, region)
    decision = Policy(policy_options(settings)).explain(call)
    who = f" to extension {args.extension}" if args.extension else ""
    shown = call.external_number or call.internal_number
    if decision.logged:
        print(f"LOGGED: a call with {shown}{who} would be logged ({decision.detail})")
        return 0
    print(f"NOT LOGGED: a call with {shown}{who} would be skipped: {decision.detail}")
    return 1
