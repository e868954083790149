"""The values the store takes and returns: checkpoints, outbox items, dead letters, status.

Plain frozen dataclasses and enums, free of asyncpg, so the daemon, the
dispatcher and the CLI can use them without touching SQL.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sscl_daemon.calls.model import CompletedCall


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SENT = "sent"
    DEAD = "dead"


class Outcome(enum.StrEnum):
    """How a settled CRM write ended: a new record, one that was already there (found by
    key), or none on purpose (the contact policy skipped the call; no CRM record id)."""

    CREATED = "created"
    EXISTED = "existed"
    SKIPPED = "skipped"


class DeadLetterKind(enum.StrEnum):
    EVENT = "event"  # a WebSocket notification that could not be decoded or made no sense
    CALL_LOG_RECORD = "call_log_record"  # a call-log record the reconciler could not use
    CALL = "call"  # a completed call that could not be stored or written
    SNAPSHOT = "snapshot"  # an in-flight snapshot that could not be restored


@dataclass(frozen=True)
class Checkpoint:
    """Where an account's event stream stands; committed with the calls it produced.

    The low-water mark: the first event time of the oldest session still in flight
    (``daemon/pipeline.py``); the call log is read from there after a restart."""

    last_event_time: datetime | None
    # Set by the store when loaded: when this checkpoint was last written.
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RecoveryToken:
    """The WebSocket gateway's recovery (``wsc``) token and the OAuth session it is bound to."""

    token: str = field(repr=False)
    expires_at: datetime
    oauth_session: str = field(repr=False)
    updated_at: datetime | None = None
    # The gateway sequence of the last frame the stored state saw (None: not recorded).
    sequence: int | None = None


@dataclass(frozen=True)
class DeadLetter:
    kind: DeadLetterKind
    reason: str
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class StoredDeadLetter:
    id: int
    account: str
    kind: str
    reason: str
    payload: bytes = field(repr=False)
    created_at: datetime | None = None


@dataclass(frozen=True)
class OutboxItem:
    """One claimed call log: the dispatcher owns it until ``claim_expires_at``."""

    id: int
    account: str
    writer: str
    call: CompletedCall
    # Claims so far, this one included.
    attempts: int
    # A previous attempt may have reached the CRM: look for the record before creating one.
    uncertain: bool
    claimed_by: str
    claim_expires_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class OutboxRow:
    """An outbox row as stored (for status views, tests and the CLI)."""

    id: int
    account: str
    call_key: str
    writer: str
    status: OutboxStatus
    attempts: int
    uncertain: bool
    next_attempt_at: datetime
    claimed_by: str | None
    crm_record_id: str | None
    outcome: Outcome | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class WriterStats:
    writer: str
    pending: int = 0
    in_flight: int = 0
    sent: int = 0
    dead: int = 0
    # Settled without a CRM record because the contact policy skips the call (not in ``sent``).
    skipped: int = 0
    # Pending rows whose next attempt time has come.
    due: int = 0
    # Seconds since the oldest pending or in-flight row entered the outbox.
    oldest_pending_age: float | None = None
    # The newest error among its pending, in-flight and dead rows, and when it was recorded.
    last_error: str | None = None
    last_error_at: datetime | None = None


@dataclass(frozen=True)
class AccountStats:
    account: str
    last_event_time: datetime | None
    # Seconds since the checkpoint was last advanced.
    checkpoint_age: float | None
    recovery_token_expires_at: datetime | None
    snapshot_taken_at: datetime | None


@dataclass(frozen=True)
class StoreStatus:
    writers: tuple[WriterStats, ...]
    accounts: tuple[AccountStats, ...]
    dead_letters: Mapping[str, int]  # kind -> count
    schema_version: int
    # The database's clock when these figures were read (ages are relative to it).
    read_at: datetime | None = None

    def writer(self, name: str) -> WriterStats:
        for stats in self.writers:
            if stats.writer == name:
                return stats
        return WriterStats(name)
