"""Secret references in the configuration: inline, ``env:NAME`` or ``credential:NAME``.

Where it sits: :class:`~.table.Table` calls :func:`resolve_secret` for each secret key
while the file is loaded; the value ends up in a :class:`~.schema.Secret`, whose repr
never shows it. A reference that cannot be resolved is a problem recorded with its key
path, never an exception, so every problem of the file is listed at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from sscl_daemon.config.schema import ConfigIssue


def resolve_secret(value: str, path: str, issues: list[ConfigIssue]) -> str | None:
    """The value ``value`` refers to, or None with the reason appended to ``issues``."""
    if value.startswith("env:"):
        name = value[4:]
        resolved = os.environ.get(name)
        if not resolved:
            issues.append(ConfigIssue(path, f"environment variable {name} is not set or empty"))
        return resolved or None
    if value.startswith("credential:"):
        name = value[len("credential:") :]
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            issues.append(
                ConfigIssue(
                    path,
                    f"credential {name!r} requested but $CREDENTIALS_DIRECTORY is not set "
                    "(use LoadCredential= in the systemd unit)",
                )
            )
            return None
        try:
            return (Path(directory) / name).read_text().strip()
        except OSError as exc:
            issues.append(
                ConfigIssue(
                    path, f"cannot read credential {name!r} from {directory}: {exc.strerror}"
                )
            )
            return None
    return value
