"""Loads the account's extension list into the call core's `Directory`, and keeps it fresh.

The tracker and the policy need to know which extension ids are people (research: DESIGN
"Which extensions are people comes from the extension list"). The daemon starts with the
directory it stored last (`stored_directory`), so that a throttled or paused extension-list
read never holds the subscription back, and runs `keep_fresh` as a task: a first load at once
when there is no fresh one, then every `directory_refresh` seconds; each load is handed on
(and its records kept, for the next start); a failed load keeps the previous directory and
is tried again after a jittered, growing delay (at most the refresh interval).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from sscl_daemon.calls.directory import Directory, DirectoryError
from sscl_daemon.ringcentral.ratelimit import Sleep
from sscl_daemon.ringcentral.records import ExtensionRecord
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted

log = structlog.get_logger(__name__)

# The first retry of a failed load; each failure doubles it, up to the refresh interval.
RETRY_INITIAL = 5.0

_RECORDS = msgspec.json.Decoder(list[ExtensionRecord])


def _directory(records: list[ExtensionRecord]) -> Directory:
    return Directory.from_api([msgspec.to_builtins(record) for record in records])


async def load_directory(rest: RestClient) -> Directory:
    """The current extension list as a `Directory`."""
    return _directory(await rest.extensions())


def stored_directory(data: bytes) -> Directory:
    """The directory of records kept by `keep_fresh`; `DirectoryError` if they do not read."""
    try:
        return _directory(_RECORDS.decode(data))
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DirectoryError(f"the stored extension directory is unreadable: {exc}") from None


async def keep_fresh(
    rest: RestClient,
    interval: float,
    on_change: Callable[[Directory], None],
    *,
    keep: Callable[[bytes], Awaitable[None]] | None = None,
    first_delay: float | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> None:
    """Load after `first_delay` (default `interval`), then every `interval` seconds, forever.

    Each directory loaded goes to `on_change`, and its records (JSON) to `keep`. A failed
    load keeps the previous directory. `AuthError` (credentials revoked) is not caught: it
    is fatal for the whole daemon.
    """
    rng = rng or random.Random()
    delay = interval if first_delay is None else first_delay
    failures = 0
    while True:
        await sleep(delay)
        try:
            records = await rest.extensions()
            directory = _directory(records)
        except (ApiError, RetriesExhausted, DirectoryError) as exc:
            failures += 1
            delay = min(interval, RETRY_INITIAL * 2.0 ** (failures - 1)) * rng.uniform(0.5, 1.0)
            log.warning(
                "ringcentral.directory.load_failed", error=str(exc), retry_in=round(delay, 1)
            )
            continue
        failures, delay = 0, interval
        log.info("ringcentral.directory.loaded", extensions=len(directory))
        on_change(directory)
        if keep is not None:
            await keep(msgspec.json.encode(records))
