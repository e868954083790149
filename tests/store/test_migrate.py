"""Schema migrations: from empty, re-run, concurrent runs, and refusals."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from sscl_daemon.store import StoreError
from sscl_daemon.store.migrate import (
    MIGRATION_LOCK_KEY,
    available_migrations,
    current_version,
    migrate,
)
from sscl_daemon.store.testing import PostgresForTests

TABLES = {"checkpoints", "session_snapshots", "outbox", "dead_letters", "leases"}


async def tables(conn: asyncpg.Connection[asyncpg.Record]) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {str(r["tablename"]) for r in rows}


async def test_from_empty_then_rerun(empty_pg_dsn: str) -> None:
    conn = await asyncpg.connect(empty_pg_dsn)
    try:
        assert await current_version(conn) == 0
        first = await migrate(conn)
        assert [m.label for m in first.applied] == [m.label for m in available_migrations()]
        assert first.version == len(available_migrations())
        assert TABLES | {"schema_migrations"} <= await tables(conn)

        again = await migrate(conn)
        assert again.applied == ()
        assert again.version == first.version
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == first.version
    finally:
        await conn.close()


async def test_two_connections_migrating_at_once_apply_each_file_once(empty_pg_dsn: str) -> None:
    one = await asyncpg.connect(empty_pg_dsn)
    two = await asyncpg.connect(empty_pg_dsn)
    try:
        reports = await asyncio.gather(migrate(one), migrate(two))
        applied = [m.version for report in reports for m in report.applied]
        assert sorted(applied) == [m.version for m in available_migrations()]
        assert await one.fetchval("SELECT count(*) FROM schema_migrations") == len(applied)
        assert await tables(one) >= TABLES
    finally:
        await one.close()
        await two.close()


async def test_a_changed_migration_file_is_refused(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(StoreError, match="0001_initial was changed after it was applied"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_a_schema_newer_than_the_code_is_refused(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', '')"
        )
        with pytest.raises(StoreError, match="version 999, newer than this sscl-daemon"):
            await migrate(conn)
        # The refusal released the advisory lock: another run is not blocked.
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def test_the_test_database_is_migrated_and_private(
    pg_dsn: str, pg_server: PostgresForTests
) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await current_version(conn) == len(available_migrations())
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        name = await conn.fetchval("SELECT current_database()")
        assert name != pg_server.template
    finally:
        await conn.close()
