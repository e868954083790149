"""The store watch: no wedge when PostgreSQL goes away (issue 19).

Where it sits: one task of the daemon process (:mod:`.app`), beside the lease loops. It
asks the store a trivial question every :data:`CHECK_INTERVAL` seconds. While the
answers fail it asks again with a growing delay (the pool reconnects by itself on the
next question, so an external server that restarted, or connections terminated by an
admin, heal without anything else), and when the daemon's own embedded server has died
(its postmaster SIGKILLed, or stopped by a full disk) it starts it again. If the store
is still unusable after ``limit`` seconds (the config's ``store.outage_limit``), it gives
up: ``on_give_up`` stops the daemon with the status the unit restarts on, and :attr:`StoreWatch.gave_up` stops the systemd
watchdog from being fed, so a daemon whose store cannot come back is never
alive-but-useless. The other parts meanwhile fail their own store calls and retry
(group commit keeps the batch it could not write; dispatchers and leases retry).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sscl_daemon.logging import get_logger
from sscl_daemon.store import Store, StoreError

log = get_logger(__name__)

# Seconds between two checks while the store answers.
CHECK_INTERVAL = 5.0
# A check that takes longer than this counts as failed (a stuck server or network).
CHECK_TIMEOUT = 5.0
# While it fails: the first retry after this many seconds, doubling up to CHECK_INTERVAL.
RETRY_INITIAL = 0.25


class StoreWatch:
    """Run :meth:`run` as a task; :attr:`healthy` and :attr:`gave_up` say how it goes."""

    def __init__(
        self,
        store: Store,
        on_give_up: Callable[[str], None],
        *,
        limit: float,
        interval: float = CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._on_give_up = on_give_up
        self._limit = limit
        self._interval = interval
        self._clock = clock
        self.healthy = True
        self.gave_up = False
        self.restarts = 0
        self._down_since: float | None = None
        self._last_error = ""

    async def run(self) -> None:
        delay = RETRY_INITIAL
        while not self.gave_up:
            if await self.check():
                delay = RETRY_INITIAL
                await asyncio.sleep(self._interval)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._interval)

    async def check(self) -> bool:
        """One round: ask the store; on failure restart a dead embedded server; maybe give up."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await self._store.schema_version()
        except (StoreError, TimeoutError) as exc:
            self._failed(str(exc) or "no answer within the check timeout")
        else:
            self._answered()
            return True
        server = self._store.embedded_server
        if server is not None and server.died:
            try:
                await server.arecover()
            except StoreError as exc:
                log.warning(
                    "store.server.restart_failed",
                    error=str(exc),
                    hint="retried until the store outage limit; check the disk and server.log",
                )
            else:
                self.restarts += 1
                log.warning("store.server.restarted", pid=server.pid, restarts=self.restarts)
        down_for = self._clock() - (self._down_since or self._clock())
        if down_for >= self._limit and not self.gave_up:
            self.gave_up = True
            message = (
                f"the store has been unusable for {down_for:.0f} s "
                f"(limit {self._limit:.0f} s): {self._last_error}"
            )
            log.error(
                "store.connection.given_up",
                error=self._last_error,
                seconds=round(down_for, 1),
                hint="exiting for the service manager to restart the daemon",
            )
            self._on_give_up(message)
        return False

    def _failed(self, error: str) -> None:
        self._last_error = error
        if self._down_since is None:
            self._down_since = self._clock()
            self.healthy = False
            log.error(
                "store.connection.lost",
                error=error,
                hint=f"reconnecting; the daemon exits if this lasts {self._limit:.0f} s",
            )

    def _answered(self) -> None:
        if self._down_since is not None:
            log.info(
                "store.connection.recovered", seconds=round(self._clock() - self._down_since, 1)
            )
        self._down_since = None
        self.healthy = True
