"""Retention of the outbox: sent rows older than ``store.sent_retention_days`` are deleted.

Where it sits: every :class:`~sscl_daemon.daemon.accounts.AccountRunner` runs
:func:`prune_loop` for its account while it holds the account's lease (the deletes carry
the lease as ``fence``, so only the holder prunes, and a deposed one stops). The first run
comes a minute after start (or one ``store.prune_interval`` if that is shorter), then
every ``prune_interval`` seconds (an hour by default); each run deletes in batches of
:data:`~sscl_daemon.store.outbox.PRUNE_BATCH` rows with a pause between them
(:meth:`Store.prune_sent <sscl_daemon.store.Store.prune_sent>`), and counts what it
deleted in ``sscl_outbox_pruned_total``. Pending, in-flight and dead rows are never
deleted; ``0`` days keeps everything.

Why deleting is safe: a sent row is the dedupe record of a logged call (the unique
``(account, call_key, writer)`` key keeps a call delivered again from being logged twice).
A key is only needed while RingCentral can still deliver or report the call again: the
live stream redelivers within minutes, the daemon reads the call log again only for gaps,
suspect sessions (a day back at most) and since its checkpoint after a restart, and the
store never prunes within a day of the account's checkpoint, so even after an outage
longer than the retention the start-up read finds its keys. All of that is far shorter
than the retention (at least :data:`~sscl_daemon.config.MIN_SENT_RETENTION_DAYS` days,
30 by default). ``sscl-daemon backfill`` refuses periods older than the retention unless
told otherwise, since those calls' rows may be gone. And most writers dedupe by key on the
CRM's side too (HubSpot's unique key property, Salesforce's external id, the webhook's
``webhook-id``/``idempotency-key`` for receivers), so a key read again after all makes no
second record there; Pipedrive (its look-up reaches recent logs only) and jsonl rely on the
outbox alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sscl_daemon import metrics
from sscl_daemon.config import StoreSettings
from sscl_daemon.logging import get_logger
from sscl_daemon.store import Lease, Store

log = get_logger(__name__)

# The first run waits this long after start (startup work goes first), at most one interval.
FIRST_RUN_DELAY = 60.0


async def prune_once(store: Store, lease: Lease, settings: StoreSettings) -> int:
    """One retention run for ``lease``'s account; returns the rows deleted."""
    days = settings.sent_retention_days
    if days <= 0:
        return 0
    pruned = await store.prune_sent(lease.account, days, fence=lease)
    if pruned.rows:
        metrics.OUTBOX_PRUNED.inc(pruned.rows)
        log.info(
            "store.retention.pruned",
            account=lease.account,
            rows=pruned.rows,
            batches=pruned.batches,
            retention_days=days,
        )
    return pruned.rows


async def prune_loop(store: Store, lease: Lease, settings: Callable[[], StoreSettings]) -> None:
    """Run :func:`prune_once` forever; ``settings`` is read each round (reloads apply)."""
    await asyncio.sleep(min(FIRST_RUN_DELAY, settings().prune_interval))
    while True:
        await prune_once(store, lease, settings())
        await asyncio.sleep(settings().prune_interval)
