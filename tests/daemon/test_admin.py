"""The admin endpoint over a real loopback socket: health, readiness, metrics, bearer token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest

from sscl_daemon import metrics
from sscl_daemon.admin import AdminServer
from sscl_daemon.config import AdminSettings, Secret


class Checks:
    def __init__(self) -> None:
        self.state = {"subscribed": False, "store": True}

    async def __call__(self) -> Mapping[str, bool]:
        return self.state


async def _serve(token: str | None, checks: Checks) -> tuple[AdminServer, str]:
    settings = AdminSettings(port=0, token=Secret(token) if token else None)
    server = AdminServer(settings, checks)
    port = await server.start()
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_health_readiness_and_metrics(http: aiohttp.ClientSession) -> None:
    checks = Checks()
    server, base = await _serve(None, checks)
    try:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 503
            body = await resp.json()
            assert body["checks"] == {"subscribed": False, "store": True}
        checks.state["subscribed"] = True
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200
        metrics.WS_GAPS.inc()
        metrics.OUTBOX.update({"crm": metrics.OutboxFigures(7, 12.5, 1)})
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
        assert "sscl_ws_gaps_total " in text
        assert 'sscl_outbox_depth{writer="crm"} 7.0' in text
        assert 'sscl_outbox_oldest_pending_seconds{writer="crm"} 12.5' in text
        assert "# TYPE sscl_call_end_to_crm_seconds histogram" in text
    finally:
        await server.stop()


async def test_a_failing_probe_means_not_ready(http: aiohttp.ClientSession) -> None:
    async def broken() -> Mapping[str, bool]:
        raise ConnectionError("database went away")

    server = AdminServer(AdminSettings(port=0), broken)
    port = await server.start()
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert resp.status == 503
    finally:
        await server.stop()


async def test_bearer_token_is_required_when_configured(http: aiohttp.ClientSession) -> None:
    token = "admin-token-for-tests-1234"
    server, base = await _serve(token, Checks())
    try:
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 401
            assert token not in await resp.text()
        async with http.get(f"{base}/healthz", headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{base}/healthz", headers=headers) as resp:
            assert resp.status == 200
        async with http.get(f"{base}/metrics", headers=headers) as resp:
            assert resp.status == 200
    finally:
        await server.stop()
