"""Daemon instances sharing one store: who is alive, what each is configured for and holds.

Where it sits: fair sharing of the accounts (:mod:`sscl_daemon.daemon.balance`)
needs to know how many instances are alive and how many accounts each holds.
Every daemon announces itself in the ``instances`` table (migration 0002) through
its :class:`~.leases.LeaseKeeper`, which renews the row's heartbeat every lease
poll and deletes it when the daemon stops; ``sscl-daemon status`` reads the same
view (:func:`fleet`).

Liveness: an instance is live while its heartbeat is younger than the lease TTL
*and* its instance lock is held. The instance lock is a session-level advisory
lock (key ``hashtextextended('sscl-instance:' || instance_id, 0)``) on the same
dedicated connection as the instance's lease locks, so a SIGKILLed instance (or
one whose connection was cut) stops counting the moment PostgreSQL drops its
session: the survivors' shares grow at once and its accounts move within the
usual takeover time, not a TTL later. The heartbeat covers what the lock cannot
see: a frozen process (SIGSTOP, swapped out) keeps its session but stops
beating. Rows of dead instances are ignored, and pruned an hour after their last
heartbeat (until then ``status`` lists them as gone).

An instance "holds" an account when the account's lease row names it as holder,
the row is current, and the lease's advisory lock is held (exactly
:attr:`LeaseInfo.held <sscl_daemon.store.leases.LeaseInfo.held>`). The instance id
is the lease holder name (``instance_name:pid``), which joins the two tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from sscl_daemon.store import sql

if TYPE_CHECKING:
    from sscl_daemon.store.access import AnyConnection

# Rows whose heartbeat is older than this are deleted by any live instance's heartbeat.
PRUNE_AFTER = 3600.0


@dataclass(frozen=True)
class Announcement:
    """What a daemon says about itself in the ``instances`` table."""

    # The lease holder name (``instance_name:pid``).
    instance_id: str
    host: str
    pid: int
    # The accounts its configuration lists (the ones it may hold).
    accounts: tuple[str, ...]


@dataclass(frozen=True)
class CommitFailure:
    """An account whose commits (calls and checkpoint) have failed since ``since``."""

    since: datetime
    error: str


def _failures_json(failures: Mapping[str, CommitFailure]) -> str:
    return json.dumps(
        {a: {"since": f.since.isoformat(), "error": f.error} for a, f in failures.items()}
    )


def _failures_of(text: str) -> dict[str, CommitFailure]:
    return {
        account: CommitFailure(datetime.fromisoformat(item["since"]), str(item["error"]))
        for account, item in json.loads(text).items()
    }


# Writer -> fact -> value, as one instance's writers of one account found them.
WriterFacts = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class InstanceInfo(Announcement):
    """One row of the ``instances`` table as the fleet view (and ``status``) sees it: what
    the instance announced, and what the view adds."""

    # The accounts it holds now (current lease row and lease lock held).
    held: tuple[str, ...]
    started_at: datetime
    heartbeat_at: datetime
    # Seconds since the last heartbeat, by the database's clock.
    heartbeat_age: float
    # Heartbeat younger than the TTL asked for, and the instance lock held.
    live: bool
    # Accounts it holds whose commits are failing (as it last recorded them).
    commit_failures: Mapping[str, CommitFailure] = field(default_factory=dict)
    # Account -> writer -> what the writer found out about its CRM (HubSpot's key_mode).
    writer_facts: Mapping[str, WriterFacts] = field(default_factory=dict)


async def heartbeat(
    conn: AnyConnection, instance: Announcement, *, fresh: bool, limit: float
) -> None:
    await conn.execute(
        sql.HEARTBEAT,
        instance.instance_id,
        instance.host,
        instance.pid,
        list(instance.accounts),
        fresh,
        PRUNE_AFTER,
        timeout=limit,
    )


async def record_commit_failures(
    conn: AnyConnection, instance_id: str, failures: Mapping[str, CommitFailure]
) -> None:
    """Replace the instance's failing accounts with ``failures`` (empty: all commit); the
    same value again writes nothing."""
    await conn.execute(sql.RECORD_COMMIT_FAILURES, instance_id, _failures_json(failures))


async def record_writer_facts(
    conn: AnyConnection, instance_id: str, facts: Mapping[str, WriterFacts]
) -> None:
    """Replace the instance's writer facts (account -> writer -> fact -> value); the same
    facts again write nothing."""
    await conn.execute(sql.RECORD_WRITER_FACTS, instance_id, json.dumps(facts))


def _facts_of(text: str) -> dict[str, WriterFacts]:
    return {
        account: {str(w): {str(k): str(v) for k, v in f.items()} for w, f in writers.items()}
        for account, writers in json.loads(text).items()
    }


async def fleet(conn: AnyConnection, ttl: float, limit: float | None = None) -> list[InstanceInfo]:
    """Every announced instance, oldest first; ``live`` judged against ``ttl`` seconds.

    ``limit``: seconds the query may take (None: no limit).
    """
    rows: Sequence[asyncpg.Record] = await conn.fetch(sql.FLEET, float(ttl), timeout=limit)
    return [
        InstanceInfo(
            instance_id=r["instance_id"],
            host=r["host"],
            pid=int(r["pid"]),
            accounts=tuple(r["accounts"]),
            held=tuple(r["held"]),
            started_at=r["started_at"],
            heartbeat_at=r["heartbeat_at"],
            heartbeat_age=float(r["heartbeat_age"]),
            live=bool(r["live"]),
            commit_failures=_failures_of(r["commit_failures"]),
            writer_facts=_facts_of(r["writer_facts"]),
        )
        for r in rows
    ]
