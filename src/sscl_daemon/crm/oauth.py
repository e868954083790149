"""OAuth 2 refresh-token client shared by the Pipedrive, HubSpot and Salesforce writers.

The daemon writes with one admin connection per CRM: the configured refresh token is
exchanged for an access token on first use and again whenever the CRM answers 401 or the
token's ``expires_in`` has passed. Refreshes are single-flight: concurrent requests that
saw the same stale token share one refresh (a second refresh would burn a rotating refresh
token). A refresh token the server rotates replaces the old one in memory and is handed to
``on_rotate`` so the daemon can keep it across restarts (the configured one may be dead by
then). Tokens never appear in exceptions, reprs or logs.

Token responses also carry the host to talk to (Pipedrive ``api_domain``, Salesforce
``instance_url``); they are kept in :attr:`OAuthClient.extras`.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import time
from collections.abc import Callable, Mapping

import aiohttp

from sscl_daemon.config import OAuthClientSettings

# Refresh a little before the announced expiry so a request does not leave with a token that
# dies on the way.
EXPIRY_MARGIN = 60.0


class ClientAuth(enum.Enum):
    """Where the client id/secret go on the token request (RFC 6749 section 2.3.1)."""

    BASIC = "basic"  # Pipedrive
    BODY = "body"  # HubSpot, Salesforce


class TokenRefusedError(Exception):
    """The token endpoint refused the refresh token or client: only new credentials help."""


class TokenUnavailableError(Exception):
    """The token endpoint could not be reached or failed transiently: try again later."""


class OAuthClient:
    """Holds one access token and refreshes it from a refresh token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token_url: str,
        settings: OAuthClientSettings,
        *,
        client_auth: ClientAuth = ClientAuth.BODY,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_rotate: Callable[[str], None] | None = None,
    ) -> None:
        self._session = session
        self._token_url = token_url
        self._client_id = settings.client_id
        self._client_secret = settings.client_secret.reveal()
        self._refresh_token = settings.refresh_token.reveal()
        self._client_auth = client_auth
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._on_rotate = on_rotate
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()
        self.extras: Mapping[str, str] = {}
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"OAuthClient(token_url={self._token_url!r}, client_id={self._client_id!r})"

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown (for scrubbing CRM error texts)."""
        return tuple(s for s in (self._client_secret, self._refresh_token, self._token) if s)

    def _expired(self) -> bool:
        return self._expires_at is not None and self._clock() >= self._expires_at

    async def access_token(self) -> str:
        """A token believed valid, refreshing first when there is none or it expired."""
        token = self._token
        if token is not None and not self._expired():
            return token
        return await self.refresh(token)

    async def refresh(self, stale: str | None) -> str:
        """Replace ``stale`` (the token a request was refused with) by a fresh one, once."""
        async with self._lock:
            if self._token is not None and self._token != stale and not self._expired():
                return self._token
            self._token = await self._fetch()
            return self._token

    async def _fetch(self) -> str:
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
        headers: dict[str, str] = {}
        if self._client_auth is ClientAuth.BASIC:
            credentials = f"{self._client_id}:{self._client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
        else:
            form |= {"client_id": self._client_id, "client_secret": self._client_secret}
        try:
            async with self._session.post(
                self._token_url, data=form, headers=headers, timeout=self._timeout
            ) as resp:
                status = resp.status
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TokenUnavailableError(
                f"token endpoint {self._token_url} unreachable ({type(exc).__name__})"
            ) from None
        if status >= 500 or status == 429:
            raise TokenUnavailableError(f"token endpoint {self._token_url} answered HTTP {status}")
        if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            raise TokenRefusedError(
                f"token endpoint {self._token_url} refused the refresh token"
                f" (HTTP {status}{', ' + str(error) if error else ''});"
                " renew client_id/client_secret/refresh_token in the writer's configuration"
            )
        self.refreshes += 1
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            self._refresh_token = rotated
            if self._on_rotate is not None:
                self._on_rotate(rotated)
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and expires_in > 0:
            self._expires_at = self._clock() + max(float(expires_in) - EXPIRY_MARGIN, 0.0)
        else:
            self._expires_at = None
        self.extras = {
            k: v
            for k, v in body.items()
            if k in ("api_domain", "instance_url") and isinstance(v, str)
        }
        return str(body["access_token"])
