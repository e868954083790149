"""Typed reading of one TOML table, collecting problems instead of raising.

Where it sits: :mod:`.loader` and :mod:`.writers` walk the decoded TOML document with a
:class:`Table` per section; each problem (wrong type, out of range, unknown key) is
recorded as a :class:`~.schema.ConfigIssue` with its key path, so ``check-config`` can
list every problem at once. Secret values are resolved through :mod:`.secrets`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from sscl_daemon.config.schema import ConfigIssue, Secret
from sscl_daemon.config.secrets import resolve_secret

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")


class Table:
    """Reads typed values from one TOML table, recording problems instead of raising."""

    def __init__(self, data: Mapping[str, object], path: str, issues: list[ConfigIssue]) -> None:
        self._data = data
        self._path = path
        self._issues = issues
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

    def secret(self, name: str, required: bool = False, resolve: bool = True) -> Secret | None:
        """A secret value; with ``resolve=False`` an unset ``env:``/``credential:`` is no error."""
        value = self._get(name)
        if value is None or value == "":
            if required:
                self.problem(
                    name,
                    "is required: give the value inline, as 'env:NAME' or as 'credential:NAME'",
                )
            return None
        if not isinstance(value, str):
            self.problem(name, "expected a string (inline, 'env:NAME' or 'credential:NAME')")
            return None
        issues: list[ConfigIssue] = []
        resolved = resolve_secret(value, self.key(name), issues)
        if resolve:
            self._issues.extend(issues)
        return None if resolved is None else Secret(resolved)

    def table(self, name: str) -> Table:
        value = self._get(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(name, f"expected a table ([{self.key(name)}]), got {value!r}")
            value = {}
        return Table(value, self.key(name), self._issues)

    def consume(self, name: str) -> str:
        """Mark a free-form key (a name chosen by the user) as known."""
        self._seen.add(name)
        return name

    def items(self) -> list[tuple[str, object]]:
        return list(self._data.items())

    def finish(self) -> None:
        for name in self._data:
            if name not in self._seen:
                self.problem(name, "unknown key (check the spelling against config.example.toml)")
