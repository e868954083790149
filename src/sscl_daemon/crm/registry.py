"""Writer plug-ins: config ``type`` -> :class:`~sscl_daemon.crm.base.WriterPlugin` -> a live writer.

Where it sits: the config loader asks :func:`plugin` for the plug-in of each
``[writers.NAME]`` table's ``type`` (to read its own keys), and the daemon calls
:func:`build_writer` once per enabled writer with the shared aiohttp session.

Every writer type is an entry point of the group :data:`GROUP` whose value points at a
``WriterPlugin`` (``module:attribute``). The built-in writers are listed in
:data:`BUILTIN` with the same kind of value (and declared in ``pyproject.toml`` too), so
they load exactly like a third party's: ``pip install sscl-writer-foo`` adds ``type =
"foo"`` without a change here. A plug-in module is imported when a configuration names its
type, so a writer that fails to import breaks only its own writers (reported under the
writer's ``type`` key), and the jsonl demo needs none of the CRM modules.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

import aiohttp

from sscl_daemon.crm.base import Writer, WriterPlugin
from sscl_daemon.logging import get_logger

if TYPE_CHECKING:
    from sscl_daemon.config import WriterSettings
    from sscl_daemon.crm.wiring import VaultFor

log = get_logger(__name__)

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


class PluginError(Exception):
    """A writer type that is unknown, or whose plug-in cannot be loaded (message says which)."""


@dataclass(frozen=True)
class Source:
    """Where a writer type comes from: its entry point and the distribution that ships it."""

    entry_point: EntryPoint
    distribution: str


@functools.cache
def sources() -> dict[str, Source]:
    """Every writer type: the built-ins, then installed plug-ins (cached; see :func:`rescan`).

    A plug-in may not take a built-in type's name: the built-in keeps it (logged once).
    """
    found = {
        name: Source(EntryPoint(name, value, GROUP), "sscl-daemon")
        for name, value in BUILTIN.items()
    }
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        if ep.name in BUILTIN:
            if ep.value != BUILTIN[ep.name]:
                log.warning(
                    "writer plug-in ignored: its type is a built-in one",
                    type=ep.name,
                    distribution=dist,
                )
            continue
        if ep.name in found:
            log.warning(
                "writer plug-in ignored: another installed package provides the same type",
                type=ep.name,
                distribution=dist,
                kept=found[ep.name].distribution,
            )
            continue
        found[ep.name] = Source(ep, dist)
    return found


def rescan() -> None:
    """Forget the discovered plug-ins (after installing one into a running interpreter)."""
    sources.cache_clear()
    _load.cache_clear()


def available() -> list[str]:
    return sorted(sources())


@functools.cache
def _load(name: str) -> WriterPlugin:
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


def plugin(name: str) -> WriterPlugin:
    """The plug-in of writer type ``name``; :class:`PluginError` says why there is none."""
    return _load(name)


def build_writer(
    settings: WriterSettings, session: aiohttp.ClientSession, vaults: VaultFor | None = None
) -> Writer:
    """Instantiate the writer of ``settings.type``; an OAuth writer keeps its rotated
    refresh tokens in ``vaults`` (the daemon passes its store's)."""
    writer = plugin(str(settings.type)).build(settings, session)
    if vaults is not None:
        from sscl_daemon.crm.wiring import keep_rotated_tokens

        keep_rotated_tokens(writer, settings.name, vaults)
    return writer
