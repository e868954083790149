"""A Python runtime an unprivileged user can execute, for tests that run the daemon as one.

The tests' interpreter and virtual environment may sit where another user cannot enter
(a pyenv under ``/root``, a clone in a 0700 directory). :func:`runtime_for` then builds a
world-readable tree in a temporary directory, hard-linked (copied across file systems or
when a file is not world-readable) from the interpreter's standard library, the virtual
environment's ``site-packages`` and this checkout's ``src``, and says how to run it. An
installed package (``pip install``, as the README's install does) needs none of this.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True)
class Runtime:
    """How to start ``python -m sscl_daemon`` as the user the runtime was made for."""

    python: str
    env: dict[str, str] = field(default_factory=dict)


def as_user(uid: int, gid: int) -> dict[str, Any]:
    """``subprocess`` arguments that run the child as ``uid``/``gid`` with no other group.

    Only root may switch (an ordinary user runs the child as itself: the user asked for).
    """
    if os.geteuid() != 0:
        return {}
    return {"user": uid, "group": gid, "extra_groups": []}


def _usable_by(uid: int, gid: int, python: str, env: dict[str, str]) -> bool:
    try:
        probe = subprocess.run(
            [python, "-c", "import sscl_daemon.commands.run"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
            **as_user(uid, gid),
            cwd="/",
            capture_output=True,
            timeout=60,
            check=False,
        )
    except PermissionError:
        return False  # the interpreter itself is out of the user's reach
    return probe.returncode == 0


def _place(origin: Path, target: Path) -> None:
    """``origin`` at ``target``, hard-linked when others may read it, else a readable copy."""
    mode = origin.stat().st_mode
    if mode & stat.S_IROTH:
        try:
            os.link(origin, target)
            return
        except OSError:
            pass  # another file system: copy
    shutil.copy2(origin, target)
    target.chmod(stat.S_IMODE(mode) | 0o444)


def _open_dir(path: Path) -> None:
    """``path`` (and missing parents) as a 0755 directory, whatever the umask.

    ``mkdir``'s mode is masked by the umask, and under a private one (0077, as a CI
    runner may set) the tree would be root's alone.
    """
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)


def _link_tree(source: Path, target: Path, skip: frozenset[str] = frozenset()) -> None:
    """``source`` under ``target``: directories 0755, files placed by :func:`_place`."""
    for directory, dirnames, filenames in os.walk(source):
        dirnames[:] = [d for d in dirnames if d not in skip]
        here = target / Path(directory).relative_to(source)
        _open_dir(here)
        for name in filenames:
            origin = Path(directory) / name
            if origin.is_symlink():
                (here / name).symlink_to(os.readlink(origin))
            else:
                _place(origin, here / name)


def runtime_for(uid: int, gid: int, root: Path) -> Runtime:
    """A runtime ``uid``/``gid`` can execute: this one when it can, else one built in ``root``."""
    src_path = {"PYTHONPATH": str(SRC)}
    if _usable_by(uid, gid, sys.executable, src_path):
        return Runtime(sys.executable, src_path)
    _open_dir(root)
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    binary = root / "bin" / version
    _open_dir(binary.parent)
    _place(Path(sys._base_executable).resolve(), binary)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    _open_dir(root / "lib")
    _link_tree(stdlib, root / "lib" / version, skip=frozenset({"site-packages", "test"}))
    for shared in (base / "lib").glob("libpython*"):
        if shared.is_file() and not shared.is_symlink():
            _place(shared, root / "lib" / shared.name)
    _link_tree(Path(sysconfig.get_paths()["purelib"]), root / "site-packages")
    _link_tree(SRC, root / "src", skip=frozenset({"__pycache__"}))
    env = {
        "PYTHONPATH": f"{root / 'src'}:{root / 'site-packages'}",
        # The interpreter may name its libpython by an absolute path the user cannot reach.
        "LD_LIBRARY_PATH": str(root / "lib"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    runtime = Runtime(str(binary), env)
    if not _usable_by(uid, gid, runtime.python, env):
        raise RuntimeError(f"the runtime built in {root} does not start for uid {uid}")
    return runtime
