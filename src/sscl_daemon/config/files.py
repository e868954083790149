"""Checks on the files around the configuration: who can read the secrets, where state goes.

Where it sits: :func:`~.loader.load_config` asks :func:`exposure_warnings` about the file
it read and the credential files it opened, and ``run`` asks :func:`state_dir_problem`
before starting. Both return text for the admin (the commands print it) and never show a
secret.

A secret in a file every user can read is reported as a **warning**, not refused (unlike
ssh's private keys): by the time the daemon reads it the secret is already exposed, and
refusing to start would stop call logging over a permission bit while leaving the secret
where it is. The warning names the file, the keys and the ``chmod`` that fixes it, at every
start (the journal) and in ``check-config``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path


def _others_can_read(path: Path) -> int | None:
    """The file's permission bits when users other than its owner and group can read it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & stat.S_IROTH else None


def exposure_warnings(
    config_file: Path | None, inline_keys: Sequence[str], credential_files: Sequence[Path]
) -> list[str]:
    """One line per file holding a secret that every user of the machine can read."""
    warnings: list[str] = []
    mode = _others_can_read(config_file) if config_file is not None and inline_keys else None
    if config_file is not None and mode is not None:
        warnings.append(
            f"{config_file} holds secrets written inline ({', '.join(inline_keys)}) and every "
            f"user can read it (mode {mode:04o}): chmod o-r {config_file}, or move them to "
            "credential files (credential:NAME)"
        )
    for file in credential_files:
        mode = _others_can_read(file)
        if mode is not None:
            warnings.append(
                f"credential file {file} can be read by every user (mode {mode:04o}): "
                f"chmod 0600 {file}"
            )
    return warnings


def state_dir_problem(state_dir: Path) -> str | None:
    """Why the daemon cannot keep its state in ``state_dir`` (creating it if missing), or None."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return (
            f"cannot create the state directory {state_dir}: {exc.strerror}. Under systemd the "
            "unit's StateDirectory= creates it; otherwise create it for the user running the "
            "daemon, or set daemon.state_dir"
        )
    if not os.access(state_dir, os.W_OK | os.X_OK):
        return (
            f"the state directory {state_dir} is not writable by uid {os.geteuid()}: give it to "
            "the user running the daemon (chown), or set daemon.state_dir"
        )
    return None
