"""The running configuration as key paths and values, with every secret masked (pure).

The console's Configuration page shows what the daemon runs with (after
reloads), in the config file's own key paths (``writers.crm.url``). No value
can carry a secret onto the page: :class:`~sscl_daemon.config.Secret`
values are never revealed, only said to be set; a database DSN is shown as
its host, database and user; and every string passes through the log
redactor (:class:`sscl_daemon.logging.Redactor`) loaded with the
configuration's own secrets, which also masks tokens inside URLs.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from pathlib import Path

from sscl_daemon.config import DEFAULT_ACCOUNT, Secret, Settings
from sscl_daemon.logging import Redactor
from sscl_daemon.store.errors import dsn_target

SECRET_SET = "set (hidden)"
# Fields that are not keys of the file: names already in the key path, where the file
# came from, warnings of the load.
_NOT_KEYS = frozenset({"name", "source", "warnings"})
# Fields whose own fields sit directly under the parent in the file (a writer's options).
_FLATTENED = frozenset({"options"})


def _text(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, frozenset | set):
        return ", ".join(sorted(str(v) for v in value)) or "(none)"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} → {v}" for k, v in sorted(value.items())) or "(none)"
    return str(value) if value != "" else "(empty)"


def _walk(prefix: str, value: object) -> Iterator[tuple[str, object]]:
    if isinstance(value, Secret):
        yield prefix, SECRET_SET
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if f.name in _NOT_KEYS:
                continue
            key = prefix if f.name in _FLATTENED else f"{prefix}.{f.name}" if prefix else f.name
            yield from _walk(key, getattr(value, f.name))
    elif isinstance(value, tuple) and value and all(hasattr(v, "name") for v in value):
        for item in value:
            # The default account is a file's top-level sections (it has no [accounts.NAME]).
            top = prefix == "accounts" and item.name == DEFAULT_ACCOUNT
            yield from _walk("" if top else f"{prefix}.{item.name}", item)
    elif isinstance(value, tuple):
        yield prefix, ", ".join(_text(v) for v in value) or "(none)"
    else:
        yield prefix, value


def effective_settings(settings: Settings) -> list[tuple[str, str]]:
    """``(key path, shown value)`` for every setting, in the dataclasses' order."""
    redactor = Redactor(settings.secrets())
    shown: list[tuple[str, str]] = []
    for key, value in _walk("", settings):
        if key == "store.dsn" and isinstance(value, str) and value != "embedded":
            value = dsn_target(value).describe()
        text = value if value == SECRET_SET else redactor.redact_text(_text(value))
        shown.append((key, text))
    return shown
