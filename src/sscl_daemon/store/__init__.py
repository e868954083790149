"""Postgres store: checkpoints, in-flight snapshots, the outbox/ledger, dead letters, leases.

The only package that speaks SQL. By default it starts an embedded
PostgreSQL under the state directory (:mod:`.embedded`); in production it
connects to the server named by ``store.dsn``. See :class:`Store`.
"""

from sscl_daemon.store.access import OUTBOX_CHANNEL
from sscl_daemon.store.errors import StoreError
from sscl_daemon.store.instances import Announcement, CommitFailure, InstanceInfo
from sscl_daemon.store.leases import Admit, Lease, LeaseInfo, LeaseLostError
from sscl_daemon.store.migrate import MigrationReport
from sscl_daemon.store.model import (
    AccountStats,
    Checkpoint,
    DeadLetter,
    DeadLetterKind,
    OutboxItem,
    OutboxRow,
    OutboxStatus,
    Outcome,
    RecoveryToken,
    StoredDeadLetter,
    StoreStatus,
    WriterStats,
)
from sscl_daemon.store.store import Store, WorkNotifier

__all__ = [
    "OUTBOX_CHANNEL",
    "AccountStats",
    "Admit",
    "Announcement",
    "Checkpoint",
    "CommitFailure",
    "DeadLetter",
    "DeadLetterKind",
    "InstanceInfo",
    "Lease",
    "LeaseInfo",
    "LeaseLostError",
    "MigrationReport",
    "OutboxItem",
    "OutboxRow",
    "OutboxStatus",
    "Outcome",
    "RecoveryToken",
    "Store",
    "StoreError",
    "StoreStatus",
    "StoredDeadLetter",
    "WorkNotifier",
    "WriterStats",
]
