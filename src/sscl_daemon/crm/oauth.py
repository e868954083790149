"""OAuth 2 refresh-token client shared by the CRM writers (Pipedrive, HubSpot, Salesforce, Zoho,
Clio, Bullhorn), and the token request every token endpoint call goes through.

The daemon writes with one admin connection per CRM: the configured refresh token is
exchanged for an access token on first use and again whenever the CRM answers 401 or the
token's ``expires_in`` has passed. Refreshes are single-flight: concurrent requests that
saw the same stale token share one refresh (a second refresh would burn a rotating refresh
token). Tokens never appear in exceptions, reprs or logs.

Rotation. A token endpoint that answers a refresh with a new refresh token (Pipedrive)
revokes the old one, so the configured token is dead after the first refresh. With a
:class:`TokenVault` (the daemon attaches a Postgres-backed one, ``store/credentials.py``,
through ``crm/wiring.py``) every new refresh token is saved the moment it arrives, and the
first refresh after a start -- on this machine or on a standby's -- uses the stored token
instead of the configured one. If the stored token is refused with ``invalid_grant`` the
vault is read again (another client of the same vault may have rotated it just now) and
then the configured token is tried, with a warning; when every candidate is refused the
error names them and the fix.

Token responses also carry the host to talk to (Pipedrive ``api_domain``, Salesforce
``instance_url``); they are kept in :attr:`OAuthClient.extras`.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import aiohttp

from sscl_daemon.config import OAuthClientSettings
from sscl_daemon.errors import SsclError
from sscl_daemon.logging import get_logger

log = get_logger(__name__)

# Refresh a little before the announced expiry so a request does not leave with a token that
# dies on the way.
EXPIRY_MARGIN = 60.0


class ClientAuth(enum.Enum):
    """Where the client id/secret go on the token request (RFC 6749 section 2.3.1)."""

    BASIC = "basic"  # Pipedrive
    BODY = "body"  # HubSpot, Salesforce


class TokenRefusedError(SsclError):
    """The token endpoint refused the refresh token or client: only new credentials help.

    ``error`` is the endpoint's OAuth error code (``invalid_grant``: the refresh token
    itself is dead; anything else points at the client id/secret), "" when it gave none.
    """

    def __init__(self, message: str, error: str = "") -> None:
        super().__init__(message)
        self.error = error


class TokenUnavailableError(SsclError):
    """The token endpoint could not be reached or failed transiently: try again later."""


async def token_request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    client_timeout: aiohttp.ClientTimeout,
) -> tuple[int, object]:
    """Ask a token (or session) endpoint; the answer's status and JSON body (None when the
    body is not JSON), for the caller to judge refusals by its own grant.

    Unreachable, 5xx and 429 raise :class:`TokenUnavailableError`: those pass with time,
    whatever the grant. The message names the endpoint and never the form or the query (they
    hold secrets).
    """
    try:
        async with session.request(
            method, url, params=params, data=form, headers=headers, timeout=client_timeout
        ) as resp:
            status = resp.status
            try:
                body: object = await resp.json(content_type=None)
            except ValueError:
                body = None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TokenUnavailableError(
            f"token endpoint {url} unreachable ({type(exc).__name__})"
        ) from None
    if status >= 500 or status == 429:
        raise TokenUnavailableError(f"token endpoint {url} answered HTTP {status}")
    return status, body


async def post_token_request(
    session: aiohttp.ClientSession,
    url: str,
    form: Mapping[str, str],
    *,
    headers: Mapping[str, str] | None = None,
    client_timeout: aiohttp.ClientTimeout,
) -> tuple[int, object]:
    """POST a token request (any grant): :func:`token_request` with a form."""
    return await token_request(
        session, "POST", url, form=form, headers=headers, client_timeout=client_timeout
    )


class TokenVault(Protocol):
    """Where a rotated refresh token outlives the process (``store.credentials.CredentialVault``).

    Both methods may raise (the store is down); the client then retries later and never
    shows the exception's text together with a token.
    """

    async def load(self) -> str | None: ...

    async def save(self, value: str) -> None: ...


class _Source(enum.Enum):
    CONFIGURED = "the configured refresh_token"
    STORED = "the refresh token stored in Postgres"
    ROTATED = "the rotated refresh token (kept in memory only)"


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
        vault: TokenVault | None = None,
    ) -> None:
        self._session = session
        self._token_url = token_url
        self._client_id = settings.client_id
        self._client_secret = settings.client_secret.reveal()
        self._configured = settings.refresh_token.reveal()
        self._refresh_token = self._configured
        self._source = _Source.CONFIGURED
        self._client_auth = client_auth
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._vault = vault
        self._vault_read = False
        # A rotated token the vault could not take yet; saved again before the next request.
        self._unsaved: str | None = None
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock = asyncio.Lock()
        self.extras: Mapping[str, str] = {}
        self.refreshes = 0

    @classmethod
    def at(
        cls,
        session: aiohttp.ClientSession,
        base_url: str,
        path: str,
        settings: OAuthClientSettings,
        *,
        client_auth: ClientAuth = ClientAuth.BODY,
        timeout: float = 30.0,
    ) -> OAuthClient:
        """A client of the token endpoint at ``path`` under a CRM's configured base URL."""
        url = f"{base_url.rstrip('/')}{path}"
        return cls(session, url, settings, client_auth=client_auth, timeout=timeout)

    def __repr__(self) -> str:
        return f"OAuthClient(token_url={self._token_url!r}, client_id={self._client_id!r})"

    @property
    def identity(self) -> str:
        """A fingerprint of the token endpoint, client id and *configured* refresh token.

        The vault's key carries it, so a stored token is only ever used with the
        configuration it grew from: configuring a new refresh token (after a revocation, or
        for another company) starts from that token instead of an older stored one.
        """
        seed = "\0".join((self._token_url, self._client_id, self._configured))
        return hashlib.sha256(seed.encode()).hexdigest()[:16]

    def keep_rotated_in(self, vault: TokenVault) -> None:
        """Save rotated refresh tokens in ``vault`` and prefer its token (before first use)."""
        self._vault = vault
        self._vault_read = False

    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown (for scrubbing CRM error texts)."""
        values = (self._client_secret, self._configured, self._refresh_token, self._token)
        return tuple(s for s in values if s)

    def _expired(self) -> bool:
        return self._expires_at is not None and self._clock() >= self._expires_at

    async def access_token(self) -> str:
        """A token believed valid, refreshing first when there is none or it expired."""
        if self._unsaved is not None:
            await self._keep(self._unsaved)
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
        if self._vault is not None and not self._vault_read:
            stored = await self._load()
            self._vault_read = True
            if stored:
                self._refresh_token, self._source = stored, _Source.STORED
        tried: list[_Source] = []
        while True:
            try:
                body = await self._grant(self._refresh_token)
                break
            except TokenRefusedError as exc:
                tried.append(self._source)
                if exc.error != "invalid_grant" or not await self._next_candidate(tried):
                    raise self._refused(exc, tried) from None
        self.refreshes += 1
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            # The old token is revoked now: keep the new one before anything else happens.
            self._refresh_token = rotated
            self._source = _Source.STORED if self._vault is not None else _Source.ROTATED
            await self._keep(rotated)
        elif tried:
            # A fallback worked and was not rotated: store it, so the next start does not
            # begin with the refused token again.
            await self._keep(self._refresh_token)
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

    async def _load(self) -> str | None:
        assert self._vault is not None
        try:
            return await self._vault.load()
        except Exception as exc:  # the vault's own errors (store down): any means "not now"
            raise TokenUnavailableError(
                f"reading the stored refresh token for {self._token_url} failed"
                f" ({type(exc).__name__})"
            ) from None

    async def _keep(self, token: str) -> None:
        """Save a rotated token; if the vault cannot take it now, try again on the next use."""
        if self._vault is None:
            return
        try:
            await self._vault.save(token)
        except Exception as exc:  # the vault's own errors; the token stays in memory meanwhile
            self._unsaved = token
            log.error(
                "crm.oauth.rotated_token_unsaved",
                token_url=self._token_url,
                error=type(exc).__name__,
                hint="a restart now would need a new refresh token; saving the rotated one is"
                " retried before the next request",
            )
            return
        if self._unsaved == token:
            self._unsaved = None

    async def _next_candidate(self, tried: list[_Source]) -> bool:
        """After ``invalid_grant``: the vault's token if someone rotated it meanwhile, else
        the configured one once. False when nothing is left to try."""
        failed = self._refresh_token
        if self._vault is not None:
            current = await self._load()
            if current and current != failed:
                log.info(
                    "crm.oauth.stored_token_reloaded",
                    token_url=self._token_url,
                    hint="the stored refresh token was rotated meanwhile; using the new one",
                )
                self._refresh_token, self._source = current, _Source.STORED
                return True
        if _Source.CONFIGURED in tried or self._configured == failed:
            return False
        log.warning(
            "crm.oauth.stored_token_refused",
            token_url=self._token_url,
            reason="invalid_grant",
            hint="the refresh token stored in Postgres was refused; falling back to the"
            " configured refresh_token",
        )
        self._refresh_token, self._source = self._configured, _Source.CONFIGURED
        return True

    def _refused(self, exc: TokenRefusedError, tried: list[_Source]) -> TokenRefusedError:
        if exc.error != "invalid_grant":
            return exc
        names = " and ".join(dict.fromkeys(source.value for source in tried))
        stored = (
            ""
            if _Source.STORED in tried or self._vault is None
            else (" and no rotated refresh token is stored in Postgres for it")
        )
        return TokenRefusedError(
            f"token endpoint {self._token_url} refused {names} (invalid_grant: revoked or"
            f" expired){stored}; authorise the app again and put the new refresh_token in"
            " the writer's configuration",
            exc.error,
        )

    async def _grant(self, refresh_token: str) -> dict[str, object]:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        headers: dict[str, str] = {}
        if self._client_auth is ClientAuth.BASIC:
            credentials = f"{self._client_id}:{self._client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
        else:
            form |= {"client_id": self._client_id, "client_secret": self._client_secret}
        status, body = await post_token_request(
            self._session, self._token_url, form, headers=headers, client_timeout=self._timeout
        )
        if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            code = error if isinstance(error, str) else ""
            raise TokenRefusedError(
                f"token endpoint {self._token_url} refused {self._source.value}"
                f" (HTTP {status}{', ' + code if code else ''});"
                " renew client_id/client_secret/refresh_token in the writer's configuration",
                code,
            )
        return body
