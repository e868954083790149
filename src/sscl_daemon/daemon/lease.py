"""The lease loop of one account: wait for the lease, run the account while held, let go.

Where it sits: the daemon (:mod:`.app`) runs one :class:`LeaseLoop` per configured
account. The loop asks the store for the account's lease
(:meth:`Store.acquire_lease`, never blocking) every ``poll`` seconds; once it has
it, it starts the account's runner (:mod:`.accounts`) and renews the lease every
third of its TTL. It stops the runner at once, without another write, when a
renewal says the lease is lost, when the runner saw a fenced write refused, or
when no renewal succeeded for a whole TTL; then it goes back to waiting. A renewal
that fails without saying lost (a store blip: no answer, a connection to open
again) keeps the account and its stream, and is tried again every poll until the
TTL runs out: the lease is still valid meanwhile, and the store's fencing token
refuses the writes of a holder that was replaced. CRM requests wait meanwhile
(:meth:`may_write` is false until a renewal answers): a holder cut off from the
store while a contender is not loses its lock once the server's keepalives notice
(about 5 s), possibly well before its TTL ends. On a
daemon stop it shuts the runner down gracefully and releases the lease, so a
standby takes over on its next poll. A handover asked by fair sharing
(:meth:`LeaseLoop.hand_over`, from :mod:`.balance`) does the same for one
account and then goes back to waiting; the store's ``admit`` check (also from
:mod:`.balance`) keeps a loop from taking a free account its instance should
leave to another.

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
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from sscl_daemon.daemon.supervise import FatalError
from sscl_daemon.logging import get_logger
from sscl_daemon.store import Admit, Lease, Store, StoreError

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
    HANDED_OVER = "handed over"


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
        admit: Admit | None = None,
    ) -> None:
        self.account = account
        self.holder = holder
        self._store = store
        self._make_runner = make_runner
        self._on_change = on_change
        self._ttl = ttl
        self._poll = poll
        self._admit = admit
        self.runner: Runner | None = None
        # Set once the first attempt ended: the account is held and started, or is not free.
        self.settled = asyncio.Event()
        self._stopping = asyncio.Event()
        self._handover = asyncio.Event()
        # Started and renewing (not starting, not stopping).
        self._serving = False
        self._valid_until = 0.0
        # Renewals that failed without an answer (store blips; for status lines and tests).
        self.renewal_failures = 0
        # The last renewal attempt failed undecided: CRM requests wait for the next one.
        self._undecided = False

    @property
    def held(self) -> bool:
        return self.runner is not None

    @property
    def serving(self) -> bool:
        return self._serving

    @property
    def handing_over(self) -> bool:
        return self._handover.is_set()

    def may_write(self) -> bool:
        """True while the lease is held, was renewed less than a TTL ago and the last renewal
        attempt answered (not while one is undecided: the lock may be gone already)."""
        runner = self.runner
        return (
            runner is not None
            and not runner.lost.is_set()
            and not self._undecided
            and time.monotonic() < self._valid_until
        )

    def stop(self) -> None:
        self._stopping.set()

    def hand_over(self) -> None:
        """Give the account up gracefully (it stays free for another instance to take)."""
        if self._serving:
            self._handover.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            lease = await self._acquire()
            if lease is None:
                self._settle()
                await self._wait(self._poll)
                continue
            if await self._serve(lease) is Ended.STOPPED:
                return

    async def _acquire(self) -> Lease | None:
        started = time.monotonic()
        try:
            lease = await self._store.acquire_lease(
                self.account, self.holder, self._ttl, self._admit
            )
        except StoreError as exc:
            log.warning("daemon.lease.request_failed", account=self.account, error=str(exc))
            return None
        if lease is not None:
            self._valid_until = started + self._ttl
            self._undecided = False
        return lease

    async def _serve(self, lease: Lease) -> Ended:
        log.info("daemon.lease.acquired", account=self.account, lease_number=lease.token)
        runner = self._make_runner(lease, self.may_write)
        self.runner = runner
        try:
            # The runner's dispatchers write from the first moment of the start: renewed
            # meanwhile, the lease stays current however long the start takes (it lapsed
            # after a TTL, and the holder's own rows were held back as "not current").
            async with self._renewing(lease, runner):
                await runner.start()
        except FatalError:
            await runner.abort()
            self.runner = None
            await self._release(lease)
            raise
        except StoreError as exc:
            log.error("daemon.account.start_failed", account=self.account, error=str(exc))
            await self._lost(runner, lease)
            await self._wait(self._poll)
            return Ended.LOST
        self._settle()
        self._on_change()
        self._serving = True
        try:
            ended = await self._hold(lease, runner)
        finally:
            self._serving = False
        if ended is Ended.LOST:
            log.warning(
                "daemon.lease.lost", account=self.account, hint="stopped processing the account"
            )
            await self._lost(runner, lease)
            return Ended.LOST
        # Stopped or handed over: the same graceful end; the next holder goes on from it.
        await self._shut_down(lease, runner)
        self.runner = None
        await self._release(lease)
        self._handover.clear()
        self._on_change()
        if ended is Ended.HANDED_OVER:
            log.info("daemon.account.handed_over", account=self.account, hint="its lease is free")
            await self._wait(self._poll)
        return ended

    async def _hold(self, lease: Lease, runner: Runner) -> Ended:
        interval = self._ttl / 3
        while True:
            await self._wait(interval, runner.lost, self._handover)
            if self._stopping.is_set():
                return Ended.STOPPED
            if runner.lost.is_set():
                return Ended.LOST
            if self._handover.is_set():
                return Ended.HANDED_OVER
            renewed = await self._renew(lease)
            if renewed is False:
                return Ended.LOST
            interval = self._ttl / 3 if renewed else self._retry_in()

    async def _renew(self, lease: Lease) -> bool | None:
        """True renewed, False lost; None undecided while the lease is still valid (retry)."""
        started = time.monotonic()
        try:
            renewed = await self._store.renew_lease(lease)
        except StoreError as exc:
            self.renewal_failures += 1
            self._undecided = True
            expired = time.monotonic() >= self._valid_until
            log.warning(
                "daemon.lease.renewal_failed",
                account=self.account,
                error=str(exc),
                hint="its TTL ran out: giving it up" if expired else "still valid: trying again",
            )
            return False if expired else None
        self._undecided = False
        if renewed:
            self._valid_until = started + self._ttl
        return renewed

    def _retry_in(self) -> float:
        """The wait before another renewal attempt: a poll, and never past the lease's TTL."""
        return max(0.0, min(self._poll, self._valid_until - time.monotonic()))

    async def _shut_down(self, lease: Lease, runner: Runner) -> None:
        """The runner's graceful stop, with the lease renewed meanwhile.

        Draining may take longer than a TTL (``daemon.shutdown_timeout``); an expired
        lease would let a contender end the lease connection, and with it every other
        account this instance holds.
        """
        async with self._renewing(lease, runner):
            await runner.shutdown()

    @contextlib.asynccontextmanager
    async def _renewing(self, lease: Lease, runner: Runner) -> AsyncIterator[None]:
        """Renew the lease every third of its TTL while the body runs."""
        done = asyncio.Event()

        async def keep_renewing() -> None:
            interval = self._ttl / 3
            while True:
                await self._wait_for(interval, done)
                if done.is_set():
                    return
                renewed = await self._renew(lease)
                if renewed is False:
                    runner.lost.set()  # Its last writes are refused anyway: stop waiting.
                    return
                interval = self._ttl / 3 if renewed else self._retry_in()

        renewing = asyncio.create_task(keep_renewing())
        try:
            yield
        finally:
            done.set()
            await renewing

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
            log.warning("daemon.lease.release_failed", account=self.account, error=str(exc))

    def _settle(self) -> None:
        if not self.settled.is_set():
            self.settled.set()
            self._on_change()

    async def _wait(self, seconds: float, *events: asyncio.Event) -> None:
        await self._wait_for(seconds, self._stopping, *events)

    @staticmethod
    async def _wait_for(seconds: float, *events: asyncio.Event) -> None:
        """Until one of ``events`` is set or ``seconds`` passed."""
        waits = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
