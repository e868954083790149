"""OAuth for the daemon: JWT bearer login, refresh before expiry, one request at a time.

Every RingCentral call (`rest.py`, the wstoken of `subscription.py`) asks `Authenticator`
for an access token. A JWT login opens a new OAuth session, and WebSocket recovery only works
within the session the `wsc` token was issued in (research/rc-protocol.md A8, D), so the
authenticator refreshes while a refresh token works and logs in with the JWT only when there
is none or the platform rejects it. The session id is exposed so recovery tokens can be tied
to it, and a refresh token can be handed in at start (and reported on change) so that a
restarted daemon continues the same session.

:class:`KeptSession` is where the daemon keeps that refresh token: in Postgres (the
``credentials`` table, through a vault from ``store/credentials.py``), so that a standby on
another machine, which shares the database but not the state directory, takes an account
over within the same OAuth session and can use the stored WebSocket recovery token. The
state-directory file earlier versions wrote is read once when Postgres has no token yet
(an upgrade), and removed once the token is in Postgres. It keeps the access token too
(with its expiry, in a second credential), so a restart within the token's hour makes no
token request: each is one of the Auth rate group's 5 a minute (issue 19).

Bad credentials raise `AuthError` (fatal: the daemon exits non-zero). Tokens never appear in
reprs, logs or exception messages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import aiohttp
import msgspec
import structlog

from sscl_daemon.config import RingCentralSettings, Secret
from sscl_daemon.errors import SsclError
from sscl_daemon.ringcentral.ratelimit import Clock, GroupLimiter, RateGroup, Sleep, throttle_delay
from sscl_daemon.ringcentral.retry import Retryable, RetryPolicy, with_retries

log = structlog.get_logger(__name__)

TOKEN_PATH = "/restapi/oauth/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class AuthError(SsclError):
    """RingCentral refused the configured credentials; retrying cannot help."""


class _TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    expires_in: float
    refresh_token: str | None = None
    refresh_token_expires_in: float | None = None
    owner_id: str | None = None
    endpoint_id: str | None = None
    session_id: str | None = None


class _ErrorResponse(msgspec.Struct, kw_only=True):
    error: str = ""
    error_description: str = ""


@dataclass(frozen=True)
class TokenSet:
    """The tokens of one OAuth session at one moment (expiries on the monotonic clock)."""

    access_token: str = field(repr=False)
    expires_at: float
    refresh_token: str | None = field(repr=False)
    refresh_expires_at: float | None
    session_id: str
    owner_id: str | None

    def __repr__(self) -> str:
        return f"TokenSet(session_id={self.session_id!r}, owner_id={self.owner_id!r})"


TokensChanged = Callable[[TokenSet], Awaitable[None]]


class _Rejected(SsclError):
    """The token endpoint refused the grant (4xx other than 429)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"HTTP {status} {error}: {description}")
        self.status = status
        self.error = error


class Authenticator:
    """Hands out a valid access token, refreshing proactively and single-flight."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        settings: RingCentralSettings,
        *,
        limiter: GroupLimiter | None = None,
        retry: RetryPolicy | None = None,
        refresh_margin: float = 60.0,
        refresh_token: Secret | None = None,
        access: TokenSet | None = None,
        on_tokens: TokensChanged | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._http = http
        self._url = settings.server.rstrip("/") + TOKEN_PATH
        self._basic = aiohttp.encode_basic_auth(settings.client_id, settings.client_secret.reveal())
        self._jwt = settings.jwt
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        self._limiter = limiter or GroupLimiter()
        self._retry = retry or RetryPolicy()
        self._margin = refresh_margin
        self._initial_refresh = refresh_token
        self._on_tokens = on_tokens
        self._clock = clock
        # The last run's access token (no refresh token in it: ``refresh_token`` has that).
        self._tokens: TokenSet | None = access
        self._lock = asyncio.Lock()
        self.logins = 0
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"Authenticator(url={self._url!r}, session_id={self.session_id!r})"

    @property
    def session_id(self) -> str | None:
        """Id of the current OAuth session (recovery tokens belong to it)."""
        return self._tokens.session_id if self._tokens else None

    @property
    def owner_id(self) -> str | None:
        return self._tokens.owner_id if self._tokens else None

    async def access_token(self) -> str:
        """A token valid for at least `refresh_margin` seconds more (or as long as it lasts)."""
        tokens = self._tokens
        if tokens is not None and not self._stale(tokens):
            return tokens.access_token
        async with self._lock:
            tokens = self._tokens
            if tokens is None or self._stale(tokens):
                tokens = await self._renew(tokens)
            return tokens.access_token

    async def invalidate(self, rejected_token: str) -> None:
        """The API answered 401 to `rejected_token`: get a new one (once, whoever asks first)."""
        async with self._lock:
            tokens = self._tokens
            if tokens is not None and tokens.access_token == rejected_token:
                await self._renew(tokens)

    def seconds_until_refresh(self) -> float:
        """How long the current access token stays fresh (0 if there is none)."""
        tokens = self._tokens
        if tokens is None:
            return 0.0
        return max(0.0, tokens.expires_at - self._margin - self._clock())

    async def keep_fresh(self, sleep: Sleep = asyncio.sleep) -> None:
        """Refresh before expiry forever, so the session outlives idle periods (a task)."""
        while True:
            await sleep(self.seconds_until_refresh())
            await self.access_token()

    # -- internals ---------------------------------------------------------------------------

    def _stale(self, tokens: TokenSet) -> bool:
        lifetime_left = tokens.expires_at - self._clock()
        return lifetime_left <= self._margin

    async def _renew(self, current: TokenSet | None) -> TokenSet:
        refresh = current.refresh_token if current else None
        if refresh is not None and current is not None:
            expiry = current.refresh_expires_at
            if expiry is not None and expiry <= self._clock():
                refresh = None
        # The kept refresh token, until first used (also after a kept access token).
        kept = self._initial_refresh
        if refresh is None and kept is not None:
            refresh = kept.reveal() or None
        tokens: TokenSet | None = None
        if refresh is not None:
            try:
                tokens = await self._grant(
                    {"grant_type": "refresh_token", "refresh_token": refresh}
                )
                self.refreshes += 1
            except _Rejected as exc:
                # A rejected refresh token ends the session; only now is a new login right.
                log.warning(
                    "ringcentral.refresh_token.rejected", status=exc.status, error=exc.error
                )
        # Dropped once used or refused, not when the token endpoint was unreachable (a 503
        # burst at start): a JWT login then would open a new session, and the WebSocket
        # recovery token kept with the old one would be refused.
        if kept is not None:
            self._initial_refresh = None
        if tokens is None:
            try:
                tokens = await self._grant(
                    {"grant_type": JWT_GRANT, "assertion": self._jwt.reveal()}
                )
            except _Rejected as exc:
                raise AuthError(
                    f"RingCentral refused the JWT login at {self._url} ({exc}); check "
                    "ringcentral.client_id, ringcentral.client_secret and ringcentral.jwt"
                ) from None
            self.logins += 1
            log.info("ringcentral.session.logged_in", session_id=tokens.session_id)
        self._tokens = tokens
        if self._on_tokens is not None:
            await self._on_tokens(tokens)
        return tokens

    async def _grant(self, form: dict[str, str]) -> TokenSet:
        async def attempt() -> TokenSet:
            await self._limiter.acquire(RateGroup.AUTH)
            started = self._clock()
            try:
                async with self._http.post(
                    self._url,
                    data=form,
                    headers={"Authorization": self._basic},
                    timeout=self._timeout,
                ) as response:
                    body = await response.read()
                    headers = dict(response.headers)
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise Retryable(f"token request failed: {type(exc).__name__}") from None
            self._limiter.observe(RateGroup.AUTH, headers)
            delay = throttle_delay(status, headers)
            if delay is not None:
                self._limiter.close_for(RateGroup.AUTH, delay)
                raise Retryable(f"token endpoint answered {status}", delay)
            if status >= 500:
                raise Retryable(f"token endpoint answered {status}")
            if status >= 400:
                error = _decode_error(body)
                raise _Rejected(status, error.error or "error", error.error_description)
            try:
                data = msgspec.json.decode(body, type=_TokenResponse)
            except (msgspec.DecodeError, RecursionError):
                raise Retryable(f"token endpoint sent an unreadable {status} answer") from None
            session = data.session_id or f"{data.owner_id}/{data.endpoint_id}"
            refresh_expiry = (
                started + data.refresh_token_expires_in
                if data.refresh_token_expires_in is not None
                else None
            )
            return TokenSet(
                access_token=data.access_token,
                expires_at=started + data.expires_in,
                refresh_token=data.refresh_token,
                refresh_expires_at=refresh_expiry,
                session_id=session,
                owner_id=data.owner_id,
            )

        return await with_retries(self._retry, attempt)


class RefreshTokenVault(Protocol):
    """One stored credential (``store.credentials.CredentialVault``); both calls may raise."""

    async def load(self) -> str | None: ...

    async def save(self, value: str) -> None: ...


@dataclass(frozen=True)
class KeptSession:
    """The account's RingCentral refresh token across restarts and instances.

    ``refresh_token`` is what to hand the :class:`Authenticator` at start, ``keep`` its
    ``on_tokens``. Neither raises: without a stored token the authenticator logs in with
    the JWT (a new session; only WebSocket recovery is lost), so a store hiccup must not
    stop the account.
    """

    vault: RefreshTokenVault
    # Written by sscl-daemon before the token moved to Postgres; read for upgrades only.
    legacy_file: Path | None = None
    # The access token with its expiry (unix time, turned into time.monotonic, the daemon's
    # authenticator clock), to be used again by the next start.
    access_vault: RefreshTokenVault | None = None

    async def access(self) -> TokenSet | None:
        """The last run's access token, what ``Authenticator(access=...)`` takes."""
        if self.access_vault is None:
            return None
        try:
            stored = await self.access_vault.load()
            kept = msgspec.json.decode(stored or "null", type=_KeptAccess | None)
        except Exception as exc:  # the vault's errors (store down), a value unreadable
            log.warning("ringcentral.stored_access.unreadable", error=type(exc).__name__)
            return None
        if kept is None:
            return None
        return TokenSet(
            access_token=kept.access_token,
            expires_at=time.monotonic() + kept.expires_at - time.time(),
            refresh_token=None,
            refresh_expires_at=None,
            session_id=kept.session_id,
            owner_id=kept.owner_id,
        )

    async def refresh_token(self) -> Secret | None:
        try:
            stored = await self.vault.load()
        except Exception as exc:  # the vault's errors (store down): start without it
            log.warning("ringcentral.stored_session.unreadable", error=type(exc).__name__)
            stored = None
        if stored:
            return Secret(stored)
        if self.legacy_file is None:
            return None
        try:
            value = (await asyncio.to_thread(self.legacy_file.read_text)).strip()
        except OSError:
            return None
        return Secret(value) if value else None

    async def keep(self, tokens: TokenSet) -> None:
        await self._keep_access(tokens)
        if not tokens.refresh_token:
            return
        try:
            await self.vault.save(tokens.refresh_token)
        except Exception as exc:  # the vault's errors; the session just cannot be resumed
            log.warning(
                "ringcentral.session.store_failed",
                error=type(exc).__name__,
                hint="the RingCentral session cannot be resumed after a restart",
            )
            return
        if self.legacy_file is not None:
            # A stale copy of a secret on disk helps nobody once Postgres has the token.
            try:
                await asyncio.to_thread(self.legacy_file.unlink, missing_ok=True)
            except OSError as exc:
                log.warning("ringcentral.legacy_token_file.remove_failed", error=exc.strerror)

    async def _keep_access(self, tokens: TokenSet) -> None:
        if self.access_vault is None:
            return
        kept = _KeptAccess(
            access_token=tokens.access_token,
            expires_at=time.time() + tokens.expires_at - time.monotonic(),
            session_id=tokens.session_id,
            owner_id=tokens.owner_id,
        )
        try:
            await self.access_vault.save(msgspec.json.encode(kept).decode())
        except Exception as exc:  # the vault's errors; the next start refreshes instead
            log.warning("ringcentral.access.store_failed", error=type(exc).__name__)


class _KeptAccess(msgspec.Struct, kw_only=True):
    access_token: str
    expires_at: float  # unix time: the monotonic clock does not survive the process
    session_id: str
    owner_id: str | None = None


def _decode_error(body: bytes) -> _ErrorResponse:
    try:
        return msgspec.json.decode(body, type=_ErrorResponse)
    except (msgspec.DecodeError, RecursionError):
        return _ErrorResponse()
