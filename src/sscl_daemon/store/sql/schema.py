"""The statements about the database itself: its existence, the schema's version, migrations.

The migrations' own SQL is in ``migrations/NNNN_*.sql`` (:mod:`..migrate` applies them).
"""

CREATE_MIGRATION_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""

MIGRATION_LEDGER_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"

SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"

APPLIED_MIGRATIONS = "SELECT version, name, checksum FROM schema_migrations"

RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"

# Every migrator takes the same advisory lock ($1: migrate.MIGRATION_LOCK_KEY).

LOCK_MIGRATIONS = "SELECT pg_advisory_lock($1)"
UNLOCK_MIGRATIONS = "SELECT pg_advisory_unlock($1)"

NOW = "SELECT now()"

DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = $1"

# An identifier cannot be a parameter; the names are the store's own constants (and, for the
# tests' throwaway databases of store/testing.py, names made from a random prefix).
CREATE_DATABASE = 'CREATE DATABASE "{database}"'
CREATE_DATABASE_FROM = 'CREATE DATABASE "{database}" TEMPLATE "{template}"'
DROP_DATABASE = 'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
DATABASES_NAMED = "SELECT datname FROM pg_database WHERE starts_with(datname, $1)"
