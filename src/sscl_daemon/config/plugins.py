"""Writer plug-ins as the configuration sees them: config ``type`` -> :class:`WriterPlugin`.

Where it sits: :mod:`.writers` asks :func:`plugin` for the plug-in of each
``[writers.NAME]`` table's ``type`` and lets it read its own keys through an
:class:`OptionReader` (the loader's table reader), so the configuration knows every writer
type without importing any writer; ``crm/registry.py`` builds the writers from the same
plug-ins. ``crm/base.py`` re-exports the two types for plug-in authors.

Every writer type is an entry point of the group :data:`GROUP` whose value points at a
``WriterPlugin`` (``module:attribute``). The built-in writers are listed in :data:`BUILTIN`
with the same kind of value (``pyproject.toml`` declares them too), so they load exactly
like a third party's: ``pip install sscl-writer-foo`` adds ``type = "foo"`` without a change
here. A plug-in module is imported when a configuration names its type, so a writer that
fails to import breaks only its own writers (reported under the writer's ``type`` key).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol

from sscl_daemon.config.schema import Secret
from sscl_daemon.errors import SsclError

GROUP = "sscl_daemon.writers"

# type -> entry-point value of the built-in writers (pyproject.toml declares the same).
BUILTIN: dict[str, str] = {
    "hubspot": "sscl_daemon.crm.builtins:HUBSPOT",
    "pipedrive": "sscl_daemon.crm.builtins:PIPEDRIVE",
    "salesforce": "sscl_daemon.crm.builtins:SALESFORCE",
    "webhook": "sscl_daemon.crm.builtins:WEBHOOK",
    "jsonl": "sscl_daemon.crm.builtins:JSONL",
    "zoho": "sscl_daemon.crm.zoho:PLUGIN",
    "dynamics": "sscl_daemon.crm.dynamics:PLUGIN",
    "clio": "sscl_daemon.crm.clio:PLUGIN",
    "bullhorn": "sscl_daemon.crm.bullhorn:PLUGIN",
}


class OptionReader(Protocol):
    """One ``[writers.NAME]`` table as a plug-in reads it (the config loader's table reader).

    Every getter records a problem under the key's full path (``writers.NAME.key``) instead
    of raising and returns the default; keys nobody read are reported as unknown once the
    plug-in's parser returns. ``secret`` resolves ``env:``/``credential:`` references.
    """

    def key(self, name: str) -> str: ...

    def problem(self, name: str, message: str) -> None: ...

    def has(self, name: str) -> bool: ...

    def string(self, name: str, default: str) -> str: ...

    def boolean(self, name: str, default: bool) -> bool: ...

    def integer(
        self, name: str, default: int, minimum: int = 0, maximum: int | None = None
    ) -> int: ...

    def number(self, name: str, default: float, minimum: float = 0.0) -> float: ...

    def url(self, name: str, default: str) -> str: ...

    def string_list(self, name: str) -> list[str]: ...

    def secret(self, name: str, required: bool = False) -> Secret | None: ...

    # A file path; a relative one is taken relative to the state directory.
    def path(self, name: str) -> Path | None: ...


@dataclass(frozen=True)
class WriterPlugin:
    """A writer type: what the ``sscl_daemon.writers`` entry point named ``type`` points at.

    ``parse_options`` reads the type's own keys (the common ones -- ``enabled``,
    ``rate_limit``, ``concurrency``, ``batch_size``, ``timeout``, retries and, with
    ``contacts``, the contact and owner keys -- are read by the daemon) and returns the
    options object, or None after recording a problem. ``build(settings, session)`` makes
    the writer (a ``crm.base.Writer``) from the ``WriterSettings`` and the daemon's shared
    ``aiohttp.ClientSession``. ``label`` names the CRM in logs, reasons and documentation.
    """

    type: str
    label: str
    parse_options: Callable[[OptionReader], object | None]
    build: Callable[[Any, Any], Any]
    contacts: bool = True


class PluginError(SsclError):
    """A writer type that is unknown, or whose plug-in cannot be loaded (message says which)."""


@dataclass(frozen=True)
class Source:
    """Where a writer type comes from: its entry point and the distribution that ships it."""

    entry_point: EntryPoint
    distribution: str


@dataclass(frozen=True)
class Ignored:
    """An installed plug-in left out: its writer type is taken (``kept_by`` keeps it)."""

    distribution: str
    writer_type: str
    kept_by: str


@functools.cache
def _scan() -> tuple[dict[str, Source], tuple[Ignored, ...]]:
    found = {
        name: Source(EntryPoint(name, value, GROUP), "sscl-daemon")
        for name, value in BUILTIN.items()
    }
    ignored: list[Ignored] = []
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        if ep.name in BUILTIN and ep.value == BUILTIN[ep.name]:
            continue  # this package's own entry point
        if ep.name in found:
            ignored.append(Ignored(dist, ep.name, found[ep.name].distribution))
            continue
        found[ep.name] = Source(ep, dist)
    return found, tuple(ignored)


def sources() -> dict[str, Source]:
    """Every writer type: the built-ins, then installed plug-ins (cached; see :func:`rescan`).

    A plug-in may not take a type already provided: the built-in or first plug-in keeps it.
    """
    return _scan()[0]


def ignored() -> tuple[Ignored, ...]:
    """The plug-ins :func:`sources` left out. The scan runs while the configuration is
    parsed, before logging is set up, so the daemon logs these once it is."""
    return _scan()[1]


def rescan() -> None:
    """Forget the discovered plug-ins (after installing one into a running interpreter)."""
    _scan.cache_clear()
    plugin.cache_clear()


def available() -> list[str]:
    return sorted(sources())


@functools.cache
def plugin(name: str) -> WriterPlugin:
    """The plug-in of writer type ``name``; :class:`PluginError` says why there is none."""
    source = sources().get(name)
    if source is None:
        listed = ", ".join(repr(n) for n in available())
        raise PluginError(f"{name!r} is not a writer type; use one of {listed}")
    where = f"{source.entry_point.value} (package {source.distribution})"
    try:
        loaded = source.entry_point.load()
    except Exception as exc:  # a plug-in's import may fail in any way; report, never crash
        raise PluginError(
            f"writer type {name!r} comes from {where}, which failed to load:"
            f" {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(loaded, WriterPlugin):
        raise PluginError(f"writer type {name!r}: {where} is not a WriterPlugin")
    if loaded.type != name:
        raise PluginError(
            f"writer type {name!r}: {where} declares type {loaded.type!r}; the entry point's"
            " name and the plug-in's type must be the same"
        )
    return loaded
