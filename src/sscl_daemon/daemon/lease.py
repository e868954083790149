"""The lease loop of one account: wait for the lease, run the account while held, let go.

Where it sits: the daemon (:mod:`.app`) runs one :class:`LeaseLoop` per configured
account. The loop asks the store for the account's lease
(:meth:`Store.acquire_lease`, never blocking) every ``poll`` seconds; once it has
it, it starts the account's runner (:mod:`.accounts`) and renews the lease every
third of its TTL. It stops the runner at once, without another write, when a
renewal says the lease is lost, when the runner saw a fenced write refused, or
when no renewal succeeded for a whole TTL; then it goes back to waiting. On a
daemon stop it shuts the runner down gracefully and releases the lease, so a
standby takes over on its next poll.

Takeover time after the holder dies: the store drops a dead holder's advisory
lock with its connection, so a standby gets the lease on its next poll (at most
``ACQUIRE_POLL`` after the death is visible to PostgreSQL), plus the time to log
in, restore and subscribe.

A deposed instance and the CRM: every store write is fenced, and
:meth:`may_write` (asked by the dispatcher right before each CRM batch) turns
false as soon as the loss is known. The remaining window is the time until the
loss is known (at most one renewal interval, ``ttl / 3``, after a takeover that
followed a cut connection) plus requests already on the wire; the new holder
sends those rows again as uncertain, so the writer looks the record up first.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from typing import Protocol

from sscl_daemon.daemon.supervise import FatalError
from sscl_daemon.logging import get_logger
from sscl_daemon.store import Lease, Store, StoreError

log = get_logger(__name__)

# Defaults of daemon.lease_ttl (seconds a lease lasts without renewal) and
# daemon.lease_poll (how often a standby asks for an account nobody holds).
LEASE_TTL = 6.0
ACQUIRE_POLL = 1.0


class Runner(Protocol):
    """What the loop needs from an account's runtime."""

    lost: asyncio.Event

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def abort(self) -> None: ...


# Builds the account's runner for a lease; the callable says whether it may still write.
MakeRunner = Callable[[Lease, Callable[[], bool]], Runner]


class Ended(enum.Enum):
    STOPPED = "stopped"
    LOST = "lost"


class LeaseLoop:
    """Acquire, hold and give back one account's lease; :meth:`run` until :meth:`stop`."""

    def __init__(
        self,
        store: Store,
        account: str,
        holder: str,
        make_runner: MakeRunner,
        *,
        on_change: Callable[[], None],
        ttl: float = LEASE_TTL,
        poll: float = ACQUIRE_POLL,
    ) -> None:
        self.account = account
        self.holder = holder
        self._store = store
        self._make_runner = make_runner
        self._on_change = on_change
        self._ttl = ttl
        self._poll = poll
        self.runner: Runner | None = None
        # Set once the first attempt ended: the account is held and started, or is not free.
        self.settled = asyncio.Event()
        self._stopping = asyncio.Event()
        self._valid_until = 0.0

    @property
    def held(self) -> bool:
        return self.runner is not None

    def may_write(self) -> bool:
        """True while the lease is held and was renewed less than a TTL ago."""
        runner = self.runner
        return (
            runner is not None and not runner.lost.is_set() and time.monotonic() < self._valid_until
        )

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            lease = await self._acquire()
            if lease is None:
                self._settle()
                await self._wait(self._poll, None)
                continue
            if await self._serve(lease) is Ended.STOPPED:
                return

    async def _acquire(self) -> Lease | None:
        started = time.monotonic()
        try:
            lease = await self._store.acquire_lease(self.account, self.holder, self._ttl)
        except StoreError as exc:
            log.warning("cannot ask for the account's lease", account=self.account, error=str(exc))
            return None
        if lease is not None:
            self._valid_until = started + self._ttl
        return lease

    async def _serve(self, lease: Lease) -> Ended:
        log.info("account lease acquired", account=self.account, lease_number=lease.token)
        runner = self._make_runner(lease, self.may_write)
        self.runner = runner
        try:
            await runner.start()
        except FatalError:
            await runner.abort()
            self.runner = None
            await self._release(lease)
            raise
        except StoreError as exc:
            log.error("cannot start the account", account=self.account, error=str(exc))
            await self._lost(runner, lease)
            await self._wait(self._poll, None)
            return Ended.LOST
        self._settle()
        self._on_change()
        if await self._hold(lease, runner) is Ended.STOPPED:
            await runner.shutdown()
            self.runner = None
            await self._release(lease)
            self._on_change()
            return Ended.STOPPED
        log.warning("account lease lost; stopped processing it", account=self.account)
        await self._lost(runner, lease)
        return Ended.LOST

    async def _hold(self, lease: Lease, runner: Runner) -> Ended:
        interval = self._ttl / 3
        while True:
            await self._wait(interval, runner.lost)
            if self._stopping.is_set():
                return Ended.STOPPED
            if runner.lost.is_set():
                return Ended.LOST
            started = time.monotonic()
            try:
                renewed = await self._store.renew_lease(lease)
            except StoreError as exc:
                log.warning("lease renewal failed", account=self.account, error=str(exc))
                renewed = False
            if not renewed:
                return Ended.LOST
            self._valid_until = started + self._ttl

    async def _lost(self, runner: Runner, lease: Lease) -> None:
        runner.lost.set()
        await runner.abort()
        self.runner = None
        self._on_change()
        await self._release(lease)

    async def _release(self, lease: Lease) -> None:
        try:
            await self._store.release_lease(lease)
        except StoreError as exc:
            log.warning("cannot release the account's lease", account=self.account, error=str(exc))

    def _settle(self) -> None:
        if not self.settled.is_set():
            self.settled.set()
            self._on_change()

    async def _wait(self, seconds: float, event: asyncio.Event | None) -> None:
        waits = [asyncio.ensure_future(self._stopping.wait())]
        if event is not None:
            waits.append(asyncio.ensure_future(event.wait()))
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
