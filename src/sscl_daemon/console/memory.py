"""What the daemon process remembers for the console, in memory and bounded.

Calls the policy skips (blocklist, scope, internal, not a user, abandoned
switched off) never reach the outbox, so PostgreSQL cannot say why a call
is missing. The pipeline hands each skip decision to :data:`RECENT_SKIPS`, a
ring of the newest :data:`SKIPS_KEPT` decisions of this process; the Calls
page shows them next to the logged calls. They are lost at a restart, which
is acceptable for "why wasn't this call logged?" asked about recent calls;
for older ones ``sscl-daemon replay`` answers from recorded events.

:data:`LAST_RELOAD` keeps the result of the last SIGHUP reload (applied, or
rejected with the problems found) for the blocklist page.

Both are process-wide, like the Prometheus metrics, so the pipeline and the
reload code record with one call and no plumbing. No I/O here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.policy import Decision

# About 1 KB each: a day of skips in a mid-sized organisation, a few MB at most.
SKIPS_KEPT = 5000


@dataclass(frozen=True, slots=True)
class Skip:
    """One call the policy did not log, and the decision (reason and deciding entry)."""

    call: CompletedCall
    decision: Decision
    seen_at: datetime


class RecentSkips:
    """The newest skipped calls, newest last; the oldest are dropped beyond ``limit``."""

    def __init__(self, limit: int = SKIPS_KEPT) -> None:
        self._ring: deque[Skip] = deque(maxlen=limit)

    def add(self, call: CompletedCall, decision: Decision) -> None:
        self._ring.append(Skip(call, decision, datetime.now(UTC)))

    def newest(self) -> list[Skip]:
        """A copy, newest first (safe to iterate while the pipeline adds)."""
        return list(reversed(self._ring))

    def clear(self) -> None:
        self._ring.clear()


@dataclass(frozen=True, slots=True)
class ReloadResult:
    at: datetime
    applied: bool
    # What changed live and what needs a restart, or the problems that rejected the file.
    details: tuple[str, ...]


class LastReload:
    def __init__(self) -> None:
        self._result: ReloadResult | None = None

    def record(self, applied: bool, details: list[str] | tuple[str, ...]) -> None:
        self._result = ReloadResult(datetime.now(UTC), applied, tuple(details))

    @property
    def result(self) -> ReloadResult | None:
        return self._result


RECENT_SKIPS = RecentSkips()
LAST_RELOAD = LastReload()
