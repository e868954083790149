"""The call policy as the configuration sets it, and the blocklist tester's answer.

Where it sits: between the configuration and the pure call core. The daemon's
account runner builds each account's :class:`~sscl_daemon.calls.policy.Policy` from
:func:`policy_options`; ``sscl-daemon blocklist check`` and the admin console's
tester both explain a number with :func:`answer`. It lives here, above ``config``
and ``calls`` and below ``daemon``, ``console`` and ``commands``, so none of those
imports another for it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction, idempotency_key
from sscl_daemon.calls.numbers import looks_like_extension, to_e164
from sscl_daemon.calls.policy import Policy, PolicyOptions
from sscl_daemon.config import AccountSettings


def policy_options(account: AccountSettings) -> PolicyOptions:
    """The policy options of one account (``[calls]``, ``[blocklist]``, ``[scope]``)."""
    calls = account.calls
    return PolicyOptions(
        log_internal=calls.log_internal,
        log_abandoned=calls.log_abandoned,
        missed_attribution=calls.missed_attribution,
        missed_owner_extension=calls.missed_owner_extension,
        blocklist=account.blocklist,
        scope=account.scope,
    )


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
