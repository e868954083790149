"""Fixtures for the simulator tests: a running simulator on loopback and a plain WS client.

The plain client speaks the gateway protocol by hand with aiohttp (no project code), so the
tests check the simulator against the protocol, not against our own RingCentral client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.profiles import PlatformProfile

RECV_TIMEOUT = 5.0
ACCOUNT_FILTER = "/restapi/v1.0/account/~/telephony/sessions"


def fast_profile(**changes: Any) -> PlatformProfile:
    """Lenient profile with timeouts short enough for tests."""
    base = {"call_log_delay_s": 0.0, "recovery_timeout_s": 5.0}
    base.update(changes)
    return PlatformProfile.lenient().with_changes(**base)


def basic(client_id: str = "sim-client", secret: str = "sim-secret") -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class WsClient:
    """A hand-written gateway client: read frames, send requests, wait for what we expect."""

    ws: aiohttp.ClientWebSocketResponse
    details: list[Any]
    frames: list[list[Any]] = field(default_factory=list)

    async def recv(self, within: float = RECV_TIMEOUT) -> list[Any]:
        msg = await self.ws.receive(timeout=within)
        assert msg.type is aiohttp.WSMsgType.TEXT, (
            f"expected a text frame, got {msg.type} {msg.data!r}"
        )
        frame: list[Any] = json.loads(msg.data)
        self.frames.append(frame)
        return frame

    async def recv_until(
        self, predicate: Callable[[list[Any]], bool], within: float = RECV_TIMEOUT
    ) -> list[Any]:
        async with asyncio.timeout(within):
            while True:
                frame = await self.recv(within)
                if predicate(frame):
                    return frame

    async def notifications(self, count: int, within: float = RECV_TIMEOUT) -> list[list[Any]]:
        out: list[list[Any]] = []
        async with asyncio.timeout(within):
            while len(out) < count:
                frame = await self.recv(within)
                if frame[0]["type"] == "ServerNotification":
                    out.append(frame)
        return out

    async def request(self, method: str, path: str, body: object = None) -> list[Any]:
        message_id = str(uuid.uuid4())
        header = {"type": "ClientRequest", "messageId": message_id, "method": method, "path": path}
        await self.ws.send_str(json.dumps([header] if body is None else [header, body]))
        return await self.recv_until(lambda f: f[0].get("messageId") == message_id)

    async def subscribe(self, filters: list[str] | None = None) -> list[Any]:
        body = {
            "eventFilters": filters or [ACCOUNT_FILTER],
            "deliveryMode": {"transportType": "WebSocket"},
        }
        reply = await self.request("POST", "/restapi/v1.0/subscription", body)
        assert reply[0]["status"] == 200, reply
        return reply

    @property
    def wsc(self) -> str:
        token: str = self.details[0]["wsc"]["token"]
        return token

    def last_wsc(self) -> str:
        for frame in reversed([self.details, *self.frames]):
            if "wsc" in frame[0]:
                token: str = frame[0]["wsc"]["token"]
                return token
        raise AssertionError("no wsc seen")


@dataclass
class Platform:
    """HTTP access to a running simulator as a RingCentral client would have it."""

    sim: Simulator
    http: aiohttp.ClientSession
    access_token: str = ""
    refresh_token: str = ""
    clients: list[WsClient] = field(default_factory=list)

    async def _grant(self, form: dict[str, str]) -> dict[str, Any]:
        async with self.http.post(
            self.sim.base_url + "/restapi/oauth/token",
            data=form,
            headers={"Authorization": basic()},
        ) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body
        self.access_token, self.refresh_token = body["access_token"], body["refresh_token"]
        return body

    async def login(self, jwt: str = "any-jwt") -> dict[str, Any]:
        return await self._grant(
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": jwt}
        )

    async def refresh(self) -> dict[str, Any]:
        return await self._grant(
            {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        )

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    async def get(self, path: str, **params: str) -> tuple[int, dict[str, str], Any]:
        async with self.http.get(
            self.sim.base_url + path, params=params, headers=self.auth()
        ) as resp:
            return resp.status, dict(resp.headers), await resp.json()

    async def ws_token(self) -> dict[str, Any]:
        async with self.http.post(
            self.sim.base_url + "/restapi/oauth/wstoken", headers=self.auth()
        ) as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, body
        return body

    async def connect(self, wsc: str | None = None) -> WsClient:
        token = await self.ws_token()
        params = {"access_token": token["ws_access_token"]}
        if wsc is not None:
            params["wsc"] = wsc
        ws = await self.http.ws_connect(token["uri"], params=params, autoping=True)
        msg = await ws.receive(timeout=RECV_TIMEOUT)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        details = json.loads(msg.data)
        assert details[0]["type"] == "ConnectionDetails", details
        client = WsClient(ws, details)
        self.clients.append(client)
        return client

    async def subscribed_client(self) -> WsClient:
        if not self.access_token:
            await self.login()
        client = await self.connect()
        await client.subscribe()
        return client


SimFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    started: list[Simulator] = []

    async def make(**changes: Any) -> Simulator:
        config_fields = {
            k: changes.pop(k) for k in list(changes) if k in SimulatorConfig.__dataclass_fields__
        }
        config_fields.setdefault("time_scale", 0.01)
        sim = Simulator(SimulatorConfig(seed=7, profile=fast_profile(**changes), **config_fields))
        started.append(await sim.start())
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def sim(make_sim: SimFactory) -> Simulator:
    return await make_sim()


@pytest.fixture
async def platform(sim: Simulator) -> AsyncIterator[Platform]:
    async with aiohttp.ClientSession() as http:
        plat = Platform(sim, http)
        yield plat
        for client in plat.clients:
            await client.ws.close()


@pytest.fixture
async def make_platform(make_sim: SimFactory) -> AsyncIterator[Callable[..., Awaitable[Platform]]]:
    async with aiohttp.ClientSession() as http:
        made: list[Platform] = []

        async def make(**changes: Any) -> Platform:
            plat = Platform(await make_sim(**changes), http)
            made.append(plat)
            return plat

        yield make
        for plat in made:
            for client in plat.clients:
                await client.ws.close()
