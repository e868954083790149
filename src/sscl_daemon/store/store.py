"""The store: one façade over one asyncpg pool, and the parts split by what they keep.

:class:`Store` opens (or attaches to) the server, embedded or named by a DSN
(:mod:`.connect`), and migrates it; what it stores lives in one module each: the outbox (:mod:`.outbox`),
checkpoints with the recovery point, snapshots and directory (:mod:`.checkpoints`),
dead letters (:mod:`.deadletters`), rotated credentials (:mod:`.credentials`), account
leases (:mod:`.leases`) and the instances sharing the store (:mod:`.instances`). Every
statement of these modules is named in :mod:`.sql`. The one transaction that spans
parts is here: :meth:`Store.commit_batch` commits completed calls together with the
checkpoint that produced them. The writes that take a ``fence`` refuse to run for a
deposed lease holder. :meth:`Store.listen` keeps the LISTEN connection that wakes the
dispatchers' :class:`WorkNotifier`; the CLI and the admin endpoint read
:meth:`Store.status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import asyncpg

from sscl_daemon.calls.model import CompletedCall, encode_call
from sscl_daemon.config import StoreSettings
from sscl_daemon.store import credentials, sql
from sscl_daemon.store.access import OUTBOX_CHANNEL, from_row, notify_writers
from sscl_daemon.store.checkpoints import Checkpoints
from sscl_daemon.store.connect import (
    EMBEDDED_DATABASE,
    create_pool,
    ensure_database,
    private_state_dir,
    require_database,
)
from sscl_daemon.store.deadletters import DeadLetters, insert_dead_letters
from sscl_daemon.store.embedded import EmbeddedServer
from sscl_daemon.store.errors import DATABASE_ERRORS, StoreError, dsn_target
from sscl_daemon.store.instances import (
    Announcement,
    CommitFailure,
    InstanceInfo,
    WriterFacts,
    fleet,
    record_commit_failures,
    record_writer_facts,
)
from sscl_daemon.store.leases import (
    Admit,
    Lease,
    LeaseInfo,
    LeaseKeeper,
    lease_holders,
)
from sscl_daemon.store.migrate import MigrationReport, current_version, migrate
from sscl_daemon.store.model import AccountStats, Checkpoint, DeadLetter, StoreStatus, WriterStats
from sscl_daemon.store.outbox import Outbox

_CLOSE_TIMEOUT = 10.0


class WorkNotifier:
    """Wakes a dispatcher when rows for its writer are committed (LISTEN/NOTIFY).

    ``wait(seconds)`` returns True when new work was announced since the last
    wake-up, False when the seconds ran out. It is a hint: without a listening
    connection it just waits the seconds out, so the caller must still poll.
    """

    def __init__(
        self,
        writer: str,
        listen: Callable[[], Awaitable[None]],
        forget: Callable[[WorkNotifier], None],
    ) -> None:
        self.writer = writer
        self._listen = listen
        self._forget = forget
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        await self._listen()
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def close(self) -> None:
        self._forget(self)


@contextlib.asynccontextmanager
async def _undone_on_failure(undo: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run ``undo`` when the body fails (cancellation too), then let the failure through."""
    try:
        yield
    except BaseException:
        await undo()
        raise


async def _stop(server: EmbeddedServer | None) -> None:
    """Stop the embedded server this call started, if it started one."""
    if server is not None:
        await server.astop()


class Store(Outbox, Checkpoints, DeadLetters):
    """Open with :meth:`open` (or ``async with await Store.open(...)``)."""

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        dsn: str,
        password: str | None,
        server: EmbeddedServer | None,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._password = password
        self._server = server
        self._notifiers: set[WorkNotifier] = set()
        self._listener: asyncpg.Connection[asyncpg.Record] | None = None
        self._listener_lock = asyncio.Lock()
        self._closed = False
        self._leases = LeaseKeeper(dsn, password, connect_timeout=10.0)
        self.target = dsn_target(dsn).describe()
        # Whose server this is, for the commands' output (set by attach for the embedded one).
        self.origin = ""

    def __repr__(self) -> str:
        return f"Store({self.target})"

    # --- lifecycle ------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        settings: StoreSettings,
        state_dir: Path,
        *,
        apply_migrations: bool = True,
    ) -> Store:
        """Start the embedded server if configured, connect, and migrate the schema."""
        server: EmbeddedServer | None = None
        password = settings.password.reveal() if settings.password else None
        async with _undone_on_failure(lambda: _stop(server)):
            if settings.embedded:
                private_state_dir(state_dir)
                server = EmbeddedServer(state_dir / "postgres")
                await server.astart()
                dsn = server.dsn(EMBEDDED_DATABASE)
                await ensure_database(server.dsn(), EMBEDDED_DATABASE, settings.connect_timeout)
            else:
                dsn = settings.dsn
            pool = await create_pool(dsn, password, settings)
        store = cls(pool, dsn, password, server)
        if apply_migrations:
            async with _undone_on_failure(store.close):
                await store.migrate()
        return store

    @classmethod
    async def attach(
        cls, settings: StoreSettings, state_dir: Path, *, require_schema: bool = True
    ) -> Store:
        """The daemon's existing store, for the commands: never creates a database.

        Embedded: a client of the running daemon's server (through its socket in the
        state directory) when the daemon runs, else the existing server started here and
        stopped again by :meth:`close`; a state directory without a database is an
        error naming it. A DSN: the database must exist. With ``require_schema`` a
        database the daemon never migrated is an error too. Migrations are not applied.
        """
        small = dataclasses.replace(settings, pool_min_size=1, pool_max_size=2)
        password = settings.password.reveal() if settings.password else None
        server: EmbeddedServer | None = None
        origin = ""
        async with _undone_on_failure(lambda: _stop(server)):
            if settings.embedded:
                candidate = EmbeddedServer(state_dir / "postgres", create=False)
                owner = candidate.owner_pid()
                if owner is None:
                    await candidate.astart()
                    server = candidate
                    origin = f"the embedded server in {candidate.root}, started for this command"
                else:
                    origin = f"the running daemon's embedded server in {candidate.root}"
                    origin += f" (pid {owner})" if owner else ""
                dsn = candidate.dsn(EMBEDDED_DATABASE)
                await require_database(candidate, small.connect_timeout)
            else:
                dsn = settings.dsn
            pool = await create_pool(dsn, password, small)
        store = cls(pool, dsn, password, server)
        store.origin = origin
        if require_schema:
            async with _undone_on_failure(store.close):
                version = await store.schema_version()
            if version == 0:
                await store.close()
                raise StoreError(
                    f"{store.target} has no sscl-daemon schema: the daemon has not run on it "
                    "(or run sscl-daemon migrate)",
                    permanent=True,
                )
        return store

    async def migrate(self) -> MigrationReport:
        async with self.connection("migration") as conn:
            return await migrate(conn)

    async def schema_version(self) -> int:
        async with self.connection("reading the schema version") as conn:
            return await current_version(conn)

    async def close(self) -> None:
        """Close the connections and stop the embedded server this store started."""
        if self._closed:
            return
        self._closed = True
        for notifier in list(self._notifiers):
            notifier.notify()
        try:
            with contextlib.suppress(StoreError):
                await self._leases.close()
            if self._listener is not None:
                with contextlib.suppress(*DATABASE_ERRORS):
                    await asyncio.wait_for(self._listener.close(), _CLOSE_TIMEOUT)
                self._listener = None
            try:
                await asyncio.wait_for(self._pool.close(), _CLOSE_TIMEOUT)
            except TimeoutError:
                self._pool.terminate()
        finally:
            if self._server is not None:
                await self._server.astop()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def embedded_server(self) -> EmbeddedServer | None:
        return self._server

    # --- the daemon's commit path -------------------------------------------------

    async def commit_batch(
        self,
        account: str,
        calls: Sequence[CompletedCall],
        writers: Sequence[str],
        checkpoint: Checkpoint | None,
        dead_letters: Sequence[DeadLetter] = (),
        *,
        fence: Lease | None = None,
    ) -> int:
        """In ONE transaction: an outbox row per (call, writer), the checkpoint, dead letters.

        A call already in the outbox for a writer is left as it is (no second
        log). Returns the number of outbox rows inserted. On any failure nothing
        of the batch is stored and the checkpoint is not advanced. With a
        ``fence`` (the account's lease) nothing is stored and
        :class:`~sscl_daemon.store.leases.LeaseLostError` is raised once another
        instance took the account over.
        """
        keys = [call.key for call in calls]
        payloads = [encode_call(call).decode() for call in calls]
        ends = [call.end_time for call in calls]
        writer_names = list(dict.fromkeys(writers))
        inserted = 0
        async with self.transaction(
            f"committing {len(calls)} calls for account {account!r}", fence, account
        ) as conn:
            if keys and writer_names:
                rows = await conn.fetch(
                    sql.INSERT_OUTBOX, account, keys, payloads, ends, writer_names
                )
                inserted = sum(int(r["n"]) for r in rows)
                await notify_writers(conn, {str(r["writer"]) for r in rows})
            if checkpoint is not None:
                await conn.execute(
                    sql.SAVE_CHECKPOINT,
                    account,
                    checkpoint.last_event_time,
                )
            if dead_letters:
                await insert_dead_letters(conn, account, dead_letters)
        return inserted

    # --- rotated credentials (refresh tokens; see .credentials) --------------------

    async def load_credential(self, account: str, name: str) -> str | None:
        """The stored value of ``account``'s credential ``name``, None if there is none."""
        async with credentials.failures("reading", account, name), self._pool.acquire() as conn:
            return await credentials.load(conn, account, name)

    async def save_credential(self, account: str, name: str, value: str) -> None:
        """Replace ``account``'s credential ``name`` (unfenced: the newest token is the valid one)."""
        async with credentials.failures("saving", account, name), self._pool.acquire() as conn:
            await credentials.save(conn, account, name, value)

    # --- the dispatchers' wake-up (LISTEN/NOTIFY) ---------------------------------------

    def work_notifier(self, writer: str) -> WorkNotifier:
        notifier = WorkNotifier(writer, self.listen, self._notifiers.discard)
        self._notifiers.add(notifier)
        return notifier

    async def listen(self) -> None:
        """Keep a connection listening for new work (a no-op once it is there).

        Without one (the server cannot be reached) the notifiers just wait their timeouts
        out; the next call tries again."""
        if self._listener is not None or self._closed:
            return
        async with self._listener_lock:
            if self._listener is not None:
                return
            try:
                conn = await asyncpg.connect(self._dsn, password=self._password, timeout=10.0)
                await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
            except DATABASE_ERRORS:
                return  # Notifiers fall back to their timeouts; the next wait tries again.
            conn.add_termination_listener(self._on_listener_lost)
            self._listener = conn

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        for notifier in self._notifiers:
            if notifier.writer == payload:
                notifier.notify()

    def _on_listener_lost(self, _conn: object) -> None:
        self._listener = None
        # Work may have been announced while nobody listened: let every dispatcher look.
        for notifier in self._notifiers:
            notifier.notify()

    # --- account leases (active/standby, fleets) -----------------------------------

    async def acquire_lease(
        self, account: str, holder: str, ttl: float, admit: Admit | None = None
    ) -> Lease | None:
        """Take ``account``'s lease for ``ttl`` seconds if nobody holds it; never waits.

        None while another live instance (or this store already) holds it, or when
        ``admit`` (fair sharing) turns the free account down after looking at the
        fleet. The returned lease carries a fencing token higher than every earlier
        holder's. Renew it every ``ttl / 3`` seconds.
        """
        return await self._leases.acquire(account, holder, ttl, admit)

    async def renew_lease(self, lease: Lease) -> bool:
        """Heartbeat. False means the lease is lost: stop processing its account."""
        return await self._leases.renew(lease)

    async def release_lease(self, lease: Lease) -> None:
        """Give the lease up so that a standby takes over at once."""
        await self._leases.release(lease)

    async def lease_holders(self, account: str | None = None) -> list[LeaseInfo]:
        """Every account's lease (who, since when, until when, token) for ``status``."""
        async with self.connection("reading the leases") as conn:
            return await lease_holders(conn, account)

    async def instance_heartbeat(self, instance: Announcement, ttl: float) -> list[InstanceInfo]:
        """Announce this daemon instance (live for ``ttl`` seconds); returns the fleet.

        Runs on the lease connection, which also holds the instance lock: the
        instance stops counting as live the moment that connection dies.
        """
        return await self._leases.heartbeat(instance, ttl)

    async def leave_fleet(self) -> None:
        """Stop announcing this instance (a stopping daemon, before it releases its leases)."""
        await self._leases.leave()

    async def record_commit_failures(
        self, instance_id: str, failures: Mapping[str, CommitFailure]
    ) -> None:
        """Say which held accounts' commits are failing, for ``status`` (another process)."""
        async with self.connection("recording the commit failures") as conn:
            await record_commit_failures(conn, instance_id, failures)

    async def record_writer_facts(self, instance_id: str, facts: Mapping[str, WriterFacts]) -> None:
        """Say what the held accounts' writers found out about their CRMs, for ``status``."""
        async with self.connection("recording the writer facts") as conn:
            await record_writer_facts(conn, instance_id, facts)

    async def instances(self, ttl: float) -> list[InstanceInfo]:
        """Every announced instance with the accounts it holds, for ``status``."""
        async with self.connection("reading the instances") as conn:
            return await fleet(conn, ttl)

    # --- views ---------------------------------------------------------------------

    async def status(self, account: str | None = None) -> StoreStatus:
        """Counts for ``sscl-daemon status`` and the metrics endpoint."""
        async with self.connection("reading the store status") as conn:
            writer_rows = await conn.fetch(sql.WRITER_STATS, account)
            errors = {
                r["writer"]: (r["last_error"], r["updated_at"])
                for r in await conn.fetch(sql.LAST_ERRORS, account)
            }
            account_rows = await conn.fetch(sql.ACCOUNT_STATS, account)
            dead_rows = await conn.fetch(sql.DEAD_LETTER_COUNTS, account)
            version = await current_version(conn)
            read_at = await conn.fetchval(sql.NOW)
        return StoreStatus(
            writers=tuple(
                from_row(
                    WriterStats,
                    r,
                    last_error=errors.get(r["writer"], (None, None))[0],
                    last_error_at=errors.get(r["writer"], (None, None))[1],
                )
                for r in writer_rows
            ),
            accounts=tuple(from_row(AccountStats, r) for r in account_rows),
            dead_letters={str(r["kind"]): int(r["n"]) for r in dead_rows},
            schema_version=version,
            read_at=read_at,
        )
