"""Secret references in the configuration: inline, ``env:NAME`` or ``credential:NAME``.

Where it sits: :class:`~.table.Table` calls :func:`resolve_secret` for each secret key of
the parts of the file a command needs (:class:`Need`) while the file is loaded; the value
ends up in a :class:`~.schema.Secret`, whose repr never shows it. A reference that cannot
be resolved is a problem recorded with its key path, never an exception, so every problem
of the file is listed at once.

``credential:NAME`` is the file NAME in systemd's ``$CREDENTIALS_DIRECTORY`` (the unit's
``LoadCredential=``) when that is set, else in the credentials directory
(``daemon.credentials_dir``, default ``/etc/sscl-daemon/credentials``: the files the unit
loads), so a command run from an admin shell (``sudo sscl-daemon status``) reads the
same secrets as the service.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from sscl_daemon.config.schema import ConfigIssue

# systemd sets it for a unit with LoadCredential=; it then takes precedence.
SYSTEMD_CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


class Need(enum.Flag):
    """The parts of the configuration whose secrets a command uses."""

    NONE = 0
    RINGCENTRAL = enum.auto()  # the RingCentral app's client secret and JWT (and client id)
    WRITERS = enum.auto()  # CRM tokens, OAuth clients, webhook signing secrets
    ADMIN = enum.auto()  # admin.token
    STORE = enum.auto()  # store.password
    ALL = RINGCENTRAL | WRITERS | ADMIN | STORE


@dataclass(frozen=True)
class SecretSource:
    """Where ``credential:NAME`` files are read from, and why (for error messages)."""

    directory: Path | None = None  # None: the credentials directory is not known yet
    from_systemd: bool = False


def credential_source(configured: Path) -> SecretSource:
    """systemd's ``$CREDENTIALS_DIRECTORY`` when set, else the configured directory."""
    systemd = os.environ.get(SYSTEMD_CREDENTIALS_ENV)
    if systemd:
        return SecretSource(Path(systemd), from_systemd=True)
    return SecretSource(configured)


def is_reference(value: str) -> bool:
    """True for ``env:NAME`` and ``credential:NAME``; anything else is an inline secret."""
    return value.startswith(("env:", "credential:"))


def resolve_secret(
    value: str, path: str, source: SecretSource, issues: list[ConfigIssue]
) -> str | None:
    """The value ``value`` refers to, or None with the reason appended to ``issues``."""
    if value.startswith("env:"):
        name = value[4:]
        resolved = os.environ.get(name)
        if not resolved:
            issues.append(ConfigIssue(path, f"environment variable {name} is not set or empty"))
        return resolved or None
    if value.startswith("credential:"):
        return _credential(value[len("credential:") :], path, source, issues)
    return value


def _credential(
    name: str, path: str, source: SecretSource, issues: list[ConfigIssue]
) -> str | None:
    if not name or "/" in name or name in (".", ".."):
        issues.append(ConfigIssue(path, f"{name!r} is not a credential name (a file name)"))
        return None
    if source.directory is None:
        issues.append(ConfigIssue(path, "credentials cannot be used in this part of the file"))
        return None
    file = source.directory / name
    try:
        return file.read_text().strip()
    except OSError as exc:
        if source.from_systemd:
            hint = f"add LoadCredential={name}:/path/to/file to the unit"
        elif isinstance(exc, PermissionError):
            hint = "run the command as root (sudo) or as the service user"
        else:
            hint = f"write the secret to {file} (mode 0600) or set daemon.credentials_dir"
        issues.append(
            ConfigIssue(
                path, f"cannot read credential {name!r} from {file}: {exc.strerror}; {hint}"
            )
        )
        return None
