"""The store: every SQL statement of sscl-daemon, behind one asyncpg pool.

The daemon commits completed calls together with the checkpoint that
produced them (:meth:`Store.commit_batch`, one transaction); the dispatcher
claims due outbox rows (:meth:`Store.claim_due`, ``FOR UPDATE SKIP LOCKED``
with a claim lease) and records how each attempt ended; the CLI and the
admin endpoint read :meth:`Store.status`; the daemon's retention deletes old
sent rows (:meth:`Store.prune_sent`, ``daemon/retention.py``). State changes of an outbox row are
guarded in SQL: only the claimer that holds a row in flight can settle it.
Account leases (:mod:`.leases`) decide which instance processes an account;
the writes that take a ``fence`` refuse to run for a deposed holder. The
instances sharing the store announce themselves (:mod:`.instances`) so that
the accounts can be shared fairly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

import asyncpg
import msgspec

from sscl_daemon.calls.model import CompletedCall, decode_call, encode_call
from sscl_daemon.config import StoreSettings
from sscl_daemon.store import credentials, sql
from sscl_daemon.store.embedded import EmbeddedServer
from sscl_daemon.store.errors import DATABASE_ERRORS, StoreError, connect_error, dsn_target
from sscl_daemon.store.instances import (
    Announcement,
    CommitFailure,
    InstanceInfo,
    fleet,
    record_commit_failures,
)
from sscl_daemon.store.leases import (
    Admit,
    Lease,
    LeaseInfo,
    LeaseKeeper,
    check_fence,
    lease_holders,
)
from sscl_daemon.store.migrate import MigrationReport, current_version, migrate
from sscl_daemon.store.model import (
    AccountStats,
    Checkpoint,
    DeadLetter,
    OutboxItem,
    OutboxRow,
    OutboxStatus,
    Outcome,
    RecoveryToken,
    StoredDeadLetter,
    StoreStatus,
    WriterStats,
)

EMBEDDED_DATABASE = "sscl"
# LISTEN/NOTIFY channel: the payload is the writer name that has new due rows.
OUTBOX_CHANNEL = "sscl_outbox"
_CLOSE_TIMEOUT = 10.0
# No statement of ours takes long; one that does means the server or network is stuck.
_COMMAND_TIMEOUT = 60.0


# Retention: rows per DELETE and the pause between two (a batch takes milliseconds).
PRUNE_BATCH = 10_000
PRUNE_PAUSE = 0.5


@dataclass(frozen=True)
class Pruned:
    """What one :meth:`Store.prune_sent` run deleted, in how many statements."""

    rows: int
    batches: int


def _count(status: str) -> int:
    """Rows affected, from a command tag such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


async def _notify(
    conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record], writers: set[str]
) -> None:
    """Announce new due rows for ``writers``; delivered when the transaction commits."""
    if writers:
        await conn.execute(
            "SELECT pg_notify($1, w) FROM unnest($2::text[]) AS w", OUTBOX_CHANNEL, sorted(writers)
        )


@contextlib.asynccontextmanager
async def _failures(action: str) -> AsyncIterator[None]:
    try:
        yield
    except StoreError:
        raise
    except DATABASE_ERRORS as exc:
        raise StoreError(f"store: {action} failed: {exc}") from exc


class WorkNotifier:
    """Wakes a dispatcher when rows for its writer are committed (LISTEN/NOTIFY).

    ``wait(seconds)`` returns True when new work was announced since the last
    wake-up, False when the seconds ran out. It is a hint: without a listening
    connection it just waits the seconds out, so the caller must still poll.
    """

    def __init__(self, store: Store, writer: str) -> None:
        self.writer = writer
        self._store = store
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        await self._store._ensure_listener()
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def close(self) -> None:
        self._store._notifiers.discard(self)


class Store:
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
        try:
            if settings.embedded:
                _private_state_dir(state_dir)
                server = EmbeddedServer(state_dir / "postgres")
                await server.astart()
                dsn = server.dsn(EMBEDDED_DATABASE)
                await _ensure_database(server.dsn(), EMBEDDED_DATABASE, settings.connect_timeout)
            else:
                dsn = settings.dsn
            pool = await _create_pool(dsn, password, settings)
        except BaseException:
            if server is not None:
                await server.astop()
            raise
        store = cls(pool, dsn, password, server)
        if apply_migrations:
            try:
                await store.migrate()
            except BaseException:
                await store.close()
                raise
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
        try:
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
                await _require_database(candidate, small.connect_timeout)
            else:
                dsn = settings.dsn
            pool = await _create_pool(dsn, password, small)
        except BaseException:
            if server is not None:
                await server.astop()
            raise
        store = cls(pool, dsn, password, server)
        store.origin = origin
        if require_schema:
            try:
                version = await store.schema_version()
            except BaseException:
                await store.close()
                raise
            if version == 0:
                await store.close()
                raise StoreError(
                    f"{store.target} has no sscl-daemon schema: the daemon has not run on it "
                    "(or run sscl-daemon migrate)",
                    permanent=True,
                )
        return store

    async def migrate(self) -> MigrationReport:
        async with _failures("migration"), self._pool.acquire() as conn:
            return await migrate(conn)

    async def schema_version(self) -> int:
        async with _failures("reading the schema version"), self._pool.acquire() as conn:
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
        async with (
            _failures(f"committing {len(calls)} calls for account {account!r}"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            if fence is not None:
                await check_fence(conn, fence, account)
            if keys and writer_names:
                rows = await conn.fetch(
                    sql.INSERT_OUTBOX, account, keys, payloads, ends, writer_names
                )
                inserted = sum(int(r["n"]) for r in rows)
                await _notify(conn, {str(r["writer"]) for r in rows})
            if checkpoint is not None:
                await conn.execute(
                    sql.SAVE_CHECKPOINT,
                    account,
                    checkpoint.last_event_time,
                    checkpoint.last_event_uuid,
                    checkpoint.last_sequence,
                )
            if dead_letters:
                await self._insert_dead_letters(conn, account, dead_letters)
        return inserted

    async def load_checkpoint(self, account: str) -> Checkpoint | None:
        async with _failures("loading the checkpoint"), self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT last_event_time, last_event_uuid, last_sequence, updated_at "
                "FROM checkpoints WHERE account = $1",
                account,
            )
        if row is None or (row["last_event_time"] is None and row["last_sequence"] is None):
            return None
        return Checkpoint(
            last_event_time=row["last_event_time"],
            last_event_uuid=row["last_event_uuid"],
            last_sequence=row["last_sequence"],
            updated_at=row["updated_at"],
        )

    async def save_recovery_token(
        self,
        account: str,
        token: str,
        expires_at: datetime,
        oauth_session: str,
        *,
        sequence: int | None = None,
        fence: Lease | None = None,
    ) -> None:
        async with (
            _failures("saving the recovery token"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            if fence is not None:
                await check_fence(conn, fence, account)
            await conn.execute(
                sql.SAVE_RECOVERY_TOKEN, account, token, expires_at, oauth_session, sequence
            )

    async def load_recovery_token(self, account: str) -> RecoveryToken | None:
        async with _failures("loading the recovery token"), self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT recovery_token, recovery_token_expires_at, oauth_session, updated_at, "
                "recovery_sequence FROM checkpoints "
                "WHERE account = $1 AND recovery_token IS NOT NULL",
                account,
            )
        if row is None:
            return None
        return RecoveryToken(
            token=row["recovery_token"],
            expires_at=row["recovery_token_expires_at"],
            oauth_session=row["oauth_session"] or "",
            updated_at=row["updated_at"],
            sequence=row["recovery_sequence"],
        )

    async def clear_recovery_token(self, account: str) -> None:
        async with _failures("clearing the recovery token"), self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE checkpoints SET recovery_token = NULL, recovery_token_expires_at = NULL, "
                "oauth_session = NULL WHERE account = $1",
                account,
            )

    # --- the last extension directory (subscribe without waiting for a reload) -----

    async def save_directory(
        self, account: str, data: bytes, *, fence: Lease | None = None
    ) -> None:
        async with (
            _failures("saving the extension directory"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            if fence is not None:
                await check_fence(conn, fence, account)
            await conn.execute(sql.SAVE_DIRECTORY, account, data)

    async def load_directory(self, account: str) -> bytes | None:
        async with _failures("loading the extension directory"), self._pool.acquire() as conn:
            data = await conn.fetchval("SELECT data FROM directories WHERE account = $1", account)
        return bytes(data) if data is not None else None

    # --- rotated credentials (refresh tokens; see .credentials) --------------------

    async def load_credential(self, account: str, name: str) -> str | None:
        """The stored value of ``account``'s credential ``name``, None if there is none."""
        async with credentials.failures("reading", account, name), self._pool.acquire() as conn:
            return await credentials.load(conn, account, name)

    async def save_credential(self, account: str, name: str, value: str) -> None:
        """Replace ``account``'s credential ``name`` (unfenced: the newest token is the valid one)."""
        async with credentials.failures("saving", account, name), self._pool.acquire() as conn:
            await credentials.save(conn, account, name, value)

    # --- in-flight snapshots ------------------------------------------------------

    async def save_snapshot(self, account: str, data: bytes, *, fence: Lease | None = None) -> None:
        async with (
            _failures("saving the snapshot"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            if fence is not None:
                await check_fence(conn, fence, account)
            await conn.execute(
                "INSERT INTO session_snapshots (account, data, taken_at) VALUES ($1, $2, now()) "
                "ON CONFLICT (account) DO UPDATE SET data = EXCLUDED.data, taken_at = now()",
                account,
                data,
            )

    async def load_snapshot(self, account: str) -> bytes | None:
        async with _failures("loading the snapshot"), self._pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT data FROM session_snapshots WHERE account = $1", account
            )
        return None if value is None else bytes(value)

    # --- dead letters ---------------------------------------------------------------

    async def _insert_dead_letters(
        self,
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        account: str,
        letters: Sequence[DeadLetter],
    ) -> None:
        await conn.execute(
            sql.INSERT_DEAD_LETTERS,
            account,
            [letter.kind.value for letter in letters],
            [letter.reason for letter in letters],
            [letter.payload for letter in letters],
        )

    async def add_dead_letters(self, account: str, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        async with _failures("storing dead letters"), self._pool.acquire() as conn:
            await self._insert_dead_letters(conn, account, letters)

    async def dead_letters(
        self, account: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[StoredDeadLetter]:
        """The newest dead letters first."""
        async with _failures("reading dead letters"), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, account, kind, reason, payload, created_at FROM dead_letters "
                "WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR kind = $2) "
                "ORDER BY id DESC LIMIT $3",
                account,
                kind,
                limit,
            )
        return [
            StoredDeadLetter(
                id=r["id"],
                account=r["account"],
                kind=r["kind"],
                reason=r["reason"],
                payload=bytes(r["payload"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    # --- the dispatcher's side of the outbox ------------------------------------------

    async def claim_due(
        self,
        writer: str,
        limit: int,
        claimer: str,
        lease_seconds: float,
        account: str | None = None,
        *,
        fence: Lease | None = None,
    ) -> list[OutboxItem]:
        """Claim up to ``limit`` due rows of ``writer`` for ``lease_seconds`` (one statement).

        Rows another claimer holds are skipped, never waited for. A row whose
        previous claim lapsed comes back marked ``uncertain``. ``claimer`` must be
        unique per dispatcher incarnation (e.g. host, pid and a random suffix).
        With a ``fence`` only rows of the fence's account are claimed, and only
        while its lease is current.
        """
        if fence is not None:
            account = account or fence.account
        async with (
            _failures(f"claiming outbox rows for {writer!r}"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            if fence is not None:
                await check_fence(conn, fence, account)
            rows = await conn.fetch(
                sql.CLAIM_DUE, writer, limit, claimer, float(lease_seconds), account
            )
        items: list[OutboxItem] = []
        for row in sorted(rows, key=lambda r: int(r["id"])):
            try:
                call = decode_call(row["payload"])
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                # Unreadable by this version: park it with the reason instead of failing forever.
                await self.mark_dead(row["id"], claimer, f"undecodable outbox payload: {exc}")
                continue
            items.append(
                OutboxItem(
                    id=row["id"],
                    account=row["account"],
                    writer=row["writer"],
                    call=call,
                    attempts=row["attempts"],
                    uncertain=row["uncertain"],
                    claimed_by=row["claimed_by"],
                    claim_expires_at=row["claim_expires_at"],
                    last_error=row["last_error"],
                )
            )
        return items

    async def _settle(self, action: str, fence: Lease | None, query: str, *args: object) -> bool:
        async with _failures(action), self._pool.acquire() as conn, conn.transaction():
            if fence is not None:
                await check_fence(conn, fence)
            return _count(await conn.execute(query, *args)) == 1

    async def mark_sent(
        self,
        item_id: int,
        claimer: str,
        crm_record_id: str | None,
        outcome: Outcome,
        *,
        fence: Lease | None = None,
    ) -> bool:
        """Record the CRM's answer. False if ``claimer`` no longer holds the row; with a
        ``fence``, :class:`~sscl_daemon.store.leases.LeaseLostError` once it is deposed."""
        return await self._settle(
            "marking a call sent",
            fence,
            sql.MARK_SENT,
            item_id,
            claimer,
            crm_record_id,
            outcome.value,
        )

    async def mark_sent_many(
        self,
        items: Sequence[tuple[int, str | None, Outcome]],
        claimer: str,
        *,
        fence: Lease | None = None,
    ) -> set[int]:
        """:meth:`mark_sent` for many ``(item id, CRM record id, outcome)`` in ONE transaction.

        Returns the ids settled; a row ``claimer`` no longer holds is left alone
        and missing from the result. With a ``fence``,
        :class:`~sscl_daemon.store.leases.LeaseLostError` once it is deposed (nothing settled).
        """
        if not items:
            return set()
        async with (
            _failures("marking calls sent"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            if fence is not None:
                await check_fence(conn, fence)
            rows = await conn.fetch(
                sql.MARK_SENT_MANY,
                [item_id for item_id, _, _ in items],
                claimer,
                [record_id for _, record_id, _ in items],
                [outcome.value for _, _, outcome in items],
            )
        return {int(r["id"]) for r in rows}

    async def schedule_retry(
        self,
        item_id: int,
        claimer: str,
        delay_seconds: float,
        error: str,
        uncertain: bool,
        *,
        fence: Lease | None = None,
    ) -> bool:
        """Back to pending after ``delay_seconds``. ``uncertain`` is sticky: once an attempt
        may have reached the CRM, every later attempt must check first."""
        return await self._settle(
            "scheduling a retry",
            fence,
            sql.SCHEDULE_RETRY,
            item_id,
            claimer,
            float(delay_seconds),
            error,
            uncertain,
        )

    async def mark_dead(
        self, item_id: int, claimer: str, reason: str, *, fence: Lease | None = None
    ) -> bool:
        """Park the row (no more attempts) until :meth:`retry_dead`."""
        return await self._settle(
            "parking a call as dead", fence, sql.MARK_DEAD, item_id, claimer, reason
        )

    async def retry_dead(
        self,
        writer: str | None = None,
        since: datetime | None = None,
        account: str | None = None,
        item_id: int | None = None,
    ) -> int:
        """Move dead outbox rows (of ``writer``, dead since ``since``; or the one row
        ``item_id``) back to pending."""
        async with (
            _failures("retrying dead calls"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            rows = await conn.fetch(sql.RETRY_DEAD, writer, since, account, item_id)
            await _notify(conn, {str(r["writer"]) for r in rows})
        return len(rows)

    async def expire_claims(
        self, claimer_prefix: str, keep: str | None = None, account: str | None = None
    ) -> int:
        """End the claims of earlier incarnations of this daemon now instead of at lease end.

        Rows in flight under a claimer starting with ``claimer_prefix`` (other than
        ``keep``, this process) become due at once and are claimed again as
        ``uncertain``. Call it at start when no other live process claims under
        that prefix (e.g. prefix ``"<instance_name>:"``); returns the rows released.
        """
        async with (
            _failures("expiring earlier claims"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            rows = await conn.fetch(sql.EXPIRE_CLAIMS, claimer_prefix, keep, account)
            await _notify(conn, {str(r["writer"]) for r in rows})
        return len(rows)

    async def prune_sent(
        self,
        account: str,
        older_than_days: int,
        *,
        batch_size: int = PRUNE_BATCH,
        pause: float = PRUNE_PAUSE,
        fence: Lease | None = None,
    ) -> Pruned:
        """Delete ``account``'s sent rows settled more than ``older_than_days`` days ago.

        Batches of at most ``batch_size`` rows, each its own short transaction, ``pause``
        seconds apart, so the daemon's commits never queue behind a long delete. Pending,
        in-flight and dead rows are never touched, nor rows within a day of the account's
        checkpoint (see :data:`sql.PRUNE_SENT`). With a ``fence``,
        :class:`~sscl_daemon.store.leases.LeaseLostError` once it is deposed.
        """
        if older_than_days < 1 or batch_size < 1:
            raise ValueError(f"cannot prune {older_than_days} days in batches of {batch_size}")
        action = f"pruning sent calls of account {account!r}"
        async with _failures(action), self._pool.acquire() as conn:
            cutoff = await conn.fetchval(sql.PRUNE_CUTOFF, account, older_than_days)
        rows = batches = 0
        while True:
            async with _failures(action), self._pool.acquire() as conn, conn.transaction():
                if fence is not None:
                    await check_fence(conn, fence, account)
                deleted = _count(await conn.execute(sql.PRUNE_SENT, account, cutoff, batch_size))
            rows, batches = rows + deleted, batches + 1
            if deleted < batch_size:
                return Pruned(rows, batches)
            await asyncio.sleep(pause)

    async def seconds_until_due(self, writer: str, account: str | None = None) -> float | None:
        """How long until the next row of ``writer`` is due (0 if one is due now; None if none)."""
        async with _failures("reading the next due time"), self._pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 FROM outbox "
                "WHERE writer = $1 AND status IN ('pending', 'in_flight') "
                "AND ($2::text IS NULL OR account = $2)",
                writer,
                account,
            )
        return None if value is None else max(0.0, float(value))

    def work_notifier(self, writer: str) -> WorkNotifier:
        notifier = WorkNotifier(self, writer)
        self._notifiers.add(notifier)
        return notifier

    async def _ensure_listener(self) -> None:
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
        async with _failures("reading the leases"), self._pool.acquire() as conn:
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
        async with _failures("recording the commit failures"), self._pool.acquire() as conn:
            await record_commit_failures(conn, instance_id, failures)

    async def instances(self, ttl: float) -> list[InstanceInfo]:
        """Every announced instance with the accounts it holds, for ``status``."""
        async with _failures("reading the instances"), self._pool.acquire() as conn:
            return await fleet(conn, ttl)

    # --- views ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def reading(
        self, action: str
    ) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection for the console's read-only queries (:mod:`.views`); a
        database failure becomes a :class:`StoreError` naming ``action``."""
        async with _failures(action), self._pool.acquire() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def transaction(
        self, action: str, fence: Lease | None = None
    ) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection in a transaction (fenced when ``fence`` is given) for the
        store's own modules (:mod:`.enrichments`); a failure is a StoreError naming ``action``."""
        async with _failures(action), self._pool.acquire() as conn, conn.transaction():
            if fence is not None:
                await check_fence(conn, fence)
            yield conn

    async def logged_keys(
        self, account: str, keys: Sequence[str], writers: Sequence[str]
    ) -> set[str]:
        """Those of ``keys`` already in ``account``'s outbox for every one of ``writers``
        (whatever their state: a call there is logged or on its way)."""
        if not keys or not writers:
            return set()
        async with _failures("reading the outbox keys"), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT call_key FROM outbox "
                "WHERE account = $1 AND call_key = ANY($2::text[]) AND writer = ANY($3::text[]) "
                "GROUP BY call_key HAVING count(DISTINCT writer) = $4",
                account,
                list(keys),
                list(dict.fromkeys(writers)),
                len(set(writers)),
            )
        return {str(r["call_key"]) for r in rows}

    async def outbox_rows(
        self,
        account: str | None = None,
        writer: str | None = None,
        status: OutboxStatus | None = None,
        limit: int = 1000,
    ) -> list[OutboxRow]:
        async with _failures("reading the outbox"), self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {sql.OUTBOX_COLUMNS} FROM outbox "
                "WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR writer = $2) "
                "AND ($3::text IS NULL OR status = $3) ORDER BY id LIMIT $4",
                account,
                writer,
                status.value if status else None,
                limit,
            )
        return [
            OutboxRow(
                id=r["id"],
                account=r["account"],
                call_key=r["call_key"],
                writer=r["writer"],
                status=OutboxStatus(r["status"]),
                attempts=r["attempts"],
                uncertain=r["uncertain"],
                next_attempt_at=r["next_attempt_at"],
                claimed_by=r["claimed_by"],
                crm_record_id=r["crm_record_id"],
                outcome=Outcome(r["outcome"]) if r["outcome"] else None,
                last_error=r["last_error"],
                created_at=r["created_at"],
                sent_at=r["sent_at"],
            )
            for r in rows
        ]

    async def status(self, account: str | None = None) -> StoreStatus:
        """Counts for ``sscl-daemon status`` and the metrics endpoint."""
        async with _failures("reading the store status"), self._pool.acquire() as conn:
            writer_rows = await conn.fetch(sql.WRITER_STATS, account)
            errors = {
                r["writer"]: (r["last_error"], r["updated_at"])
                for r in await conn.fetch(sql.LAST_ERRORS, account)
            }
            account_rows = await conn.fetch(sql.ACCOUNT_STATS, account)
            dead_rows = await conn.fetch(
                "SELECT kind, count(*) AS n FROM dead_letters "
                "WHERE ($1::text IS NULL OR account = $1) GROUP BY kind ORDER BY kind",
                account,
            )
            version = await current_version(conn)
            read_at = await conn.fetchval("SELECT now()")
        return StoreStatus(
            writers=tuple(
                WriterStats(
                    writer=r["writer"],
                    pending=r["pending"],
                    in_flight=r["in_flight"],
                    sent=r["sent"],
                    dead=r["dead"],
                    skipped=r["skipped"],
                    due=r["due"],
                    oldest_pending_age=r["oldest"],
                    last_error=errors.get(r["writer"], (None, None))[0],
                    last_error_at=errors.get(r["writer"], (None, None))[1],
                )
                for r in writer_rows
            ),
            accounts=tuple(
                AccountStats(
                    account=r["account"],
                    last_event_time=r["last_event_time"],
                    checkpoint_age=r["checkpoint_age"],
                    recovery_token_expires_at=r["recovery_token_expires_at"],
                    snapshot_taken_at=r["taken_at"],
                )
                for r in account_rows
            ),
            dead_letters={str(r["kind"]): int(r["n"]) for r in dead_rows},
            schema_version=version,
            read_at=read_at,
        )


# A DSN asyncpg cannot parse surfaces as ValueError when the pool first connects.
_CONNECT_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, ValueError)


async def _reset_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Before a connection goes back to the pool: the full reset only if something is open.

    The store's statements leave no session state behind (no SET, LISTEN or cursor;
    the migration lock is released explicitly; the listener and the leases have
    connections of their own), so the default reset query on every release is a
    round trip that changes nothing, except after a transaction left open.
    """
    if conn.is_in_transaction():
        await conn.execute(conn.get_reset_query())


async def _create_pool(
    dsn: str, password: str | None, settings: StoreSettings
) -> asyncpg.Pool[asyncpg.Record]:
    try:
        return await asyncpg.create_pool(
            dsn,
            password=password,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.connect_timeout,
            command_timeout=_COMMAND_TIMEOUT,
            max_inactive_connection_lifetime=300.0,
            reset=_reset_connection,
            server_settings={"application_name": "sscl-daemon", "jit": "off"},
        )
    except _CONNECT_ERRORS as exc:
        raise connect_error(exc, dsn, password) from None


def _private_state_dir(state_dir: Path) -> None:
    """The state directory exists and only the service may enter it (0700).

    The embedded server's files, the jsonl call data and recordings live there. When the
    server runs as another user (the daemon is root) it gets search permission back on
    the way to its own directory (:mod:`.embedded`).
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        state_dir.chmod(0o700)
    except OSError as exc:
        raise StoreError(
            f"cannot create or protect the state directory {state_dir}: {exc.strerror} "
            "(check daemon.state_dir and $STATE_DIRECTORY)",
            permanent=True,
        ) from None


async def _require_database(server: EmbeddedServer, connect_timeout: float) -> None:
    """The daemon's database exists on the embedded ``server`` (a command never creates it)."""
    admin_dsn = server.dsn()
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=connect_timeout)
    except DATABASE_ERRORS as exc:
        raise connect_error(exc, admin_dsn, None) from None
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", EMBEDDED_DATABASE
        )
    finally:
        await conn.close()
    if not exists:
        raise StoreError(
            f"the embedded PostgreSQL in {server.root} has no database {EMBEDDED_DATABASE!r}: "
            "the daemon has not run with this daemon.state_dir",
            permanent=True,
        )


async def _ensure_database(admin_dsn: str, database: str, connect_timeout: float) -> None:
    """Create ``database`` on the embedded server the first time."""
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=connect_timeout)
    except DATABASE_ERRORS as exc:
        raise connect_error(exc, admin_dsn, None) from None
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
