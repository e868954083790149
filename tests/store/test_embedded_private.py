"""The embedded server where the daemon is installed, with nothing of the daemon's leaking to it.

Issue 18 item 0: as root, with the package installed under a directory only
root may enter (a clone in ``/root`` or under a 0700 ``mktemp -d``), the
server (which runs as ``nobody``) could not reach its binaries. Issue 19: the
server had the daemon's whole environment (secrets) and the state files were
world-readable.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from tests.install.runtime import as_user, runtime_for

from sscl_daemon.config import StoreSettings
from sscl_daemon.exitcodes import EXIT_CONFIG
from sscl_daemon.store import Store, embedded
from sscl_daemon.store.embedded import FAST_UNSAFE_SETTINGS, EmbeddedServer

AS_ROOT = os.geteuid() == 0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


def linked_install(outer: Path) -> Path:
    """The wheel's install tree (hard links) under ``outer``; returns its ``bin``."""
    source_bin = embedded._bin_dir()
    tree = source_bin.parent
    package = tree.parent
    site = outer / "site-packages"
    for part in ("bin", "lib", "share"):
        shutil.copytree(tree / part, site / package.name / tree.name / part, copy_function=os.link)
    libs = package.with_name(package.name + ".libs")
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, copy_function=os.link)
    return site / package.name / tree.name / "bin"


@pytest.fixture
def private_install() -> Iterator[Path]:
    """The wheel's install tree under a 0700 directory only root may enter."""
    outer = Path(tempfile.mkdtemp(prefix="sscl-venv-"))
    try:
        assert mode(outer) == 0o700
        yield linked_install(outer)
    finally:
        shutil.rmtree(outer, ignore_errors=True)


@pytest.fixture
def public_install() -> Iterator[Path]:
    """The wheel's install tree where every user may reach it (as under /opt or /usr)."""
    outer = Path(tempfile.mkdtemp(prefix="sscl-venv-"))
    try:
        bin_dir = linked_install(outer)
        # Explicit modes: the directories copytree made above the copied parts follow the
        # umask, and a private one (0077, as a CI runner may set) would close them.
        for directory, _, _ in os.walk(outer):
            Path(directory).chmod(0o755)
        yield bin_dir
    finally:
        shutil.rmtree(outer, ignore_errors=True)


@pytest.mark.skipif(not AS_ROOT, reason="the server runs as another user only under root")
async def test_as_root_the_server_runs_from_a_package_nobody_else_can_enter(
    private_install: Path, embedded_state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "_bin_dir", lambda: private_install)
    server = EmbeddedServer(embedded_state_dir / "postgres", settings=FAST_UNSAFE_SETTINGS)
    dsn = await server.astart()
    try:
        assert await select_one(dsn) == 1
        # It runs from the root-owned public copy, as the data directory's owner (not root).
        assert server.bin_dir.is_relative_to(server.install_dir)
        assert server.install_dir.stat().st_uid == 0
        assert mode(server.bin_dir) == 0o755
        assert server.pid is not None
        assert os.stat(f"/proc/{server.pid}").st_uid == server.data_dir.stat().st_uid != 0
        # The package's directory was not opened up for it.
        assert mode(private_install.parents[3]) == 0o700
    finally:
        await server.astop()
    # A second start reuses the copy instead of making it again.
    copied = server.bin_dir / "postgres"
    inode = copied.stat().st_ino
    await server.astart()
    try:
        assert copied.stat().st_ino == inode
    finally:
        await server.astop()


async def test_the_server_gets_a_minimal_environment_without_the_daemons_secrets(
    embedded_state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "probe-secret-4f1c2e"
    monkeypatch.setenv("SSCL_RINGCENTRAL_CLIENT_SECRET", secret)
    monkeypatch.setenv("PGOPTIONS", "-c work_mem=1MB")
    server = EmbeddedServer(embedded_state_dir / "postgres", settings=FAST_UNSAFE_SETTINGS)
    await server.astart()
    try:
        environ = await asyncio.to_thread(Path(f"/proc/{server.pid}/environ").read_bytes)
    finally:
        await server.astop()
    names = {entry.split(b"=", 1)[0].decode() for entry in environ.split(b"\0") if entry}
    assert names == {"LC_ALL", "PATH"}
    assert secret.encode() not in environ


async def test_the_state_directory_and_every_file_in_it_are_private(
    embedded_state_dir: Path,
) -> None:
    state = embedded_state_dir / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    # A log left by an older version, readable by everyone.
    (state / "postgres").mkdir(mode=0o700)
    (state / "postgres" / "server.log").write_text("old\n")
    (state / "postgres" / "server.log").chmod(0o644)
    store = await Store.open(StoreSettings(dsn="embedded"), state)
    try:
        server = store.embedded_server
        assert server is not None
        # Search permission for the server's user when it is another one (root), nothing else.
        assert mode(state) == (0o701 if AS_ROOT else 0o700)
        assert mode(server.root) == (0o711 if AS_ROOT else 0o700)
        assert mode(server.lock_path) == 0o600
        assert mode(server.log_path) == 0o600
        assert mode(server.data_dir) == 0o700
        assert mode(server.socket_dir) == 0o700
        for directory, dirs, files in os.walk(server.data_dir):
            for name in files:
                assert not mode(Path(directory, name)) & 0o077, name
            for name in dirs:
                assert not mode(Path(directory, name)) & 0o077, name
    finally:
        await store.close()
    assert mode(server.log_path) == 0o600


@pytest.mark.skipif(not AS_ROOT, reason="root starting a service user's server needs root")
@pytest.mark.parametrize("package", ["public_install", "private_install"])
def test_root_starting_the_service_users_server_leaves_its_directory_alone(
    package: str,
    embedded_state_dir: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sudo sscl-daemon status`` while the daemon (its own user) is stopped.

    Both layouts: the package where the service's user reaches it (an install under
    /opt), and where it does not (a checkout under a 0700 directory, as ``make test`` in
    a private clone): then the binaries are copied beside the data, nothing else changes.
    """
    try:
        service = pwd.getpwnam("daemon")
    except KeyError:
        pytest.skip("no 'daemon' user to stand for the service's user")
    bin_dir: Path = request.getfixturevalue(package)
    monkeypatch.setattr(embedded, "_bin_dir", lambda: bin_dir)
    reachable = package == "public_install"
    embedded_state_dir.chmod(0o755)  # a service's state directory is on a reachable path
    root = embedded_state_dir / "postgres"
    (root / "data").mkdir(parents=True, mode=0o700)
    for made in (root, root / "data"):
        os.chown(made, service.pw_uid, service.pw_gid)
    before = mode(root)
    server = EmbeddedServer(root, settings=FAST_UNSAFE_SETTINGS)
    server.start()
    try:
        assert server.pid is not None
        assert os.stat(f"/proc/{server.pid}").st_uid == service.pw_uid
    finally:
        server.stop()
    assert root.stat().st_uid == service.pw_uid
    assert mode(root) == before
    assert (root / "data").stat().st_uid == service.pw_uid
    # A copy of the binaries only where the service's user could not reach the package.
    assert server.install_dir.exists() is not reachable
    if not reachable:
        assert server.bin_dir.is_relative_to(server.install_dir)
        assert mode(server.install_dir) == 0o755


@pytest.mark.skipif(not AS_ROOT, reason="needs root to run the daemon and another user")
def test_a_command_of_a_user_without_access_says_so_without_traceback(
    embedded_state_dir: Path,
) -> None:
    """``status`` by a user who may not read the daemon's state: one line, exit 2."""
    nobody = pwd.getpwnam("nobody")
    embedded_state_dir.chmod(0o755)
    state = embedded_state_dir / "state"
    config = embedded_state_dir / "config.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{state}"\n[writers.log]\ntype = "jsonl"\npath = "calls.jsonl"\n'
    )
    config.chmod(0o644)
    runtime = runtime_for(nobody.pw_uid, nobody.pw_gid, embedded_state_dir / "runtime")
    server = EmbeddedServer(state / "postgres", settings=FAST_UNSAFE_SETTINGS)
    server.start()
    try:
        done = subprocess.run(
            [runtime.python, "-m", "sscl_daemon", "status", "--config", str(config)],
            env={"PATH": "/usr/bin:/bin", **runtime.env},
            **as_user(nobody.pw_uid, nobody.pw_gid),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.stop()
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "permission denied reading the embedded PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr
