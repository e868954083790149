"""Writer factory: configured ``WriterSettings`` -> a live writer object.

The daemon calls :func:`build_writer` once per enabled writer with the shared aiohttp
session. Writer modules are imported lazily by name, so a CRM module that fails to import
breaks only its own writers, and the jsonl demo needs none of the CRM modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

import aiohttp

from sscl_daemon.config import WriterSettings, WriterType
from sscl_daemon.crm.base import Writer

if TYPE_CHECKING:
    from sscl_daemon.crm.wiring import VaultFor

# WriterType -> (module, class); every class takes (settings, session).
WRITER_CLASSES: dict[WriterType, tuple[str, str]] = {
    WriterType.HUBSPOT: ("sscl_daemon.crm.hubspot", "HubSpotWriter"),
    WriterType.PIPEDRIVE: ("sscl_daemon.crm.pipedrive", "PipedriveWriter"),
    WriterType.SALESFORCE: ("sscl_daemon.crm.salesforce", "SalesforceWriter"),
    WriterType.WEBHOOK: ("sscl_daemon.crm.webhook", "WebhookWriter"),
    WriterType.JSONL: ("sscl_daemon.crm.jsonl", "JsonlWriter"),
}


def build_writer(
    settings: WriterSettings, session: aiohttp.ClientSession, vaults: VaultFor | None = None
) -> Writer:
    """Instantiate the writer class of ``settings.type``; an OAuth writer keeps its rotated
    refresh tokens in ``vaults`` (the daemon passes its store's)."""
    module_name, class_name = WRITER_CLASSES[settings.type]
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    writer = cast(Writer, cls(settings, session))
    if vaults is not None:
        from sscl_daemon.crm.wiring import keep_rotated_tokens

        keep_rotated_tokens(writer, settings.name, vaults)
    return writer
