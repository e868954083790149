"""What the WebSocket subscription hands the daemon, and what it keeps to recover.

Where it sits: :mod:`.subscription` runs the stream and produces these values; the
daemon's account runner (``daemon/accounts.py``) consumes them, the reconciler
(:mod:`.reconcile`) closes each :class:`Gap` from the call log, and the store keeps the
:class:`RecoveryPoint` with every snapshot so a restart inside the gateway's recovery
window recovers too. Plain values only (no I/O), so the consumers need not import the
WebSocket client to name them.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# The gateway's recovery window when none was announced or recorded (research A8).
DEFAULT_RECOVERY_WINDOW = 180.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class GapReason(enum.StrEnum):
    RECOVERY_FAILED = "recovery-failed"
    REPLAY_INCOMPLETE = "replay-incomplete"
    RECOVERY_WINDOW_PASSED = "recovery-window-passed"
    NO_RECOVERY_TOKEN = "no-recovery-token"


class ConnectionState(enum.StrEnum):
    CONNECTING = "connecting"
    SUBSCRIBED = "subscribed"
    RECOVERED = "recovered"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class RawNotification:
    """One telephony-session notification, as the raw webhook envelope (JSON bytes)."""

    envelope: bytes
    uuid: str
    received_at: datetime


@dataclass(frozen=True)
class Gap:
    """Notifications in [start, end] may have been lost."""

    start: datetime
    end: datetime
    reason: GapReason
    detail: str = ""


@dataclass(frozen=True)
class StateChange:
    state: ConnectionState
    detail: str = ""


Item = RawNotification | Gap | StateChange


@dataclass(frozen=True)
class RecoveryPoint:
    """What a later connection (or a restarted daemon) needs to recover the session.

    `last_seen` is when the stream was last known to be complete; the recovery window
    (`recovery_timeout`, from ConnectionDetails) counts from there.
    """

    token: str | None = field(repr=False)
    sequence: int
    last_seen: datetime
    recovery_timeout: float = DEFAULT_RECOVERY_WINDOW
    oauth_session: str | None = None

    @property
    def expires_at(self) -> datetime:
        return self.last_seen + timedelta(seconds=self.recovery_timeout)

    @classmethod
    def from_stored(
        cls,
        token: str | None,
        expires_at: datetime,
        oauth_session: str | None = None,
        recovery_timeout: float = DEFAULT_RECOVERY_WINDOW,
        sequence: int | None = None,
    ) -> RecoveryPoint:
        """Rebuild from what the store keeps (`save_recovery_token`'s fields).

        Without the `sequence` (stored by older versions) an incomplete replay after the
        restart cannot be told from a complete one.
        """
        last_seen = expires_at - timedelta(seconds=recovery_timeout)
        return cls(token, sequence or 0, last_seen, recovery_timeout, oauth_session)


PersistRecovery = Callable[[RecoveryPoint], Awaitable[None]]
Sink = Callable[[Item], Awaitable[None]]


@dataclass
class SubscriptionStats:
    connections: int = 0
    recoveries: int = 0
    failed_recoveries: int = 0
    subscriptions: int = 0
    gaps: int = 0
    heartbeats: int = 0
    probes: int = 0
    stalls: int = 0  # unanswered probes while the platform answered nothing: socket kept
    dead_connections: int = 0
    notifications: int = 0
    ignored_frames: int = 0
