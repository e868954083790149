"""Loads the account's extension list into the call core's `Directory`, and keeps it fresh.

The tracker and the policy need to know which extension ids are people (research: DESIGN
"Which extensions are people comes from the extension list"). The daemon starts with the
directory it stored last (`stored_directory`), so that a throttled or paused extension-list
read never holds the subscription back, and runs `keep_fresh` as a task: a first load at once
when there is no fresh one, then every `directory_refresh` seconds; each load is handed on
(and its records kept, for the next start); a failed load keeps the previous directory and
is tried again after a jittered, growing delay (at most the refresh interval).

Each user's own time zone (issue 15: times in the handling user's zone) is in its regional
settings, which the extension list leaves out: only "Get Extension" (``GET
.../extension/{id}``, group Light) has them. A :class:`ZoneBook` keeps them by extension id
and dresses every list loaded with them, so the directory and the stored records carry them
(a restart starts with the zones the last run read). ``keep_fresh`` reads them after each
list load, one read per :data:`ZONE_READ_GAP` (a fraction of the Light budget the live path
shares): every user not read yet, and a share of the others so that each is read again
about once a :data:`ZONE_RECHECK`. The directory is handed on again every
:data:`ZONE_BATCH` reads, so a first pass over a large account (minutes) brings zones into
use as it goes; the list's own handover never waits for them. Until a user's zone is read,
writers with ``timezone = "user"`` show that user's calls in their configured zone.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
import structlog

from sscl_daemon.calls.directory import Directory, DirectoryError
from sscl_daemon.calls.model import ANSWERS_AS_A_PERSON, ExtensionType
from sscl_daemon.ringcentral.ratelimit import Clock, Sleep
from sscl_daemon.ringcentral.records import ExtensionRecord, RegionalSettings, as_id
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted

log = structlog.get_logger(__name__)

# The first retry of a failed load; each failure doubles it, up to the refresh interval.
RETRY_INITIAL = 5.0

# Seconds between two "Get Extension" reads of the zones: 15 a minute, under a third of
# the Light group's 50, which the session lookups and media polls share.
ZONE_READ_GAP = 4.0
# Each user's zone is read again about once a day (a user seldom moves).
ZONE_RECHECK = 86_400.0
# The directory is handed on (and stored) again after this many reads of a pass.
ZONE_BATCH = 25

_RECORDS = msgspec.json.Decoder(list[ExtensionRecord])


def _directory(records: list[ExtensionRecord]) -> Directory:
    return Directory.from_api([msgspec.to_builtins(record) for record in records])


class ZoneBook:
    """The users' RingCentral time zones (``regionalSettings``) by extension id, one account's.

    Shared by every load of the account's directory (the periodic one, the on-demand one and
    the stored one at start), so none of them hands on a directory without the zones known.
    """

    def __init__(
        self,
        *,
        read_gap: float = ZONE_READ_GAP,
        recheck: float = ZONE_RECHECK,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._zones: dict[str, RegionalSettings] = {}
        # When each user was read in this run (absent: not yet; its zone, if any, is stored).
        self._read_at: dict[str, float] = {}
        self._read_gap = read_gap
        self._recheck = recheck
        self._clock = clock
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return len(self._zones)

    def learn(self, records: Sequence[ExtensionRecord]) -> None:
        """Take the zones of records stored by a former run (they are read again in turn)."""
        for record in records:
            ext_id = as_id(record.id)
            settings = record.regionalSettings
            if ext_id and settings is not None and settings.timezone is not None:
                self._zones[ext_id] = settings

    def dress(self, records: Sequence[ExtensionRecord]) -> list[ExtensionRecord]:
        """The records, each with its user's zone as last read (list records carry none)."""
        dressed: list[ExtensionRecord] = []
        for record in records:
            settings = self._zones.get(as_id(record.id) or "")
            if settings is not None and record.regionalSettings != settings:
                record = msgspec.structs.replace(record, regionalSettings=settings)
            dressed.append(record)
        return dressed

    def due(self, records: Sequence[ExtensionRecord], interval: float) -> list[str]:
        """The users to read after a list load ``interval`` seconds after the last one: those
        not read yet, then the longest unread share of the others (one ``recheck`` period
        over all of them); zones a former run stored come first, in random order, so that
        frequent restarts still reach every user."""
        users = [
            ext_id
            for record in records
            if (ext_id := as_id(record.id))
            and ExtensionType.parse(record.type) in ANSWERS_AS_A_PERSON
            and record.status != "Disabled"
        ]
        new = [u for u in users if u not in self._zones and u not in self._read_at]
        seen = [u for u in users if u in self._zones or u in self._read_at]
        share = math.ceil(len(seen) * min(1.0, interval / self._recheck))
        self._rng.shuffle(seen)
        seen.sort(key=lambda u: self._read_at.get(u, -math.inf))
        return new + seen[:share]

    async def read(
        self,
        rest: RestClient,
        extension_ids: Sequence[str],
        sleep: Sleep,
        on_change: Callable[[], Awaitable[None]],
    ) -> int:
        """Read the zones of ``extension_ids``, paced; ``on_change`` after every
        ``ZONE_BATCH`` reads and at the end when a zone changed. A refused or failed read
        ends the pass (the rest are due again after the next list load). How many read."""
        changed = False
        done = 0
        for ext_id in extension_ids:
            if done and self._read_gap > 0:
                await sleep(self._read_gap)
            try:
                record = await rest.extension(ext_id)
            except (ApiError, RetriesExhausted) as exc:
                log.warning(
                    "ringcentral.zones.read_failed",
                    extension_id=ext_id,
                    error=str(exc),
                    left=len(extension_ids) - done,
                    hint="the users' time zones are read again after the next directory load",
                )
                break
            done += 1
            self._read_at[ext_id] = self._clock()
            settings = record.regionalSettings if record is not None else None
            if settings is not None and settings.timezone is not None:
                changed = changed or self._zones.get(ext_id) != settings
                self._zones[ext_id] = settings
            if changed and done % ZONE_BATCH == 0:
                await on_change()
                changed = False
        if changed:
            await on_change()
        return done


async def load_directory(rest: RestClient, zones: ZoneBook | None = None) -> Directory:
    """The current extension list as a `Directory` (with the users' zones ``zones`` knows)."""
    records = await rest.extensions()
    return _directory(zones.dress(records) if zones is not None else records)


def stored_directory(data: bytes, zones: ZoneBook | None = None) -> Directory:
    """The directory of records kept by `keep_fresh` (their zones go to ``zones``);
    `DirectoryError` if they do not read."""
    try:
        records = _RECORDS.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DirectoryError(f"the stored extension directory is unreadable: {exc}") from None
    if zones is not None:
        zones.learn(records)
    return _directory(records)


async def keep_fresh(
    rest: RestClient,
    interval: float,
    on_change: Callable[[Directory], None],
    *,
    keep: Callable[[bytes], Awaitable[None]] | None = None,
    first_delay: float | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    zones: ZoneBook | None = None,
) -> None:
    """Load after `first_delay` (default `interval`), then every `interval` seconds, forever.

    Each directory loaded goes to `on_change`, and its records (JSON) to `keep`. A failed
    load keeps the previous directory. With `zones`, the users' time zones due are read
    after each load (see the module docstring) and the directory is handed on again with
    them. `AuthError` (credentials revoked) is not caught: it is fatal for the whole daemon.
    """
    rng = rng or random.Random()
    delay = interval if first_delay is None else first_delay
    failures = 0
    while True:
        await sleep(delay)
        try:
            listed = await rest.extensions()
            records = zones.dress(listed) if zones is not None else listed
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
        if zones is not None:
            due = zones.due(listed, interval)
            done = await zones.read(rest, due, sleep, _again(listed, zones, on_change, keep))
            if due:
                log.info("ringcentral.zones.read", read=done, due=len(due), known=len(zones))


def _again(
    listed: list[ExtensionRecord],
    zones: ZoneBook,
    on_change: Callable[[Directory], None],
    keep: Callable[[bytes], Awaitable[None]] | None,
) -> Callable[[], Awaitable[None]]:
    """Hand the listed directory on (and keep it) again, with the zones read since."""

    async def again() -> None:
        records = zones.dress(listed)
        on_change(_directory(records))
        if keep is not None:
            await keep(msgspec.json.encode(records))

    return again
