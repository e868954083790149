"""The daemon's own background tasks, by name (``daemon/app.py`` -> here).

The lease loops, the balancer, the gauges, the store watch and the watchdog each run as one
named task. A task that ends with an error stops the daemon: a :class:`FatalError` with its
own message (and exit code 2), any other error named after its task; a cancelled task is
the daemon's own doing and says nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sscl_daemon.daemon.supervise import FatalError
from sscl_daemon.logging import get_logger

log = get_logger(__name__)


class Tasks:
    """Named tasks; ``on_fatal`` gets the message of the first one that fails."""

    def __init__(self, on_fatal: Callable[[str], None]) -> None:
        self._on_fatal = on_fatal
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        async def main() -> None:
            await run()

        task = asyncio.create_task(main(), name=name)
        self._tasks[name] = task
        task.add_done_callback(self._done)

    def named(self, predicate: Callable[[str], bool]) -> list[asyncio.Task[None]]:
        """The tasks whose names ``predicate`` accepts."""
        return [task for name, task in self._tasks.items() if predicate(name)]

    def all(self) -> list[asyncio.Task[None]]:
        return list(self._tasks.values())

    def _done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, FatalError):
            self._on_fatal(str(exc))
        elif exc is not None:
            log.error("daemon.task.failed", task=task.get_name(), error=repr(exc))
            self._on_fatal(f"{task.get_name()}: {exc!r}")
