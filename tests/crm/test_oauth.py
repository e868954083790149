"""The OAuth refresh-token client: single flight, rotation, refusals, no secrets shown."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest
from aioresponses import aioresponses

from sscl_daemon.config import OAuthClientSettings, Secret
from sscl_daemon.crm.oauth import ClientAuth, OAuthClient, TokenRefusedError, TokenUnavailableError

URL = "https://oauth.example.com/oauth/token"
SETTINGS = OAuthClientSettings("cid", Secret("csecret-123"), Secret("refresh-abc"))


async def test_refresh_single_flight_and_rotation(http_session: aiohttp.ClientSession) -> None:
    with aioresponses() as m:
        m.post(
            URL,
            payload={
                "access_token": "tok-1",
                "refresh_token": "refresh-new",
                "expires_in": 3600,
                "api_domain": "https://acme.pipedrive.com",
            },
        )
        rotated: list[str] = []
        client = OAuthClient(
            http_session, URL, SETTINGS, client_auth=ClientAuth.BASIC, on_rotate=rotated.append
        )
        tokens = await asyncio.gather(*(client.access_token() for _ in range(5)))
        assert tokens == ["tok-1"] * 5
        assert client.refreshes == 1
        assert client.extras == {"api_domain": "https://acme.pipedrive.com"}
        assert rotated == ["refresh-new"]
        ((_key, requests),) = m.requests.items()
        sent = requests[0].kwargs
        assert sent["data"] == {"grant_type": "refresh_token", "refresh_token": "refresh-abc"}
        basic = base64.b64encode(b"cid:csecret-123").decode()
        assert sent["headers"]["Authorization"] == f"Basic {basic}"

        m.post(URL, payload={"access_token": "tok-2", "expires_in": 3600})
        # Two requests refused with tok-1 share one refresh.
        again = await asyncio.gather(client.refresh("tok-1"), client.refresh("tok-1"))
        assert again == ["tok-2", "tok-2"]
        assert client.refreshes == 2
        second = next(iter(m.requests.values()))[1].kwargs["data"]
        assert second["refresh_token"] == "refresh-new"


async def test_body_client_auth_and_expiry(http_session: aiohttp.ClientSession) -> None:
    now = [0.0]
    with aioresponses() as m:
        m.post(URL, payload={"access_token": "a", "expires_in": 120})
        m.post(URL, payload={"access_token": "b", "expires_in": 120})
        client = OAuthClient(http_session, URL, SETTINGS, clock=lambda: now[0])
        assert await client.access_token() == "a"
        data = next(iter(m.requests.values()))[0].kwargs["data"]
        assert data["client_id"] == "cid"
        assert data["client_secret"] == "csecret-123"
        now[0] = 59.0
        assert await client.access_token() == "a"
        now[0] = 61.0  # past expires_in minus the safety margin
        assert await client.access_token() == "b"


async def test_refused_and_unavailable(http_session: aiohttp.ClientSession) -> None:
    with aioresponses() as m:
        m.post(URL, status=400, payload={"error": "invalid_grant"})
        client = OAuthClient(http_session, URL, SETTINGS)
        with pytest.raises(TokenRefusedError) as refused:
            await client.access_token()
        assert "invalid_grant" in str(refused.value)
        m.post(URL, status=503)
        with pytest.raises(TokenUnavailableError):
            await client.access_token()
        m.post(URL, exception=aiohttp.ClientConnectionError("boom"))
        with pytest.raises(TokenUnavailableError):
            await client.access_token()
    shown = repr(client) + str(refused.value)
    for secret in ("csecret-123", "refresh-abc"):
        assert secret not in shown
    assert base64.b64encode(b"cid:csecret-123").decode() not in shown
