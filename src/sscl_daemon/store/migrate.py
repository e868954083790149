"""Schema migrations: the versioned SQL files in ``store/migrations`` applied in order.

Run by :meth:`sscl_daemon.store.Store.open` at every start and by
``sscl-daemon migrate``. A session-level advisory lock serialises concurrent
runs (two daemons starting at once, or the CLI next to a daemon); each file
is applied in its own transaction together with its row in
``schema_migrations``, so a failed file leaves the schema at the previous
version. A file changed after it was applied, or a database migrated by a
newer sscl-daemon, is reported instead of guessed at.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from sscl_daemon.store import sql
from sscl_daemon.store.errors import StoreError

if TYPE_CHECKING:
    from sscl_daemon.store.access import AnyConnection

# Arbitrary, fixed: the key of the advisory lock all sscl-daemon migrators take.
MIGRATION_LOCK_KEY = 0x5C_5C_1D_00_0001
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_TIMEOUT = 120.0
# A later migration may rewrite a large outbox; allow for it.
_MIGRATION_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class MigrationReport:
    applied: tuple[Migration, ...]
    version: int  # the schema version after the run


@cache
def available_migrations() -> tuple[Migration, ...]:
    """The migrations shipped with this version, in order (versions 1, 2, ... without gaps)."""
    found: list[Migration] = []
    for entry in resources.files("sscl_daemon.store.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise StoreError(f"migration files are not numbered 1..n: {migration.label}")
    return tuple(found)


async def current_version(conn: AnyConnection) -> int:
    """The schema version of the database (0 when never migrated)."""
    exists = await conn.fetchval(sql.MIGRATION_LEDGER_EXISTS)
    if not exists:
        return 0
    value = await conn.fetchval(sql.SCHEMA_VERSION)
    return int(value)


async def migrate(conn: AnyConnection) -> MigrationReport:
    """Bring the schema to the newest version; returns what was applied (maybe nothing)."""
    migrations = available_migrations()
    await conn.execute(sql.LOCK_MIGRATIONS, MIGRATION_LOCK_KEY, timeout=_LOCK_TIMEOUT)
    try:
        await conn.execute(sql.CREATE_MIGRATION_LEDGER)
        rows = await conn.fetch(sql.APPLIED_MIGRATIONS)
        done = {int(r["version"]): str(r["checksum"]) for r in rows}
        newest = len(migrations)
        if done and max(done) > newest:
            raise StoreError(
                f"the database schema is at version {max(done)}, newer than this sscl-daemon "
                f"knows ({newest}); upgrade sscl-daemon or use another database"
            )
        applied: list[Migration] = []
        for migration in migrations:
            checksum = done.get(migration.version)
            if checksum is not None:
                if checksum != migration.checksum:
                    raise StoreError(
                        f"migration {migration.label} was changed after it was applied to this "
                        "database; restore the original file (add a new migration instead)"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql, timeout=_MIGRATION_TIMEOUT)
                await conn.execute(
                    sql.RECORD_MIGRATION,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied.append(migration)
        return MigrationReport(applied=tuple(applied), version=newest)
    finally:
        await conn.execute(sql.UNLOCK_MIGRATIONS, MIGRATION_LOCK_KEY)
