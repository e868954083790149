"""Writer factory: configured ``WriterSettings`` -> a live writer object.

The daemon calls :func:`build_writer` once per enabled writer with the shared aiohttp
session. Writer modules are imported lazily by name, so a CRM module that fails to import
breaks only its own writers, and the jsonl demo needs none of the CRM modules.
"""

from __future__ import annotations

import importlib
from typing import cast

import aiohttp

from sscl_daemon.config import WriterSettings, WriterType
from sscl_daemon.crm.base import Writer

# WriterType -> (module, class); every class takes (settings, session).
WRITER_CLASSES: dict[WriterType, tuple[str, str]] = {
    WriterType.HUBSPOT: ("sscl_daemon.crm.hubspot", "HubSpotWriter"),
    WriterType.PIPEDRIVE: ("sscl_daemon.crm.pipedrive", "PipedriveWriter"),
    WriterType.SALESFORCE: ("sscl_daemon.crm.salesforce", "SalesforceWriter"),
    WriterType.WEBHOOK: ("sscl_daemon.crm.webhook", "WebhookWriter"),
    WriterType.JSONL: ("sscl_daemon.crm.jsonl", "JsonlWriter"),
}


def build_writer(settings: WriterSettings, session: aiohttp.ClientSession) -> Writer:
    """Instantiate the writer class of ``settings.type``."""
    module_name, class_name = WRITER_CLASSES[settings.type]
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    return cast(Writer, cls(settings, session))
