"""Unix signals as event-loop callbacks: SIGHUP reloads, SIGTERM and SIGINT drain.

Handlers only record the request and wake the daemon's main task; the work
(reading the file, draining writers) happens in ordinary coroutines, never
inside a signal handler. A second SIGINT/SIGTERM while draining is
reported but does not cut the drain short: the unit's ``TimeoutStopSec``
(or a SIGKILL) is the way to abandon it, and the outbox makes that safe.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sscl_daemon.logging import get_logger

log = get_logger(__name__)


class SignalRequests:
    """Pending reload and stop requests, set from signal handlers on the loop."""

    def __init__(self) -> None:
        self.reload = asyncio.Event()
        self.stop = asyncio.Event()
        self.stop_signal: str | None = None

    def request_reload(self) -> None:
        log.info("daemon.signal.reload", signal="SIGHUP")
        self.reload.set()

    def request_stop(self, name: str) -> None:
        if self.stop.is_set():
            log.warning("daemon.signal.already_stopping", signal=name, hint="still draining")
            return
        log.info("daemon.signal.stop", signal=name)
        self.stop_signal = name
        self.stop.set()


@contextmanager
def installed(requests: SignalRequests) -> Iterator[SignalRequests]:
    """Route SIGHUP/SIGTERM/SIGINT to ``requests`` on the running loop while in the block."""
    loop = asyncio.get_running_loop()
    handlers: dict[signal.Signals, Callable[[], None]] = {
        signal.SIGHUP: requests.request_reload,
        signal.SIGTERM: lambda: requests.request_stop("SIGTERM"),
        signal.SIGINT: lambda: requests.request_stop("SIGINT"),
    }
    for signum, handler in handlers.items():
        loop.add_signal_handler(signum, handler)
    try:
        yield requests
    finally:
        for signum in handlers:
            loop.remove_signal_handler(signum)
