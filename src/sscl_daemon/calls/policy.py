"""Which completed calls become call logs, and why (or why not).

The tracker turns a finished session into candidate legs (legs.py) and asks
the :class:`Policy` about each; the daemon writes the logged ones to the
outbox, and ``sscl-daemon replay`` prints the skipped ones with their
reason. :meth:`Policy.explain` answers an admin's "why was (or wasn't) this
call logged?". The options (blocklist, scope, switches) are swapped
atomically with :meth:`Policy.replace_options` when the daemon reloads its
configuration on SIGHUP; the tracker holds the policy by reference, so the
next decision already uses the new options.

Defaults follow what users of the modelled product expect: every answered
user leg is logged; a call nobody answered gives ``missed`` logs (to the
users it rang, or to one owner extension); calls dropped in the IVR before
reaching anyone are logged as ``abandoned`` (the modelled product cannot);
extension-to-extension calls are not logged.

A blocklisted extension is about that person's own call logs: its own legs
are never logged, while the other people in the same call (the user a
blocked extension blind-transferred to, the other agents a queue call rang)
still get theirs unless ``[blocklist] log_other_parties = false``, which
skips every leg of a call the blocked extension took part in.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from sscl_daemon.calls.blocklist import Blocklist, Scope
from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import CallResult, CompletedCall, Direction


class MissedAttribution(enum.StrEnum):
    RANG = "rang"  # one missed log per user whose phone rang
    OWNER = "owner"  # one missed log for the configured owner extension


class SkipReason(enum.StrEnum):
    NOT_A_USER = "not_a_user"
    BLOCKLISTED_NUMBER = "blocklisted_number"
    BLOCKLISTED_EXTENSION = "blocklisted_extension"
    # Another leg of a call a blocked extension took part in (log_other_parties off).
    BLOCKLISTED_PARTICIPANT = "blocklisted_participant"
    OUT_OF_SCOPE = "out_of_scope"
    INTERNAL_CALL = "internal_call"
    ABANDONED_DISABLED = "abandoned_disabled"


@dataclass(frozen=True, slots=True)
class PolicyOptions:
    log_internal: bool = False
    log_abandoned: bool = True
    missed_attribution: MissedAttribution = MissedAttribution.RANG
    missed_owner_extension: str | None = None  # an extension NUMBER
    blocklist: Blocklist = field(default_factory=Blocklist)
    scope: Scope = field(default_factory=Scope)

    def __post_init__(self) -> None:
        if self.missed_attribution is MissedAttribution.OWNER and not self.missed_owner_extension:
            raise ValueError("missed_attribution 'owner' needs missed_owner_extension")


# Read for every completed call: an enum member read through its class costs
# about 50 ns in Python 3.11, a module global a few.
_INTERNAL = Direction.INTERNAL
_ABANDONED = CallResult.ABANDONED


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "is this call logged?": ``reason`` is None when it is."""

    key: str
    logged: bool
    reason: SkipReason | None
    detail: str

    def __str__(self) -> str:
        verdict = "logged" if self.logged else f"skipped ({self.reason})"
        return f"{self.key}: {verdict}: {self.detail}"


class Policy:
    """Decides per candidate call; options and directory can be replaced live."""

    __slots__ = ("_directory", "_options")

    def __init__(self, options: PolicyOptions | None = None, directory: Directory | None = None):
        self._options = options or PolicyOptions()
        self._directory = directory

    @property
    def options(self) -> PolicyOptions:
        return self._options

    def replace_options(self, options: PolicyOptions | None = None, **changes: object) -> None:
        """Swap in new options (a whole object, or changed fields of the current ones)."""
        base = options or self._options
        self._options = dataclasses.replace(base, **changes) if changes else base  # type: ignore[arg-type]

    def replace_directory(self, directory: Directory | None) -> None:
        self._directory = directory

    def decide(self, call: CompletedCall) -> Decision:
        return self.explain(call)

    def logs(self, call: CompletedCall) -> bool:
        return self.skipped(call) is None

    def explain(self, call: CompletedCall) -> Decision:
        decision = self.skipped(call)
        if decision is not None:
            return decision
        who = call.extension_number or call.extension_id or "nobody"
        return Decision(call.key, True, None, f"{call.result} {call.direction} call of {who}")

    def skipped(self, call: CompletedCall) -> Decision | None:
        """The decision for a call that is not logged; None (and no text built) for one that is.

        The tracker asks this for every completed call, so the common answer is
        the cheap one.
        """
        opts = self._options
        directory = self._directory
        ext = directory.by_id(call.extension_id) if directory is not None else None
        who = call.extension_number or call.extension_id or "nobody"
        blocklist = opts.blocklist
        blocking = bool(blocklist)  # one __len__ call, not one per check
        if ext is not None and directory is not None and not directory.is_user(ext.id):
            reason = SkipReason.NOT_A_USER
            detail = f"extension {who} is a {ext.type.value}, not a user; only users get call logs"
        elif blocking and blocklist.matches_number(call.external_number):
            reason = SkipReason.BLOCKLISTED_NUMBER
            detail = f"external number {call.external_number} matches the blocklist"
        elif blocking and blocklist.matches_extension(call.extension_number):
            reason = SkipReason.BLOCKLISTED_EXTENSION
            detail = f"extension {who} is on the blocklist; its own calls are never logged"
        elif (
            blocking
            and not blocklist.log_other_parties
            and (blocked := self._blocked_participant(call)) is not None
        ):
            reason = SkipReason.BLOCKLISTED_PARTICIPANT
            detail = (
                f"extension {blocked} takes part in the call and is on the blocklist; "
                "blocklist.log_other_parties is false"
            )
        elif not opts.scope.allows(call.extension_number, ext.department if ext else None):
            reason = SkipReason.OUT_OF_SCOPE
            department = (ext.department if ext else None) or "unknown"
            detail = (
                f"extension {who} (department {department}) is outside the logging scope "
                f"({opts.scope.mode.value})"
            )
        elif call.direction is _INTERNAL and not opts.log_internal:
            reason = SkipReason.INTERNAL_CALL
            detail = "extension-to-extension call; set calls.log_internal = true to log these"
        elif call.result is _ABANDONED and not opts.log_abandoned:
            reason = SkipReason.ABANDONED_DISABLED
            detail = "the caller hung up before reaching anyone; calls.log_abandoned is false"
        else:
            return None
        return Decision(call.key, False, reason, detail)

    def _blocked_participant(self, call: CompletedCall) -> str | None:
        blocklist = self._options.blocklist
        for number in (call.internal_number, *call.participants):
            if blocklist.matches_extension(number):
                return number
        return None
