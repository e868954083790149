"""The admin endpoint over a real loopback socket: health, readiness, metrics, bearer token,
token-free probes, and a taken port as a one-line configuration error."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest
from tests.daemon.harness import daemon_config

from sscl_daemon import metrics
from sscl_daemon.admin import AdminAddressError, AdminServer
from sscl_daemon.config import AdminSettings, Secret, parse_config
from sscl_daemon.daemon.app import EXIT_CONFIG, Daemon
from sscl_daemon.sdnotify import Notifier


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
        async with http.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.get(f"{base}/metrics", headers={"Authorization": f"Basic {token}"}) as resp:
            assert resp.status == 401
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{base}/metrics", headers=headers) as resp:
            assert resp.status == 200
    finally:
        await server.stop()


async def test_probes_answer_without_the_token(http: aiohttp.ClientSession) -> None:
    """A load balancer or systemd probe has no token: /healthz and /readyz stay open."""
    checks = Checks()
    checks.state["subscribed"] = True
    server, base = await _serve("admin-token-for-tests-1234", checks)
    try:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ready"
        # A wrong token on a probe is ignored, not refused: the probe needs none.
        async with http.get(f"{base}/healthz", headers={"Authorization": "Bearer x"}) as resp:
            assert resp.status == 200
    finally:
        await server.stop()


async def test_a_taken_admin_port_is_a_clear_error() -> None:
    first, _ = await _serve(None, Checks())
    try:
        second = AdminServer(AdminSettings(port=first.port or 0), Checks())
        with pytest.raises(AdminAddressError, match=r"already in use.*admin\.port"):
            await second.start()
    finally:
        await first.stop()


async def test_a_second_daemon_on_the_same_admin_port_exits_with_the_config_status(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a traceback and exit 1 (which systemd restarts for ever): one line and exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = daemon_config(
            sim_url="http://127.0.0.1:9",
            crm_url="http://127.0.0.1:9",
            crm_secret="whsec_c3NjbC1kZW1vLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM=",
            state_dir=tmp_path / "state",
            dsn=pg_dsn,
            extra={"admin": {"port": port}},
        )
        daemon = Daemon(parse_config(config), notifier=Notifier(None), handle_signals=False)
        assert await daemon.run() == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "already in use" in line]
    assert len(lines) == 1
    assert f"127.0.0.1:{port}" in lines[0]
