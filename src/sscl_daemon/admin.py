"""The admin HTTP endpoint: health, readiness, Prometheus metrics and the console.

Bound to loopback by default (``[admin]`` in the config). ``/healthz``
answers while the event loop runs (an answer is the proof); ``/readyz``
answers 200 only when the subscription is live and Postgres answers, with
each check's state in the JSON body; ``/metrics`` serves :mod:`metrics` in
Prometheus' text format; the browser console (:mod:`sscl_daemon.console`)
is mounted on the same site when the daemon passes one in.

With ``admin.token`` set, the probes stay open (a load balancer or systemd
probe has no token to give, and they reveal nothing but "alive/ready"), and
every other request needs ``Authorization: Bearer <token>`` — or, for the
console, the session cookie its login form trades the token for. The
comparison is constant-time and the token never appears in a log line or
response.
"""

from __future__ import annotations

import errno
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from aiohttp import web

from sscl_daemon import metrics
from sscl_daemon.config import AdminSettings
from sscl_daemon.errors import SsclError
from sscl_daemon.logging import get_logger

log = get_logger(__name__)

ReadinessProbe = Callable[[], Awaitable[Mapping[str, bool]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Answered without a token: probes must work for whatever polls them.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


class AdminAddressError(SsclError):
    """The admin address cannot be bound (taken by another daemon, not local, a privileged
    port): a configuration problem that a restart does not fix."""


class Console(Protocol):
    """What the admin site needs from the browser console (see :mod:`sscl_daemon.console`)."""

    def mount(self, app: web.Application) -> None:
        """Add the console's routes to the admin application."""

    def admits(self, request: web.Request) -> bool:
        """The request may pass without a bearer token (a console session, the login page)."""

    def refuse(self, request: web.Request) -> web.StreamResponse | None:
        """The answer to a browser without a session (the login page), or None for a 401."""


def bearer_ok(request: web.Request, token: str) -> bool:
    """``Authorization: Bearer <token>`` matches, compared in constant time."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def build_app(
    readiness: ReadinessProbe, token: str | None = None, console: Console | None = None
) -> web.Application:
    """The admin aiohttp application (separate from :class:`AdminServer` for tests)."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None or request.path in PROBE_PATHS or bearer_ok(request, token):
            return await handler(request)
        if console is not None and request.path != "/metrics":
            if console.admits(request):
                return await handler(request)
            refused = console.refuse(request)
            if refused is not None:
                return refused
        return web.json_response(
            {"error": "missing or wrong bearer token (see admin.token in the config)"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="sscl-daemon"'},
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        try:
            checks = dict(await readiness())
        except Exception as exc:
            log.warning("admin.readiness.probe_failed", error=str(exc))
            checks = {"probe": False}
        ready = bool(checks) and all(checks.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status=200 if ready else 503,
        )

    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})

    app = web.Application(middlewares=[auth])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    if console is not None:
        console.mount(app)
    return app


class AdminServer:
    """Runs :func:`build_app` on ``admin.host:admin.port`` until :meth:`stop`."""

    def __init__(
        self, settings: AdminSettings, readiness: ReadinessProbe, console: Console | None = None
    ) -> None:
        self._settings = settings
        token = settings.token.reveal() if settings.token is not None else None
        self._runner = web.AppRunner(build_app(readiness, token, console), access_log=None)
        self.port: int | None = None

    async def start(self) -> int:
        """Bind and serve; returns the port (useful with ``port = 0``).

        Raises :class:`AdminAddressError` when the address cannot be bound, so the daemon
        can say so in one line and exit with the status for configuration problems.
        """
        await self._runner.setup()
        host, port = self._settings.host, self._settings.port
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            why = (
                "the address is already in use (is another sscl-daemon running? "
                "otherwise choose another admin.port)"
                if exc.errno == errno.EADDRINUSE
                else f"{exc.strerror or exc} (check admin.host and admin.port)"
            )
            raise AdminAddressError(
                f"the admin endpoint cannot listen on {host}:{port}: {why}"
            ) from None
        self.port = int(self._runner.addresses[0][1])
        log.info("admin.endpoint.listening", host=host, port=self.port)
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
