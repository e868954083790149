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


class MemoryVault:
    """A vault in memory (the Postgres one is tested in test_rotated_tokens.py)."""

    def __init__(self, value: str | None = None) -> None:
        self.value = value
        self.saved: list[str] = []

    async def load(self) -> str | None:
        return self.value

    async def save(self, value: str) -> None:
        self.value = value
        self.saved.append(value)


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
        vault = MemoryVault()
        client = OAuthClient(http_session, URL, SETTINGS, client_auth=ClientAuth.BASIC, vault=vault)
        tokens = await asyncio.gather(*(client.access_token() for _ in range(5)))
        assert tokens == ["tok-1"] * 5
        assert client.refreshes == 1
        assert client.extras == {"api_domain": "https://acme.pipedrive.com"}
        assert vault.saved == ["refresh-new"]
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


class BrokenVault(MemoryVault):
    """A vault whose store is down until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False

    async def load(self) -> str | None:
        if not self.up:
            raise ConnectionRefusedError("store down")
        return await super().load()

    async def save(self, value: str) -> None:
        if not self.up:
            raise ConnectionRefusedError("store down")
        await super().save(value)


async def test_an_unreadable_vault_waits_and_an_unsaved_token_is_saved_later(
    http_session: aiohttp.ClientSession,
) -> None:
    vault = BrokenVault()
    with aioresponses() as m:
        client = OAuthClient(http_session, URL, SETTINGS, vault=vault)
        # Refreshing with the configured token while the stored one cannot be read could
        # burn a token the vault has: wait for the store instead.
        with pytest.raises(TokenUnavailableError, match=r"stored refresh token .* \(Connection"):
            await client.access_token()
        assert m.requests == {}
        vault.up = True
        m.post(URL, payload={"access_token": "tok-1", "refresh_token": "refresh-2"})
        assert await client.access_token() == "tok-1"
        assert vault.saved == ["refresh-2"]
        vault.up = False
        m.post(URL, payload={"access_token": "tok-2", "refresh_token": "refresh-3"})
        assert await client.refresh("tok-1") == "tok-2"  # rotated, but the save failed
        assert vault.saved == ["refresh-2"]
        vault.up = True
        assert await client.access_token() == "tok-2"  # kept before the next request
        assert vault.saved == ["refresh-2", "refresh-3"]


async def test_other_refusals_are_not_retried_with_another_token(
    http_session: aiohttp.ClientSession,
) -> None:
    with aioresponses() as m:
        # A refused client (not an invalid grant) is about client_id/secret: no fallback.
        m.post(URL, status=401, payload={"error": "invalid_client"})
        client = OAuthClient(http_session, URL, SETTINGS, vault=MemoryVault("refresh-stored"))
        with pytest.raises(TokenRefusedError, match="refused the refresh token stored in Postgres"):
            await client.access_token()
        ((_key, requests),) = m.requests.items()
        assert len(requests) == 1
