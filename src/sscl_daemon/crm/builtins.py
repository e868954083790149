"""The plug-ins of the writers the daemon was born with (registry -> here -> writer modules).

HubSpot, Pipedrive, Salesforce, the signed webhook and jsonl are registered like any
third-party writer (``crm/registry.py``); their option parsers stay with the configuration
(``config/writers.py``), and each writer module is imported only when a configuration
uses it.
"""

from __future__ import annotations

import importlib
from typing import Final, cast

import aiohttp

from sscl_daemon.config import WriterSettings
from sscl_daemon.config import writers as options
from sscl_daemon.crm.base import Writer, WriterFactory, WriterPlugin


def _lazy(module: str, cls: str) -> WriterFactory:
    def build(settings: WriterSettings, session: aiohttp.ClientSession) -> Writer:
        return cast(Writer, getattr(importlib.import_module(module), cls)(settings, session))

    return build


HUBSPOT: Final = WriterPlugin(
    "hubspot", "HubSpot", options.hubspot, _lazy("sscl_daemon.crm.hubspot", "HubSpotWriter")
)
PIPEDRIVE: Final = WriterPlugin(
    "pipedrive",
    "Pipedrive",
    options.pipedrive,
    # Call logs or activities, as the writer's log_as says.
    _lazy("sscl_daemon.crm.pipedrive_activities", "build"),
)
SALESFORCE: Final = WriterPlugin(
    "salesforce",
    "Salesforce",
    options.salesforce,
    _lazy("sscl_daemon.crm.salesforce", "SalesforceWriter"),
)
WEBHOOK: Final = WriterPlugin(
    "webhook",
    "webhook",
    options.webhook,
    _lazy("sscl_daemon.crm.webhook", "WebhookWriter"),
    contacts=False,
)
JSONL: Final = WriterPlugin(
    "jsonl", "jsonl", options.jsonl, _lazy("sscl_daemon.crm.jsonl", "JsonlWriter"), contacts=False
)
