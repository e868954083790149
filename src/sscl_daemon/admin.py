"""The admin HTTP endpoint: health, readiness and Prometheus metrics.

Bound to loopback by default (``[admin]`` in the config). ``/healthz``
answers while the event loop runs (an answer is the proof); ``/readyz``
answers 200 only when the subscription is live and Postgres answers, with
each check's state in the JSON body; ``/metrics`` serves :mod:`metrics` in
Prometheus' text format. With ``admin.token`` set, every request needs
``Authorization: Bearer <token>``; the comparison is constant-time and the
token never appears in a log line or response.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from sscl_daemon import metrics
from sscl_daemon.config import AdminSettings
from sscl_daemon.logging import get_logger

log = get_logger(__name__)

ReadinessProbe = Callable[[], Awaitable[Mapping[str, bool]]]


def _authorised(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def build_app(readiness: ReadinessProbe, token: str | None = None) -> web.Application:
    """The admin aiohttp application (separate from :class:`AdminServer` for tests)."""

    @web.middleware
    async def auth(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not _authorised(request, token):
            return web.json_response(
                {"error": "missing or wrong bearer token (see admin.token in the config)"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="sscl-daemon"'},
            )
        return await handler(request)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        try:
            checks = dict(await readiness())
        except Exception as exc:
            log.warning("readiness probe failed", error=str(exc))
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
    return app


class AdminServer:
    """Runs :func:`build_app` on ``admin.host:admin.port`` until :meth:`stop`."""

    def __init__(self, settings: AdminSettings, readiness: ReadinessProbe) -> None:
        self._settings = settings
        token = settings.token.reveal() if settings.token is not None else None
        self._runner = web.AppRunner(build_app(readiness, token), access_log=None)
        self.port: int | None = None

    async def start(self) -> int:
        """Bind and serve; returns the port (useful with ``port = 0``)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.host, self._settings.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("admin endpoint listening", host=self._settings.host, port=self.port)
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
