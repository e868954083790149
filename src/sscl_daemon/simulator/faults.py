"""Fault-injection state of the simulator (sans-I/O; the async shells consult it).

Set through the `Simulator` Python API or the `/_sim/...` control endpoints; read by the REST
middleware (`platform_rest.py`), the WebSocket gateway (`gateway.py`) and the engine. Faults
that act on live sockets at once (drop, silence) are methods of the gateway instead; this
module holds the ones that change how *later* traffic is treated.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec


@dataclass
class RestFault:
    """Answer the next `remaining` REST requests under `path_prefix` with `status`."""

    path_prefix: str
    status: int
    remaining: int
    retry_after_s: int | None = None


@dataclass
class NotificationFaults:
    """How the next notifications are mangled on their way to WebSocket subscribers.

    Counters count notifications; `delay_s` applies to the next `delay_count`.
    `reorder` holds one notification back and sends it after the one that follows it.
    """

    delay_s: float = 0.0
    delay_count: int = 0
    duplicate_count: int = 0
    reorder_count: int = 0


@dataclass
class CallLogInjection:
    """Records (raw JSON texts, served as they are) put among the real ones of the next
    `remaining` call-log answers, whatever the query: a broken or hostile platform."""

    records: list[msgspec.Raw]
    remaining: int


@dataclass
class Faults:
    """Everything a test or the control API has asked to go wrong."""

    rest: deque[RestFault] = field(default_factory=deque)
    call_log: CallLogInjection | None = None
    notifications: NotificationFaults = field(default_factory=NotificationFaults)
    refuse_recoveries: int = 0
    _resume: asyncio.Event | None = None
    _paused_until: float = 0.0

    # -- REST ------------------------------------------------------------------------------

    def add_rest_fault(
        self, path_prefix: str, status: int, count: int = 1, retry_after_s: int | None = None
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"fault status {status} is not an HTTP error status (400-599)")
        if count < 1:
            raise ValueError(f"fault count {count} must be at least 1")
        self.rest.append(RestFault(path_prefix, status, count, retry_after_s))

    def take_rest_fault(self, path: str) -> RestFault | None:
        """The fault that applies to this request, consuming one use of it."""
        for fault in self.rest:
            if path.startswith(fault.path_prefix):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.rest.remove(fault)
                return fault
        return None

    # -- call-log answers ------------------------------------------------------------------

    def inject_call_log(self, records: Iterable[bytes], count: int = 1) -> None:
        """Serve `records` (JSON texts) in the next `count` call-log answers (first pages)."""
        if count < 1:
            raise ValueError(f"injection count {count} must be at least 1")
        self.call_log = CallLogInjection([msgspec.Raw(text) for text in records], count)

    def take_call_log_records(self) -> list[msgspec.Raw]:
        """The records to add to this call-log answer, consuming one use of the injection."""
        injection = self.call_log
        if injection is None:
            return []
        injection.remaining -= 1
        if injection.remaining <= 0:
            self.call_log = None
        return injection.records

    # -- recovery --------------------------------------------------------------------------

    def take_refused_recovery(self) -> bool:
        if self.refuse_recoveries > 0:
            self.refuse_recoveries -= 1
            return True
        return False

    # -- pause -----------------------------------------------------------------------------

    def pause(self, seconds: float, now: float) -> None:
        """Stop answering anything (frames, REST) until `now + seconds`."""
        if seconds <= 0:
            raise ValueError(f"pause of {seconds} s must be positive")
        self._paused_until = max(self._paused_until, now + seconds)
        if self._resume is None or self._resume.is_set():
            self._resume = asyncio.Event()
            asyncio.get_running_loop().call_later(seconds, self._maybe_resume)

    def _maybe_resume(self) -> None:
        loop = asyncio.get_running_loop()
        left = self._paused_until - loop.time()
        if left > 0:
            loop.call_later(left, self._maybe_resume)
        elif self._resume is not None:
            self._resume.set()

    def resume(self) -> None:
        self._paused_until = 0.0
        if self._resume is not None:
            self._resume.set()

    @property
    def paused(self) -> bool:
        return self._resume is not None and not self._resume.is_set()

    async def wait_unpaused(self) -> None:
        while self._resume is not None and not self._resume.is_set():
            await self._resume.wait()

    def clear(self) -> None:
        self.rest.clear()
        self.call_log = None
        self.notifications = NotificationFaults()
        self.refuse_recoveries = 0
        self.resume()
