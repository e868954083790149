"""The embedded server's process and its owner lock (``store/embedded.py`` -> here).

One process owns a server: it holds ``server.lock`` (an ``flock`` the kernel drops when the
owner dies, however it dies) and starts ``postgres`` as its direct child, which on Linux gets
``SIGINT`` when its parent dies. Here are the pieces of that: the lock taken or probed, the
server's log, waiting until ``postmaster.pid`` says ready, stopping it (fast, immediate,
kill), and stopping a server a dead owner left behind. All block; ``EmbeddedServer`` runs
them in a thread from its async API.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from sscl_daemon.store.errors import StoreError

_PR_SET_PDEATHSIG = 1
# The server log is appended to across starts and rotated once at start beyond this.
_MAX_LOG_BYTES = 10 * 1024 * 1024
# A probe of the owner lock (lock_holder) holds it for microseconds; a starting owner
# retries that long before calling the server in use.
_LOCK_RETRY = 0.5


def set_parent_death_signal() -> None:
    # Runs in the child between fork and exec (after the uid change, which would clear it).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)


def process_alive(pid: int) -> bool:
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


def is_our_postmaster(pid: int, data_dir: Path) -> bool:
    if not process_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():
        try:
            return str(data_dir).encode() in cmdline.read_bytes()
        except OSError:
            return False
    # Without /proc we cannot tell; the owner lock says no live owner uses it, so assume ours.
    return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.02)
    return not process_alive(pid)


def stop_orphan(pid: int) -> None:
    """Stop a server left running by a dead owner: fast, then immediate, then kill."""
    for sig, grace in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, grace):
            return
    raise StoreError(f"a leftover PostgreSQL server (pid {pid}) does not stop")


def read_postmaster_pid(data_dir: Path) -> list[str] | None:
    try:
        return (data_dir / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None


# ---- the owner lock ----------------------------------------------------------------------


def lock_holder(lock_path: Path) -> int | None:
    """The pid written in a held owner lock, 0 when not readable yet, None when not held.

    A :class:`PermissionError` (the lock belongs to another user) is the caller's to say.
    """
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW)
    except PermissionError:
        raise
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


def take_lock(lock_path: Path, root: Path) -> int:
    """Hold the owner lock of the server in ``root`` (the file then names our pid); returns
    its descriptor."""
    deadline = time.monotonic() + _LOCK_RETRY
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            holder = lock_holder(lock_path) or "unknown"
            raise StoreError(
                f"the embedded PostgreSQL in {root} is in use by another process "
                f"(pid {holder}); stop it, or give this one its own daemon.state_dir"
            ) from None
        # The previous owner may have removed the file between our open and our lock.
        if os.path.exists(lock_path) and os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)
    os.fchmod(fd, 0o600)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


# ---- the server's log and life -----------------------------------------------------------


def open_log(log_path: Path) -> IO[bytes]:
    """The server log, private to the owner, rotated once at start beyond its cap."""
    with contextlib.suppress(FileNotFoundError):
        if log_path.stat().st_size > _MAX_LOG_BYTES:
            log_path.replace(log_path.with_name(log_path.name + ".1"))
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # a log made by an older version was 0644
    return os.fdopen(fd, "ab")


def log_tail(log_path: Path, lines: int = 15) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.strip().splitlines()[-lines:])


def wait_ready(
    process: subprocess.Popen[bytes], data_dir: Path, log_path: Path, timeout: float
) -> None:
    """Until ``postmaster.pid`` names this process ready; the log's end in the error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StoreError(
                f"the embedded PostgreSQL in {data_dir} exited at start "
                f"(code {process.returncode}); its log {log_path} ends with:\n"
                f"{log_tail(log_path)}"
            )
        lines = read_postmaster_pid(data_dir)
        if (
            lines is not None
            and len(lines) >= 8
            and lines[0].strip() == str(process.pid)
            and lines[7].strip() == "ready"
        ):
            return
        time.sleep(0.01)
    raise StoreError(
        f"the embedded PostgreSQL in {data_dir} was not ready within "
        f"{timeout:.0f} s; its log {log_path} ends with:\n{log_tail(log_path)}"
    )


def terminate(process: subprocess.Popen[bytes], stop_timeout: float) -> None:
    """Fast shutdown, then immediate, then kill; until the server has exited."""
    for sig, grace in ((signal.SIGINT, stop_timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    if process.poll() is None:
        raise StoreError(f"the embedded PostgreSQL (pid {process.pid}) does not stop")
