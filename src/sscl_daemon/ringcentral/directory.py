"""Loads the account's extension list into the call core's `Directory`, and keeps it fresh.

The tracker and the policy need to know which extension ids are people (research: DESIGN
"Which extensions are people comes from the extension list"). The daemon calls `load` at start
and runs `keep_fresh` as a task: every `directory_refresh` seconds it reloads and hands the new
directory on; a failed reload keeps the previous one and is tried again later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
import structlog

from sscl_daemon.calls.directory import Directory, DirectoryError
from sscl_daemon.ringcentral.ratelimit import Sleep
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted

log = structlog.get_logger(__name__)


async def load_directory(rest: RestClient) -> Directory:
    """The current extension list as a `Directory`."""
    records = await rest.extensions()
    return Directory.from_api([msgspec.to_builtins(record) for record in records])


async def keep_fresh(
    rest: RestClient,
    interval: float,
    on_change: Callable[[Directory], None],
    *,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Reload every `interval` seconds forever; failures keep the previous directory.

    `AuthError` (credentials revoked) is not caught: it is fatal for the whole daemon.
    """
    while True:
        await sleep(interval)
        try:
            directory = await load_directory(rest)
        except (ApiError, RetriesExhausted, DirectoryError) as exc:
            log.warning("ringcentral.directory.reload_failed", error=str(exc))
            continue
        log.info("ringcentral.directory.reloaded", extensions=len(directory))
        on_change(directory)
