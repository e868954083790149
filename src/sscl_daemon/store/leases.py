"""Account leases: which daemon instance may process an account (active/standby, fleets).

Where it sits: the daemon asks the store for an account's lease before it opens the
account's WebSocket subscription and commits anything; a standby instance keeps
asking (``Store.acquire_lease``, non-blocking) until it gets it. The holder renews
the lease every third of its TTL and stops processing the account as soon as a
renewal says the lease is lost. The store's own writes take the lease as a
``fence`` and refuse (:class:`LeaseLostError`) once another instance took over.

Design: a session-level advisory lock for liveness, combined with the ``leases`` row
for the fencing token.

* The advisory lock (key ``hashtextextended('sscl-lease:' || account, 0)``) is taken on
  one dedicated connection per :class:`LeaseKeeper` (one per store, shared by every
  account the instance holds). PostgreSQL drops the lock the moment that session
  ends, so a holder killed with SIGKILL (the kernel closes its socket) or whose
  connection is terminated is replaced on the standby's next attempt, not after a TTL.
* The row carries the holder's name, an expiry (renewed by the heartbeat) and the
  ``fencing_token``, which grows by one on every acquisition and is never reset (a
  release only expires the row). ``updated_at`` is when the current holder took the
  lease (renewals move only ``expires_at``).
* Fair sharing (:mod:`.instances`): the same connection holds the instance's own lock
  and writes its heartbeat, so an instance counts as live exactly while its leases can
  be; :meth:`LeaseKeeper.acquire` may be given an ``admit`` check, asked with the fleet
  once a free account's lock is taken (the lock is let go again when it says no).
* Fenced writes read the row ``FOR SHARE`` inside their own transaction and compare the
  token; a takeover updates the row, so it waits for a fenced write in progress to
  commit, and every fenced write after it sees the new token. A write is thus
  refused exactly when a newer holder exists.

Failure modes and how they end:

* Holder SIGKILLed, or its lease connection terminated (``pg_terminate_backend``, a
  server restart): the lock goes with the session; the next attempt of a standby wins
  (takeover time = the standby's polling interval). The old holder's next renewal
  fails (its connection is gone) and its fenced writes are refused.
* Network cut without a FIN/RST (cable, partition): the server notices a dead client
  only through TCP keepalives, so the lease connection asks for keepalives after 2 s
  idle, every 1 s, 3 probes (about 5 s). As a backstop, a contender that finds the row
  expired while the lock is still held terminates the backend holding the lock (this
  needs the same database role, a superuser or ``pg_signal_backend``; otherwise the
  contender waits for the keepalives). On the holder's side a renewal that gets no
  answer within a third of the TTL is undecided (:class:`StoreError`); the daemon
  stops once no renewal succeeded for a TTL (:mod:`sscl_daemon.daemon.lease`), so a
  partitioned holder stops before its row expires.
* A slow answer (a loaded machine) is not a dead connection: a timed-out statement is
  cancelled and the connection kept while it answered within the TTL (ending it would
  free every lock of the instance, and contenders would take leases still valid).
* Holder frozen (SIGSTOP, swapped out) past its TTL: its row expires, a contender
  terminates its lock session and takes over with a higher token; when the holder
  wakes up its renewal fails and its fenced writes are refused.
* The lease connection dies (a store blip, a restarted postmaster): its leases are
  orphaned; the next renewal takes the lock again on a new connection and renews the
  row if its token is still ours. A newer token is lost (False); no connection, or the
  lock held by another session while the token is ours, is undecided (StoreError),
  retried by the daemon until its TTL runs out. Fenced writes with the old token pass
  meanwhile, which is safe because no newer holder exists.
* Through a pooler in transaction mode (PgBouncer) session-level advisory locks do not
  work: point the store at PostgreSQL directly (or a session-mode pool).
* A CRM request already on the wire when the lease is lost cannot be recalled: the
  deposed instance's ``mark_sent`` is refused, its claim lapses, and the new holder
  sends the call again as "uncertain", which makes the writer look for the record
  first (the outbox's normal at-least-once path).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from sscl_daemon.store import instances, sql
from sscl_daemon.store.errors import DATABASE_ERRORS, StoreError
from sscl_daemon.store.instances import Announcement, InstanceInfo

if TYPE_CHECKING:
    from sscl_daemon.store.access import AnyConnection

# The server notices a vanished lease holder in about idle + interval * count seconds.
_KEEPALIVE_SETTINGS = {
    "application_name": "sscl-daemon lease",
    "tcp_keepalives_idle": "2",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
}
_MIN_TTL = 1.0
# Leaving the fleet happens on a stop, when no renewal competes for the time.
_LEAVE_TIMEOUT = 5.0


# Asked with the fleet (every announced instance) once a free account's lock is ours:
# True takes the lease, False lets the account go again (fair sharing, daemon/balance.py).
Admit = Callable[[Sequence[InstanceInfo]], bool]


class LeaseLostError(StoreError):
    """A fenced write was refused: another instance holds the account's lease now.

    Stop processing the account (do not retry the write); try to acquire the lease
    again later. A subclass of :class:`StoreError` so that generic handlers at least
    never treat it as success.
    """


@dataclass(frozen=True)
class Lease:
    """The right to process ``account``, proven by ``token`` (the fencing token)."""

    account: str
    holder: str
    token: int
    ttl: float
    acquired_at: datetime
    # As granted; renewals move the expiry in the database, not in this value.
    expires_at: datetime


@dataclass(frozen=True)
class LeaseInfo:
    """An account's lease as ``sscl-daemon status`` shows it."""

    account: str
    holder: str
    acquired_at: datetime
    expires_at: datetime
    token: int
    # The holder's heartbeat is recent enough (expires_at is in the future).
    current: bool
    # The holder's lease connection is alive (its advisory lock is held).
    connected: bool

    @property
    def held(self) -> bool:
        """Someone holds the account now (a released lease is neither current nor connected)."""
        return self.current and self.connected


async def check_fence(conn: AnyConnection, fence: Lease, account: str | None = None) -> None:
    """Inside a transaction: raise :class:`LeaseLostError` unless ``fence`` is still current.

    Locks the lease row against a takeover until the transaction ends, so the
    writes that follow in the same transaction happen before any new holder's.
    """
    if account is not None and account != fence.account:
        raise ValueError(f"the fence is the lease of account {fence.account!r}, not of {account!r}")
    current = await conn.fetchval(sql.CURRENT_FENCING_TOKEN, fence.account)
    if current != fence.token:
        newer = "no lease row" if current is None else f"token {current}"
        raise LeaseLostError(
            f"lease of account {fence.account!r} lost by {fence.holder!r}: its fencing token "
            f"{fence.token} is no longer current ({newer}); another instance took over"
        )


def _check_ttl(ttl: float) -> float:
    if ttl < _MIN_TTL:
        raise ValueError(f"lease ttl must be at least {_MIN_TTL} s (got {ttl})")
    return float(ttl)


class LeaseKeeper:
    """The leases of one store: one dedicated connection holding every advisory lock.

    Calls are serialised (one connection); each answers within a third of the lease
    TTL or fails undecided. The connection is ended only when it is broken or has not
    answered for a TTL; its leases are then orphaned until :meth:`renew` takes them back.
    """

    def __init__(self, dsn: str, password: str | None, connect_timeout: float) -> None:
        self._dsn = dsn
        self._password = password
        self._connect_timeout = connect_timeout
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        # account -> the lease held on the current connection
        self._held: dict[str, Lease] = {}
        # account -> a lease whose connection died; renew() takes it back while its token
        # is current (a store blip is not a lost lease).
        self._orphaned: dict[str, Lease] = {}
        # When the connection last answered (monotonic): a timeout on a connection that
        # answered within the TTL is a slow server, not a dead one.
        self._answered = 0.0
        self._lock = asyncio.Lock()
        self._closed = False
        # The instance announced by :meth:`heartbeat`, and whether this session holds its
        # instance lock (taken again on every new connection).
        self._instance: Announcement | None = None
        self._instance_locked = False

    async def _connection(self) -> asyncpg.Connection[asyncpg.Record]:
        if self._conn is None or self._conn.is_closed():
            self._drop_connection()
            try:
                self._conn = await asyncpg.connect(
                    self._dsn,
                    password=self._password,
                    timeout=self._connect_timeout,
                    server_settings=_KEEPALIVE_SETTINGS,
                )
            except DATABASE_ERRORS as exc:
                raise StoreError(f"store: opening the lease connection failed: {exc}") from None
            self._answered = time.monotonic()
        conn = self._conn
        if self._instance is not None and not self._instance_locked:
            # Not granted while a former session with the same id lingers: the next call
            # tries again (until then that session keeps the instance counted as live).
            try:
                self._instance_locked = bool(
                    await conn.fetchval(
                        sql.LOCK_INSTANCE,
                        self._instance.instance_id,
                        timeout=self._connect_timeout,
                    )
                )
            except DATABASE_ERRORS as exc:
                self._drop_connection()
                raise StoreError(f"store: taking the instance lock failed: {exc}") from None
        return conn

    def _drop_connection(self) -> None:
        """Forget the connection; its leases' locks die with the session, so they are orphaned."""
        if self._conn is not None:
            self._conn.terminate()
        self._conn = None
        self._orphaned.update(self._held)
        self._held.clear()
        self._instance_locked = False

    def _failed(self, exc: BaseException, ttl: float) -> None:
        """After a statement on the lease connection failed: end it unless it is only slow.

        A timed-out statement is cancelled by asyncpg and the connection stays usable;
        kept while it answered within the last ``ttl`` (past that it counts as dead).
        """
        conn = self._conn
        slow = (
            isinstance(exc, TimeoutError)
            and conn is not None
            and not conn.is_closed()
            and time.monotonic() - self._answered < ttl
        )
        if not slow:
            self._drop_connection()

    async def acquire(
        self, account: str, holder: str, ttl: float, admit: Admit | None = None
    ) -> Lease | None:
        """Take the lease of ``account`` if nobody holds it (never waits for a holder).

        Returns None while another live instance holds it, or while this keeper
        already does (renew that lease instead). With ``admit``, a free account is
        taken only if ``admit`` says yes to the fleet as it is at that moment (read on
        the lease connection while the account's lock is held, and serialised with
        this keeper's other acquisitions, so no two of them decide on the same view).
        """
        seconds = _check_ttl(ttl)
        if self._closed:
            raise StoreError("store: the store is closed; no lease can be acquired")
        async with self._lock:
            if account in self._held and self._conn is not None and not self._conn.is_closed():
                return None
            conn = await self._connection()
            timeout = seconds / 3
            try:
                got = await conn.fetchval(sql.TRY_LEASE_LOCK, account, timeout=timeout)
                if not got:
                    got = await self._take_from_stale_holder(conn, account, timeout)
                if not got:
                    return None
                try:
                    if admit is not None and not admit(
                        await instances.fleet(conn, seconds, limit=timeout)
                    ):
                        await conn.fetchval(sql.UNLOCK_LEASE, account, timeout=timeout)
                        return None
                    row = await conn.fetchrow(
                        sql.TAKE_LEASE, account, holder, seconds, timeout=timeout
                    )
                except BaseException:
                    with contextlib.suppress(*DATABASE_ERRORS):
                        await conn.fetchval(sql.UNLOCK_LEASE, account, timeout=timeout)
                    raise
            except DATABASE_ERRORS as exc:
                self._failed(exc, seconds)
                if self._conn is not None:
                    # Kept (slow): a lock granted as the statement was cancelled is let go.
                    with contextlib.suppress(*DATABASE_ERRORS):
                        await self._conn.fetchval(sql.UNLOCK_LEASE, account, timeout=timeout)
                raise StoreError(
                    f"store: acquiring the lease of {account!r} failed: {exc}"
                ) from None
            self._answered = time.monotonic()
            assert row is not None
            lease = Lease(
                account=account,
                holder=holder,
                token=int(row["fencing_token"]),
                ttl=seconds,
                acquired_at=row["acquired_at"],
                expires_at=row["expires_at"],
            )
            self._held[account] = lease
            return lease

    async def _take_from_stale_holder(
        self, conn: asyncpg.Connection[asyncpg.Record], account: str, wait: float
    ) -> bool:
        """End the session of a holder whose lease expired (frozen or cut off), then retry."""
        try:
            ended = await conn.fetch(
                sql.TERMINATE_STALE, account, timeout=wait + sql.TERMINATE_WAIT_MS / 1000
            )
        except asyncpg.InsufficientPrivilegeError:
            return False  # Not allowed to end it: the server's keepalives will.
        if not any(row[0] for row in ended):
            return False
        return bool(await conn.fetchval(sql.TRY_LEASE_LOCK, account, timeout=wait))

    async def renew(self, lease: Lease) -> bool:
        """Heartbeat: move the expiry one TTL ahead. False = lost (stop processing the account).

        Raises :class:`StoreError` when it cannot tell (no answer, no connection, the lock
        held by another session while the token is ours): retry until the TTL runs out.
        """
        async with self._lock:
            if self._orphaned.get(lease.account) == lease:
                return await self._take_back(lease)
            if self._held.get(lease.account) != lease:
                return False
            conn = self._conn
            if conn is None or conn.is_closed():
                self._drop_connection()
                return await self._take_back(lease)
            try:
                row = await conn.fetchrow(
                    sql.RENEW_LEASE, lease.account, lease.token, lease.ttl, timeout=lease.ttl / 3
                )
            except DATABASE_ERRORS as exc:
                self._failed(exc, lease.ttl)
                if self._orphaned.get(lease.account) == lease:
                    # The connection is gone: a new one tells at once whether we still hold it.
                    return await self._take_back(lease)
                raise StoreError(
                    f"store: renewing the lease of {lease.account!r} failed: {exc}"
                ) from None
            self._answered = time.monotonic()
            if row is None:
                await self._unlock(conn, lease)
                return False
            return True

    async def _take_back(self, lease: Lease) -> bool:
        """Lock and renew an orphaned lease on a new connection, if its token is still current."""
        conn = await self._connection()
        account, wait = lease.account, lease.ttl / 3
        try:
            if not await conn.fetchval(sql.TRY_LEASE_LOCK, account, timeout=wait):
                if await conn.fetchval(sql.CURRENT_FENCING_TOKEN, account, timeout=wait) != (
                    lease.token
                ):
                    del self._orphaned[account]
                    return False
                raise StoreError(
                    f"store: the lock of {account!r} is held by another session (our former one "
                    "or a contender) while the lease is still ours; trying again"
                )
            row = await conn.fetchrow(
                sql.RENEW_LEASE, account, lease.token, lease.ttl, timeout=wait
            )
        except DATABASE_ERRORS as exc:
            self._drop_connection()
            raise StoreError(f"store: taking back the lease of {account!r} failed: {exc}") from None
        self._answered = time.monotonic()
        del self._orphaned[account]
        self._held[account] = lease
        if row is None:  # a newer holder came and went: the lease is not ours any more
            await self._unlock(conn, lease)
            return False
        return True

    async def release(self, lease: Lease) -> None:
        """Give the lease up now (a standby may take it at once). Lost leases are ignored."""
        async with self._lock:
            if self._orphaned.get(lease.account) == lease:
                del self._orphaned[lease.account]  # its lock went with its connection
                return
            if self._held.get(lease.account) != lease:
                return
            conn = self._conn
            if conn is None or conn.is_closed():
                self._drop_connection()
                return
            del self._held[lease.account]
            try:
                await conn.fetchval(
                    sql.GIVE_UP_LEASE, lease.account, lease.token, timeout=lease.ttl / 3
                )
            except DATABASE_ERRORS:
                self._drop_connection()

    async def _unlock(self, conn: asyncpg.Connection[asyncpg.Record], lease: Lease) -> None:
        del self._held[lease.account]
        try:
            await conn.fetchval(sql.UNLOCK_LEASE, lease.account, timeout=lease.ttl / 3)
        except DATABASE_ERRORS:
            self._drop_connection()

    def held(self) -> list[Lease]:
        """The leases this keeper believes it holds, orphaned ones too (renew to be sure)."""
        return [*self._held.values(), *self._orphaned.values()]

    async def heartbeat(self, instance: Announcement, ttl: float) -> list[InstanceInfo]:
        """Announce ``instance`` (registering it on the first call), return the fleet.

        Call it every lease poll: the instance counts as live while its heartbeat is
        younger than ``ttl`` and this keeper's connection holds its instance lock.
        """
        seconds = _check_ttl(ttl)
        if self._closed:
            raise StoreError("store: the store is closed; the instance cannot be announced")
        async with self._lock:
            fresh = self._instance != instance
            if fresh and self._instance_locked and self._instance is not None:
                await self._unlock_instance(self._instance)
            self._instance = instance
            conn = await self._connection()
            try:
                await instances.heartbeat(conn, instance, fresh=fresh, limit=seconds / 3)
                fleet = await instances.fleet(conn, seconds, limit=seconds / 3)
            except DATABASE_ERRORS as exc:
                self._failed(exc, seconds)
                raise StoreError(f"store: the instance heartbeat failed: {exc}") from None
            self._answered = time.monotonic()
            return fleet

    async def leave(self) -> None:
        """Delete this instance's row and instance lock: the others stop counting it now.

        Without a connection the row is left to age out (it is no longer live anyway).
        """
        async with self._lock:
            instance, self._instance = self._instance, None
            conn = self._conn
            if instance is None or conn is None or conn.is_closed():
                return
            try:
                await conn.execute(sql.LEAVE_FLEET, instance.instance_id, timeout=_LEAVE_TIMEOUT)
            except DATABASE_ERRORS:
                self._drop_connection()
                return
            await self._unlock_instance(instance)

    async def _unlock_instance(self, instance: Announcement) -> None:
        assert self._conn is not None
        self._instance_locked = False
        try:
            await self._conn.fetchval(
                sql.UNLOCK_INSTANCE, instance.instance_id, timeout=_LEAVE_TIMEOUT
            )
        except DATABASE_ERRORS:
            self._drop_connection()

    async def close(self) -> None:
        """Leave the fleet, release every lease and close the lease connection."""
        if self._closed:
            return
        await self.leave()
        for lease in self.held():
            await self.release(lease)
        self._closed = True
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                with contextlib.suppress(*DATABASE_ERRORS):
                    await asyncio.wait_for(self._conn.close(), 5.0)
            self._drop_connection()
            self._orphaned.clear()


async def lease_holders(conn: AnyConnection, account: str | None = None) -> list[LeaseInfo]:
    rows = await conn.fetch(sql.LEASE_HOLDERS, account)
    return [
        LeaseInfo(
            account=r["account"],
            holder=r["holder"],
            acquired_at=r["acquired_at"],
            expires_at=r["expires_at"],
            token=int(r["fencing_token"]),
            current=bool(r["current"]),
            connected=bool(r["connected"]),
        )
        for r in rows
    ]
