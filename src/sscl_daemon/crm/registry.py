"""Writer factory: configured ``WriterSettings`` -> a live writer, through its plug-in.

Where it sits: the daemon calls :func:`build_writer` once per enabled writer with the shared
aiohttp session. Which plug-in serves a ``type`` -- built-in or installed through the
``sscl_daemon.writers`` entry points -- is decided in ``config/plugins.py``, where the
configuration already looked it up to read the writer's keys; its names are re-exported
here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import aiohttp

from sscl_daemon.config.plugins import (
    BUILTIN,
    GROUP,
    PluginError,
    Source,
    available,
    plugin,
    rescan,
    sources,
)
from sscl_daemon.crm.base import Writer

if TYPE_CHECKING:
    from sscl_daemon.config import WriterSettings
    from sscl_daemon.crm.wiring import VaultFor

__all__ = [
    "BUILTIN",
    "GROUP",
    "PluginError",
    "Source",
    "available",
    "build_writer",
    "plugin",
    "rescan",
    "sources",
]


def build_writer(
    settings: WriterSettings, session: aiohttp.ClientSession, vaults: VaultFor | None = None
) -> Writer:
    """Instantiate the writer of ``settings.type``; an OAuth writer keeps its rotated
    refresh tokens in ``vaults`` (the daemon passes its store's)."""
    writer = cast(Writer, plugin(str(settings.type)).build(settings, session))
    if vaults is not None:
        from sscl_daemon.crm.wiring import keep_rotated_tokens

        keep_rotated_tokens(writer, settings.name, vaults)
    return writer
