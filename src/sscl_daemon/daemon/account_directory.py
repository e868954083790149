"""One account's extension directory: the stored one at start, fresh loads beside the stream.

Where it sits: :class:`~sscl_daemon.daemon.accounts.AccountRunner` builds its tracker on
the directory the last run stored (:meth:`AccountDirectory.stored`: no RingCentral request
before the subscription, a throttled extension-list read must not hold live logging back),
then keeps it fresh in its ``directory-refresh`` task and loads it again on demand when a
call names an extension it does not know. Every load replaces the tracker's directory and
is stored (fenced) for the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from sscl_daemon.calls.directory import Directory, DirectoryError
from sscl_daemon.daemon.pipeline import Pipeline
from sscl_daemon.logging import get_logger
from sscl_daemon.ringcentral.directory import (
    ZoneBook,
    keep_fresh,
    load_directory,
    stored_directory,
)
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted
from sscl_daemon.store import Lease, LeaseLostError, Store, StoreError

log = get_logger(__name__)

# At most one directory load per this many seconds for extensions it did not know.
DIRECTORY_ON_DEMAND_INTERVAL = 60.0

Spawn = Callable[[str, Coroutine[Any, Any, None]], None]


class AccountDirectory:
    """The account's directory loads; ``spawn`` runs an on-demand load in the background."""

    def __init__(self, store: Store, account: str, lease: Lease, spawn: Spawn) -> None:
        self._store = store
        self._account = account
        self._lease = lease
        self._spawn = spawn
        # The users' RingCentral time zones, shared by every load of the directory.
        self._zones = ZoneBook()

    async def stored(self) -> Directory | None:
        """The directory the last run stored (None: heuristics until the first load)."""
        data = await self._store.load_directory(self._account)
        if data is None:
            log.info(
                "daemon.directory.not_stored",
                account=self._account,
                hint="using heuristics until the extension directory loads",
            )
            return None
        try:
            directory = stored_directory(data, self._zones)
        except DirectoryError as exc:
            log.warning("daemon.directory.unusable", account=self._account, error=str(exc))
            return None
        log.info("daemon.directory.restored", account=self._account, extensions=len(directory))
        return directory

    async def keep_fresh(self, rest: RestClient, interval: float, pipeline: Pipeline) -> None:
        """Load the directory now, then every ``interval`` seconds (the refresh task)."""

        async def keep(data: bytes) -> None:
            await self._keep(data, pipeline)

        await keep_fresh(
            rest,
            interval,
            self._apply(pipeline),
            keep=keep,
            first_delay=0.0,
            zones=self._zones,
        )

    async def _keep(self, data: bytes, pipeline: Pipeline) -> None:
        if pipeline.recorder is not None:
            pipeline.recorder.keep_directory(data)
        try:
            await self._store.save_directory(self._account, data, fence=self._lease)
        except LeaseLostError:
            raise
        except StoreError as exc:
            # Only the next start's first minutes depend on it: not worth failing the reload.
            log.warning("daemon.directory.store_failed", account=self._account, error=str(exc))

    def wanted(self, rest: RestClient, pipeline: Pipeline) -> Callable[[set[str]], None]:
        """A session names extensions the directory does not know: load it again now.

        At most one load per DIRECTORY_ON_DEMAND_INTERVAL (an unknown-extension flood must
        not eat the rate budget); the tracker decides such sessions after its own wait
        whether or not a load came.
        """
        last: list[float] = []

        def wanted(extension_ids: set[str]) -> None:
            now = asyncio.get_running_loop().time()
            if last and now - last[0] < DIRECTORY_ON_DEMAND_INTERVAL:
                return
            last[:] = [now]
            log.info(
                "daemon.directory.reload_wanted",
                account=self._account,
                extensions=len(extension_ids),
                hint="calls name extensions the directory does not know; loading it again",
            )
            self._spawn("directory-on-demand", self._load_now(rest, pipeline))

        return wanted

    async def _load_now(self, rest: RestClient, pipeline: Pipeline) -> None:
        try:
            directory = await load_directory(rest, self._zones)
        except (ApiError, RetriesExhausted, DirectoryError, aiohttp.ClientError) as exc:
            log.warning("daemon.directory.load_failed", account=self._account, error=str(exc))
            return
        self._apply(pipeline)(directory)

    def _apply(self, pipeline: Pipeline) -> Callable[[Directory], None]:
        def apply(directory: Directory) -> None:
            pipeline.tracker.replace_directory(directory)

        return apply
