"""Fair sharing of the accounts among the daemon instances that share one store.

Where it sits: the daemon (:mod:`.app`) runs one :class:`Balancer` next to its
lease loops (:mod:`.lease`). Without it the first instance to start would take
every free account and a later one would only ever stand by.

Mechanism. Every instance announces itself in the ``instances`` table (see
:mod:`sscl_daemon.store.instances`): a heartbeat every lease poll (at least three
per TTL) on its lease connection, which also holds an instance lock. An instance is live while its
heartbeat is younger than ``daemon.lease_ttl`` and that lock is held, so a
killed instance stops counting at once and a frozen one within a TTL. From the
live instances and the leases the balancer reads each instance's count of held
accounts, and the fair share ``ceil(accounts / live instances)``, where the
accounts are those configured on any live instance.

* Taking (:func:`admits`, asked by the store while a free account's lock is
  ours): an instance below its share takes a free account, as before fair
  sharing. One at or above it takes it only when no other live instance that is
  configured for the account is below its share, so an orphaned account is
  never left waiting, and an account handed over goes to the instance that
  needs it. Acquisitions of one instance are serialised on its lease connection,
  so a burst of free accounts does not push it past its share.
* Handing over (:func:`surplus`, :class:`Balancer`): an instance above its share
  gives one account up, the normal way (the runner commits, snapshots and drains
  its writers, then the lease is released; the taker resumes from the
  checkpoint, so nothing is lost or logged twice). Against flapping: only when
  some other live instance configured for the account is below its share, only
  after the surplus was seen on :data:`PERSISTENCE` checks in a row, at most one
  account per ``daemon.lease_ttl`` and never while a handover is in progress. Which
  account goes is deterministic: the lowest stable hash of the account name.

A stopping daemon leaves the fleet (deletes its row) before it releases its
leases, so the others count it out at once and take its accounts on their next
poll. Failover is unchanged: a dead instance's locks go with its session, the
survivors' shares grow and they take its accounts on their next poll.
``daemon.balance = false`` keeps the announcements (``status`` still lists the
instances) but takes every free account and never hands one over.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sscl_daemon.logging import get_logger
from sscl_daemon.store import Admit, Announcement, InstanceInfo, Store, StoreError

log = get_logger(__name__)

# A surplus must be seen on this many balance checks in a row before an account moves
# (it persisted over two polls: not a transient count during a takeover).
PERSISTENCE = 3


class Loop(Protocol):
    """What the balancer needs from an account's lease loop (:class:`.lease.LeaseLoop`)."""

    @property
    def serving(self) -> bool: ...

    @property
    def handing_over(self) -> bool: ...

    def hand_over(self) -> None: ...


@dataclass(frozen=True)
class Shares:
    """The fleet as one instance sees it: live instances, their counts, the fair share."""

    me: str
    share: int
    # Live instance -> the number of accounts it holds (``me`` always included).
    counts: Mapping[str, int]
    # Live instance -> the accounts it is configured for.
    configured: Mapping[str, frozenset[str]]

    @property
    def mine(self) -> int:
        return self.counts[self.me]

    def takers(self, account: str) -> list[str]:
        """Other live instances below their share that could take ``account``."""
        return [
            name
            for name, count in self.counts.items()
            if name != self.me and count < self.share and account in self.configured[name]
        ]


def fair_share(accounts: int, live: int) -> int:
    return math.ceil(accounts / max(live, 1))


def shares(fleet: Sequence[InstanceInfo], me: Announcement) -> Shares:
    """Counts and fair share over the live instances; this instance counts as live."""
    counts: dict[str, int] = {}
    configured: dict[str, frozenset[str]] = {}
    for info in fleet:
        if info.live or info.instance_id == me.instance_id:
            counts[info.instance_id] = len(info.held)
            configured[info.instance_id] = frozenset(info.accounts)
    counts.setdefault(me.instance_id, 0)
    # Its own configuration, even when its row is not written yet.
    configured[me.instance_id] = frozenset(me.accounts)
    accounts = frozenset().union(*configured.values())
    return Shares(me.instance_id, fair_share(len(accounts), len(counts)), counts, configured)


def admits(fleet: Sequence[InstanceInfo], me: Announcement, account: str) -> bool:
    """May ``me`` take the free ``account``? Below its share, or nobody else needs it."""
    view = shares(fleet, me)
    return view.mine < view.share or not view.takers(account)


def release_order(account: str) -> bytes:
    """The stable rank of an account among those an instance could hand over (lowest first)."""
    return hashlib.blake2b(account.encode(), digest_size=8).digest()


def surplus(
    fleet: Sequence[InstanceInfo], me: Announcement, serving: Collection[str]
) -> str | None:
    """The account ``me`` should hand over now, if it holds more than its share.

    Only an account being served (started, renewing) that a live instance below
    its share is configured for; None when no other instance is below its share.
    """
    view = shares(fleet, me)
    if view.mine <= view.share:
        return None
    candidates = [account for account in serving if view.takers(account)]
    if not candidates:
        return None
    return min(candidates, key=lambda account: (release_order(account), account))


class Balancer:
    """Announces the instance, answers :meth:`admit`, hands surplus accounts over."""

    def __init__(
        self,
        store: Store,
        instance: Announcement,
        loops: Mapping[str, Loop],
        *,
        ttl: float,
        poll: float,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instance = instance
        self.enabled = enabled
        self._store = store
        self._loops = loops
        self._ttl = ttl
        # The heartbeat must come well within a TTL, whatever the poll.
        self.interval = min(poll, ttl / 3)
        self._clock = clock
        self._streak = 0
        self._last_handover: float | None = None
        # The fleet at the last successful heartbeat (empty until then).
        self.fleet: list[InstanceInfo] = []
        # Checks done and accounts handed over (for status lines and tests).
        self.checks = 0
        self.handovers = 0

    def admit(self, account: str) -> Admit | None:
        """The admission check the lease loop of ``account`` passes to the store."""
        if not self.enabled:
            return None
        me = self.instance
        return lambda fleet: admits(fleet, me, account)

    async def run(self) -> None:
        """Heartbeat and balance every :attr:`interval` seconds until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.interval)

    async def check(self) -> str | None:
        """One heartbeat and balance decision; returns the account handed over, if any."""
        self.checks += 1
        try:
            self.fleet = await self._store.instance_heartbeat(self.instance, self._ttl)
        except StoreError as exc:
            log.warning("daemon.instance.announce_failed", error=str(exc))
            self._streak = 0
            return None
        if not self.enabled or any(loop.handing_over for loop in self._loops.values()):
            self._streak = 0
            return None
        serving = [name for name, loop in self._loops.items() if loop.serving]
        account = surplus(self.fleet, self.instance, serving)
        if account is None:
            self._streak = 0
            return None
        self._streak += 1
        now = self._clock()
        recent = self._last_handover is not None and now - self._last_handover < self._ttl
        if self._streak < PERSISTENCE or recent:
            return None
        self._streak = 0
        self._last_handover = now
        view = shares(self.fleet, self.instance)
        log.info(
            "daemon.account.handing_over",
            reason="sharing the accounts fairly between the live instances",
            account=account,
            held=view.mine,
            share=view.share,
            live_instances=len(view.counts),
        )
        self._loops[account].hand_over()
        self.handovers += 1
        return account

    async def leave(self) -> None:
        """Stop counting as live (a stop: before the leases are released)."""
        try:
            await self._store.leave_fleet()
        except StoreError as exc:
            log.warning("daemon.instance.withdraw_failed", error=str(exc))
