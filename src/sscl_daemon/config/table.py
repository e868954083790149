"""Typed reading of one TOML table, collecting problems instead of raising.

Where it sits: :mod:`.loader` and :mod:`.writers` walk the decoded TOML document with a
:class:`Table` per section; each problem (wrong type, out of range, unknown key) is
recorded as a :class:`~.schema.ConfigIssue` with its key path, so ``check-config`` can
list every problem at once. Secret values are resolved through :mod:`.secrets`, only in
the parts of the file the command needs (:class:`~.secrets.Need`); relative paths are
resolved against the state directory.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from sscl_daemon.config.schema import ConfigIssue, Secret
from sscl_daemon.config.secrets import SecretSource, is_reference, resolve_secret

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")


@dataclass
class LoadContext:
    """What every table of one load shares: where secrets and relative paths come from."""

    issues: list[ConfigIssue] = field(default_factory=list)
    secrets: SecretSource = field(default_factory=SecretSource)
    # Relative paths in the file are taken relative to this directory (the state directory).
    base_dir: Path = field(default_factory=Path.cwd)
    # Key paths of secrets written inline in the file (the file must then be private).
    inline_secrets: list[str] = field(default_factory=list)
    # Credential files read outside systemd (each must be private).
    credential_files: list[Path] = field(default_factory=list)


class Table:
    """Reads typed values from one TOML table, recording problems instead of raising.

    ``resolve`` says whether the command needs this table's secrets: when it does not,
    an ``env:``/``credential:`` reference that cannot be resolved (or a missing required
    secret) is no problem and reads as an empty :class:`Secret`.
    """

    def __init__(
        self,
        data: Mapping[str, object],
        path: str,
        context: LoadContext,
        resolve: bool = True,
    ) -> None:
        self._data = data
        self._path = path
        self.context = context
        self._issues = context.issues
        self.resolve = resolve
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def problem(self, name: str, message: str) -> None:
        self._issues.append(ConfigIssue(self.key(name), message))

    def _get(self, name: str) -> object | None:
        self._seen.add(name)
        return self._data.get(name)

    def has(self, name: str) -> bool:
        return name in self._data

    def _typed(self, name: str, default: T, kind: type, label: str) -> T:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            self.problem(name, f"expected {label}, got {value!r}")
            return default
        return value  # type: ignore[return-value]

    def string(self, name: str, default: str) -> str:
        return self._typed(name, default, str, "a string")

    def boolean(self, name: str, default: bool) -> bool:
        return self._typed(name, default, bool, "true or false")

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._typed(name, default, int, "an integer")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and <= {maximum}" if maximum is not None else ""
            self.problem(name, f"{value!r} is out of range: must be >= {minimum}{upper}")
            return default
        return value

    def number(self, name: str, default: float, minimum: float = 0.0) -> float:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(name, f"expected a number of seconds, got {value!r}")
            return default
        if value < minimum:
            self.problem(name, f"{value!r} is out of range: must be >= {minimum}")
            return default
        return float(value)

    def choice(self, name: str, default: E) -> E:
        enum_type = type(default)
        value = self._get(name)
        if value is None:
            return default
        try:
            return enum_type(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in enum_type)
            self.problem(name, f"{value!r} is not allowed; use one of {allowed}")
            return default

    def string_list(self, name: str) -> list[str]:
        """A TOML list of strings, or one comma-separated string."""
        value = self._get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
            return [str(v).strip() for v in value if str(v).strip()]
        self.problem(name, f"expected a list of strings or a comma-separated string, got {value!r}")
        return []

    def url(self, name: str, default: str) -> str:
        value = self.string(name, default).rstrip("/")
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.problem(name, f"{value!r} is not an http(s) URL")
        return value

    def secret(self, name: str, required: bool = False) -> Secret | None:
        """A secret value, inline, ``env:NAME`` or ``credential:NAME``."""
        value = self._get(name)
        if value is None or value == "":
            if required and self.resolve:
                self.problem(
                    name,
                    "is required: give the value inline, as 'env:NAME' or as 'credential:NAME'",
                )
            return Secret("") if required else None
        if not isinstance(value, str):
            self.problem(name, "expected a string (inline, 'env:NAME' or 'credential:NAME')")
            return None
        if not is_reference(value):
            self.context.inline_secrets.append(self.key(name))
            return Secret(value)
        if not self.resolve:
            return Secret("")  # not needed by this command: not even looked up
        source = self.context.secrets
        resolved = resolve_secret(value, self.key(name), source, self._issues)
        if resolved is None:
            return None
        if value.startswith("credential:") and source.directory and not source.from_systemd:
            self.context.credential_files.append(source.directory / value.split(":", 1)[1])
        return Secret(resolved)

    def path(self, name: str) -> Path | None:
        """A file path; a relative one is taken relative to the state directory."""
        value = self.string(name, "")
        if not value:
            return None
        return self.context.base_dir / Path(value).expanduser()

    def table(self, name: str, resolve: bool | None = None) -> Table:
        """The sub-table ``name``; ``resolve`` (default: this table's) as in :class:`Table`."""
        value = self._get(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(name, f"expected a table ([{self.key(name)}]), got {value!r}")
            value = {}
        return Table(
            value, self.key(name), self.context, self.resolve if resolve is None else resolve
        )

    def consume(self, name: str) -> str:
        """Mark a free-form key (a name chosen by the user) as known."""
        self._seen.add(name)
        return name

    def items(self) -> list[tuple[str, object]]:
        return list(self._data.items())

    def finish(self) -> None:
        """Report every key of the table that the parser did not ask for."""
        for name in self._data:
            if name in self._seen:
                continue
            close = difflib.get_close_matches(name, sorted(self._seen), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else "check config.example.toml"
            self.problem(name, f"unknown key ({hint})")
