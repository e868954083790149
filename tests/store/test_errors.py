"""Unusable DSNs give one clear StoreError naming host and database, never the password."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest

from sscl_daemon.cli import main
from sscl_daemon.config import Secret, Settings, StoreSettings
from sscl_daemon.daemon.app import EXIT_CONFIG, Daemon
from sscl_daemon.store import Store, StoreError
from sscl_daemon.store.embedded import FAST_UNSAFE_SETTINGS, EmbeddedServer
from sscl_daemon.store.errors import dsn_password, scrub
from sscl_daemon.store.migrate import available_migrations
from sscl_daemon.store.testing import PostgresForTests, dsn_with_database

PASSWORD = "Sup3r-Secret-pw"
ROLE = "sscl_pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def password_server() -> Iterator[EmbeddedServer]:
    """A server that checks passwords for ROLE (the session server may trust everybody)."""
    workdir = Path(tempfile.mkdtemp(prefix="sscl-pw-"))
    root = workdir / "postgres"
    root.mkdir()
    hba = root / "pg_hba.conf"
    hba.write_text(f"local all {ROLE} scram-sha-256\nlocal all all trust\n")
    hba.chmod(0o644)
    server = EmbeddedServer(root, settings={**FAST_UNSAFE_SETTINGS, "hba_file": str(hba)})
    server.start()

    async def create_role() -> None:
        conn = await asyncpg.connect(server.dsn())
        try:
            await conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            await conn.execute(f"CREATE DATABASE {ROLE} OWNER {ROLE}")
        finally:
            await conn.close()

    try:
        asyncio.run(create_role())
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def open_error(dsn: str, password: str | None = None) -> str:
    settings = StoreSettings(
        dsn=dsn, password=Secret(password) if password else None, connect_timeout=5.0
    )
    with pytest.raises(StoreError) as caught:
        await Store.open(settings, Path("unused"))
    message = str(caught.value)
    assert PASSWORD not in message
    assert PASSWORD not in repr(caught.value)
    return message


async def test_wrong_password(password_server: EmbeddedServer) -> None:
    dsn = password_server.dsn(ROLE).replace("postgres@", f"{ROLE}@")
    message = await open_error(dsn, password="wrong-" + PASSWORD)
    assert "wrong password" in message
    assert str(password_server.socket_dir) in message
    assert f"database {ROLE!r}" in message
    assert f"user {ROLE!r}" in message
    # The right password works, so the failure above was the password and nothing else.
    async with await Store.open(StoreSettings(dsn=dsn, password=Secret(PASSWORD)), Path("x")) as ok:
        assert await ok.schema_version() == len(available_migrations())


async def test_wrong_password_inside_the_dsn(password_server: EmbeddedServer) -> None:
    dsn = password_server.dsn(ROLE).replace("postgres@", f"{ROLE}:{PASSWORD}x@")
    message = await open_error(dsn)
    assert "wrong password" in message


async def test_unknown_database(pg_server: PostgresForTests) -> None:
    message = await open_error(dsn_with_database(pg_server.admin_dsn, "no_such_db"))
    assert "database 'no_such_db' does not exist" in message


async def test_connection_refused() -> None:
    port = free_port()
    message = await open_error(f"postgresql://sscl:{PASSWORD}@127.0.0.1:{port}/calls")
    assert f"127.0.0.1:{port}" in message
    assert "database 'calls'" in message
    assert "connection refused" in message


async def test_unknown_host() -> None:
    message = await open_error(f"postgresql://sscl:{PASSWORD}@no-such-host.invalid/calls")
    assert "host 'no-such-host.invalid' not found" in message


async def test_malformed_dsn() -> None:
    message = await open_error(f"postgresql://sscl:{PASSWORD}@db.example.com:port/calls")
    assert "not a valid postgresql:// URL" in message


def write_config(path: Path, dsn: str, password: str | None = None) -> Path:
    lines = ["[store]", f'dsn = "{dsn}"']
    if password:
        lines.append(f'password = "{password}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def test_migrate_command_reports_an_unreachable_store_without_traceback(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "sscl.toml", f"postgresql://sscl@127.0.0.1:{free_port()}/calls", PASSWORD
    )
    done = subprocess.run(
        [sys.executable, "-m", "sscl_daemon", "migrate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "connection refused" in done.stderr
    assert "database 'calls'" in done.stderr
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


def test_migrate_command_rejects_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "sscl.toml", "mysql://nope")
    assert main(["migrate", "--config", str(config)]) == 2
    assert "store.dsn" in capsys.readouterr().err


async def test_refused_logins_and_missing_databases_are_permanent(
    password_server: EmbeddedServer, pg_server: PostgresForTests
) -> None:
    """What only a configuration change fixes is marked so; a server that is down is not."""
    dsn = password_server.dsn(ROLE).replace("postgres@", f"{ROLE}@")
    refused = [
        (dsn, "wrong-" + PASSWORD),
        (password_server.dsn(ROLE).replace("postgres@", "no_such_role@"), None),
        (dsn_with_database(pg_server.admin_dsn, "no_such_db"), None),
    ]
    for target, password in refused:
        settings = StoreSettings(dsn=target, password=Secret(password) if password else None)
        with pytest.raises(StoreError) as caught:
            await Store.open(settings, Path("unused"))
        assert caught.value.permanent, str(caught.value)
    down = StoreSettings(dsn=f"postgresql://sscl@127.0.0.1:{free_port()}/calls")
    with pytest.raises(StoreError) as caught:
        await Store.open(down, Path("unused"))
    assert not caught.value.permanent


async def test_the_daemon_exits_with_the_final_status_when_the_login_is_refused(
    password_server: EmbeddedServer, tmp_path: Path
) -> None:
    """Issue 18 item 13: a refused login exited 1, so the unit restarted the daemon for ever."""
    dsn = password_server.dsn(ROLE).replace("postgres@", f"{ROLE}:wrong-{PASSWORD}@")
    settings = dataclasses.replace(
        Settings(),
        daemon=dataclasses.replace(Settings().daemon, state_dir=tmp_path),
        store=StoreSettings(dsn=dsn, connect_timeout=5.0),
    )
    assert await Daemon(settings, handle_signals=False).run() == EXIT_CONFIG


def test_the_dsn_password_is_scrubbed_in_every_form() -> None:
    secret = "p@ss/w:rd"
    dsn = f"postgresql://sscl:{quote(secret, safe='')}@db.example.com:port/calls"
    message = scrub(f"failed for {dsn} ({secret})", dsn_password(dsn))
    assert secret not in message
    assert quote(secret, safe="") not in message
