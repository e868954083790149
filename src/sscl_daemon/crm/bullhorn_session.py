"""Bullhorn's two-step sign-in (``crm/bullhorn.py`` -> here -> Bullhorn): an OAuth client plus
the REST session made from its access token, the text of Bullhorn's error answers, and a
string literal of its query language.

``GET {login_url}/rest-services/login?version=2.0&access_token=...`` answers a
``BhRestToken`` (sent as a header on every request) and the corporation's ``restUrl``. A
session that timed out answers 401: :class:`BullhornSession` logs in again, refreshing the
access token first when the login itself is refused (``crm/bullhorn.py`` tells the whole
flow).
"""

from __future__ import annotations

import asyncio
from typing import Final

import aiohttp

from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.http import OAuthBearer, error_message, token_failure
from sscl_daemon.crm.oauth import (
    OAuthClient,
    TokenRefusedError,
    TokenUnavailableError,
    token_request,
)

CRM: Final = "Bullhorn"


def bullhorn_message(body: object, text: str) -> str:
    """``errorMessage`` (and the per-field ``errors``) of a Bullhorn error answer."""
    if isinstance(body, dict) and isinstance(body.get("errorMessage"), str):
        parts = [body["errorMessage"]]
        errors = body.get("errors")
        for err in errors if isinstance(errors, list) else []:
            if isinstance(err, dict):
                parts.append(
                    f"{err.get('propertyName')}: {err.get('detailMessage') or err.get('type')}"
                )
        return "; ".join(parts)
    return error_message(body, text)


class BullhornSession(OAuthBearer):
    """An OAuth client plus the REST session made from its access token."""

    def __init__(
        self, client: OAuthClient, session: aiohttp.ClientSession, login_url: str, timeout: float
    ) -> None:
        super().__init__(client)
        self._session = session
        self._login_url = f"{login_url.rstrip('/')}/rest-services/login"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._rest_token: str | None = None
        self.rest_url: str | None = None
        self._lock = asyncio.Lock()
        self.logins = 0

    def secrets(self) -> tuple[str, ...]:
        return (*self.client.secrets(), *((self._rest_token,) if self._rest_token else ()))

    async def ensure(self) -> LookupFailure | None:
        """Log in if there is no session yet (the REST URL comes from the login)."""
        try:
            if self._rest_token is None:
                await self._relogin(None)
        except (TokenRefusedError, TokenUnavailableError) as exc:
            return token_failure(CRM, exc)
        return None

    async def apply(self, headers: dict[str, str], params: dict[str, str]) -> str | None:
        if self._rest_token is None:
            await self._relogin(None)
        assert self._rest_token is not None
        headers["BhRestToken"] = self._rest_token
        return self._rest_token

    async def refresh(self, used: str | None) -> bool:
        await self._relogin(used)
        return True

    async def _relogin(self, stale: str | None) -> None:
        async with self._lock:
            if self._rest_token is not None and self._rest_token != stale:
                return
            access = await self.client.access_token()
            status, body = await self._login(access)
            if status == 401:
                # The access token died before its ten minutes: refresh it once.
                access = await self.client.refresh(access)
                status, body = await self._login(access)
            token = body.get("BhRestToken") if isinstance(body, dict) else None
            rest = body.get("restUrl") if isinstance(body, dict) else None
            if status != 200 or not isinstance(token, str) or not isinstance(rest, str):
                raise TokenRefusedError(
                    f"{CRM} REST login refused (HTTP {status}); check the API user's access"
                )
            self.logins += 1
            self._rest_token, self.rest_url = token, rest

    async def _login(self, access: str) -> tuple[int, object]:
        return await token_request(
            self._session,
            "GET",
            self._login_url,
            params={"version": "2.0", "access_token": access},
            client_timeout=self._timeout,
        )


def bullhorn_string(value: str) -> str:
    """``value`` as a string literal in a Bullhorn ``where`` clause (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"
