"""systemd's service notification protocol (``sd_notify``), for ``Type=notify`` units.

The daemon tells systemd when it is ready (subscribed), when it reloads and
stops, what it is doing (``STATUS=``), and that its event loop is alive
(``WATCHDOG=1`` at half of ``$WATCHDOG_USEC``, sent by a task of the daemon on
its event loop, so a blocked loop stops the pings and systemd restarts the
service). The
protocol is one datagram of ``KEY=VALUE`` lines to the unix socket named by
``$NOTIFY_SOCKET``; a leading ``@`` names an abstract-namespace socket. The
PyPI packages for this are unmaintained or lack RELOADING/STOPPING, so it is
written here. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    """Sends notifications to the service manager; a no-op when not run by systemd."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address or None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._socket: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        usec: int | None = None
        raw = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is meant for; a child must not ping.
        if raw.isdigit() and (not pid or pid == str(os.getpid())):
            usec = int(raw)
        return cls(env.get("NOTIFY_SOCKET"), usec)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings (half the timeout systemd set), or None."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def send(self, **fields: str) -> None:
        if self._address is None:
            return
        message = "".join(f"{key}={value}\n" for key, value in fields.items())
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)
        try:
            self._socket.sendto(message.encode(), self._address)
        except OSError:
            # systemd going away (or a full socket buffer) must never take the daemon down.
            return

    def ready(self, status: str | None = None) -> None:
        self.send(READY="1", **({"STATUS": status} if status else {}))

    def reloading(self) -> None:
        # systemd >= 253 matches RELOADING=1 with the monotonic time of the request.
        self.send(
            RELOADING="1", MONOTONIC_USEC=str(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)
        )

    def stopping(self, status: str | None = None) -> None:
        self.send(STOPPING="1", **({"STATUS": status} if status else {}))

    def status(self, text: str) -> None:
        self.send(STATUS=text)

    def watchdog(self) -> None:
        self.send(WATCHDOG="1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
