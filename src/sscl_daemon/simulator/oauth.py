"""OAuth state of the simulated platform: client check, JWT and refresh grants, bearer tokens.

Pure and synchronous (time is passed in): the HTTP handlers in `platform_rest.py` and the
WebSocket gateway call it. Follows research/rc-protocol.md section D:

* a JWT login opens a new OAuth *session*; a refresh keeps the session (WS recovery works only
  within one session, WSG-1003 otherwise — research A8);
* refresh tokens are single use: the old access token dies at once and a reused refresh token
  gets `invalid_grant` / OAU-211 [doc: refresh-tokens.md] (the ~10 s grace for a reused refresh
  token is not modelled);
* with no credentials configured any client id/secret/JWT is accepted (issue 5 point 6).

Error bodies use the token-endpoint shape `{error, error_description, errors:[{errorCode,
message}]}`; the OAU codes are the ones seen in community answers (OAU-123 missing client
auth, OAU-210 expired, OAU-211 revoked, OAU-213 not found); the others are marked [inf].
"""

from __future__ import annotations

import base64
import binascii
import enum
import secrets
from dataclasses import dataclass, field

from sscl_daemon.simulator.profiles import PlatformProfile

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_GRANT = "refresh_token"
SCOPE = "CallControl ReadAccounts ReadCallLog ReadCallRecording WebSocketsSubscriptions"


class TokenProblem(enum.Enum):
    """Why a bearer token was refused."""

    MISSING = "missing"
    UNKNOWN = "unknown"
    EXPIRED = "expired"


@dataclass(frozen=True)
class OAuthError(Exception):
    """A refusal from the token endpoint or of a bearer token, with its HTTP status and body."""

    status: int
    error: str
    description: str
    code: str

    def body(self) -> dict[str, object]:
        return {
            "error": self.error,
            "error_description": self.description,
            "errors": [{"errorCode": self.code, "message": self.description}],
        }

    def __str__(self) -> str:
        return f"{self.status} {self.error} {self.code}: {self.description}"


@dataclass(frozen=True)
class Credentials:
    """What `--client-id/--client-secret/--jwt` make the simulator check (None = accept any)."""

    client_id: str | None = None
    client_secret: str | None = None
    jwt: str | None = None

    def __repr__(self) -> str:
        # never print the secrets themselves
        return f"Credentials(client_id={self.client_id!r}, client_secret=***, jwt=***)"


@dataclass
class OAuthSession:
    """One login: survives refreshes, ends when the session is revoked."""

    session_id: str
    client_id: str
    owner_id: str
    revoked: bool = False


@dataclass
class _AccessToken:
    session: OAuthSession
    expires_at: float


@dataclass
class _RefreshToken:
    session: OAuthSession
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class Grant:
    """A successful token response."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_token_expires_in: int
    session: OAuthSession

    def body(self, endpoint_id: str) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "refresh_token_expires_in": self.refresh_token_expires_in,
            "scope": SCOPE,
            "owner_id": self.session.owner_id,
            "endpoint_id": endpoint_id,
            "session_id": self.session.session_id,
        }

    def __repr__(self) -> str:
        return f"Grant(session={self.session.session_id}, expires_in={self.expires_in})"


@dataclass
class OAuthServer:
    """Token issuing and checking for one simulated account."""

    owner_id: str
    profile: PlatformProfile
    credentials: Credentials = field(default_factory=Credentials)
    _access: dict[str, _AccessToken] = field(default_factory=dict, repr=False)
    _refresh: dict[str, _RefreshToken] = field(default_factory=dict, repr=False)
    sessions: list[OAuthSession] = field(default_factory=list, repr=False)

    # -- client authentication -------------------------------------------------------------

    @staticmethod
    def client_of(authorization: str | None) -> str | None:
        """The client id in an HTTP Basic header, unchecked (for rate-limit keys)."""
        if not authorization or not authorization.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, _ = decoded.partition(":")
        return client_id if sep and client_id else None

    def check_client(self, authorization: str | None, form_client_id: str | None) -> str:
        """The client id from HTTP Basic auth (or a bare `client_id` form field)."""
        client_id, secret = form_client_id, None
        if authorization and authorization.lower().startswith("basic "):
            client_id = self.client_of(authorization)
            if client_id is not None:
                secret = base64.b64decode(authorization[6:].strip()).decode().partition(":")[2]
        if not client_id:
            raise OAuthError(401, "invalid_client", "Client authentication is required", "OAU-123")
        expected = self.credentials
        if expected.client_id is not None and client_id != expected.client_id:
            # [inf] code for an unknown client id
            raise OAuthError(401, "invalid_client", "Invalid client", "OAU-153")
        if expected.client_secret is not None and secret != expected.client_secret:
            raise OAuthError(401, "invalid_client", "Invalid client", "OAU-153")
        return client_id

    # -- grants ----------------------------------------------------------------------------

    def grant(self, client_id: str, form: dict[str, str], now: float) -> Grant:
        """Serve one token request (form already parsed); raises `OAuthError`."""
        grant_type = form.get("grant_type", "")
        if grant_type == JWT_GRANT:
            return self._jwt_grant(client_id, form.get("assertion", ""), now)
        if grant_type == REFRESH_GRANT:
            return self._refresh_grant(client_id, form.get("refresh_token", ""), now)
        if not grant_type:
            raise OAuthError(400, "invalid_request", "Parameter [grant_type] is missing", "OAU-101")
        raise OAuthError(
            400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}", "OAU-250"
        )

    def _jwt_grant(self, client_id: str, assertion: str, now: float) -> Grant:
        if not assertion:
            raise OAuthError(400, "invalid_request", "Parameter [assertion] is missing", "OAU-101")
        if self.credentials.jwt is not None and assertion != self.credentials.jwt:
            # [inf] code for a JWT that does not verify
            raise OAuthError(400, "invalid_grant", "Invalid JWT token", "OAU-144")
        session = OAuthSession("ses-" + secrets.token_hex(8), client_id, self.owner_id)
        self.sessions.append(session)
        cap = self.profile.max_oauth_sessions
        if cap is not None:
            live = [s for s in self.sessions if not s.revoked and s.client_id == client_id]
            for oldest in live[: max(0, len(live) - cap)]:
                oldest.revoked = True
        return self._issue(session, now)

    def _refresh_grant(self, client_id: str, token: str, now: float) -> Grant:
        if not token:
            raise OAuthError(
                400, "invalid_request", "Parameter [refresh_token] is missing", "OAU-101"
            )
        record = self._refresh.get(token)
        if record is None or record.session.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "Token not found", "OAU-213")
        if record.used or record.session.revoked:
            raise OAuthError(400, "invalid_grant", "Token revoked", "OAU-211")
        if now >= record.expires_at:
            raise OAuthError(400, "invalid_grant", "Token expired", "OAU-210")
        record.used = True
        # the old access token(s) of this session die immediately [doc: refresh-tokens.md]
        for key in [k for k, v in self._access.items() if v.session is record.session]:
            del self._access[key]
        return self._issue(record.session, now)

    def _issue(self, session: OAuthSession, now: float) -> Grant:
        access = "sim-at-" + secrets.token_urlsafe(24)
        refresh = "sim-rt-" + secrets.token_urlsafe(24)
        ttl, rttl = self.profile.access_token_ttl_s, self.profile.refresh_token_ttl_s
        self._access[access] = _AccessToken(session, now + ttl)
        self._refresh[refresh] = _RefreshToken(session, now + rttl)
        return Grant(access, refresh, round(ttl), round(rttl), session)

    # -- bearer tokens ---------------------------------------------------------------------

    def authenticate(self, authorization: str | None, now: float) -> OAuthSession:
        """The session behind an `Authorization: Bearer` header; raises `OAuthError` (401)."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise OAuthError(
                401, "invalid_request", "Authorization header is not specified", "OAU-149"
            )
        return self.session_for(authorization[7:].strip(), now)

    def session_for(self, token: str, now: float) -> OAuthSession:
        record = self._access.get(token)
        if record is None or record.session.revoked:
            raise OAuthError(401, "invalid_token", "Token not found", "OAU-213")
        if now >= record.expires_at:
            raise OAuthError(401, "invalid_token", "Token expired", "OAU-210")
        return record.session

    # -- fault injection -------------------------------------------------------------------

    def expire_access_tokens(self) -> int:
        """Make every live access token expired now; returns how many."""
        for record in self._access.values():
            record.expires_at = float("-inf")
        return len(self._access)

    def expire_refresh_tokens(self) -> int:
        for record in self._refresh.values():
            record.expires_at = float("-inf")
        return len(self._refresh)

    def revoke_sessions(self) -> int:
        """Revoke every OAuth session (tokens of any kind stop working)."""
        for session in self.sessions:
            session.revoked = True
        return len(self.sessions)
