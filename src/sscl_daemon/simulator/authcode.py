"""Stand-in for the CRMs' OAuth consent step: authorize, redirect with a code, code for tokens.

Where it sits: ``sscl-daemon oauth pipedrive|salesforce`` (``commands/oauth.py``) is tested
against it; the refresh token it hands out is registered in the CRM stand-in's state
(``simulator/crm/pipedrive.py``, ``simulator/crm/salesforce.py``), so the writer's own
refresh grant accepts it there afterwards. After the vendors' documentation:

* Pipedrive (``oauth.pipedrive.com``): ``GET /oauth/authorize?client_id&redirect_uri&state``;
  ``POST /oauth/token`` with HTTP Basic client credentials and the form
  ``grant_type=authorization_code&code&redirect_uri``; the answer carries ``access_token``,
  ``refresh_token``, ``expires_in``, ``scope`` and ``api_domain``.
* Salesforce (``login.salesforce.com``): ``GET /services/oauth2/authorize?response_type=code
  &client_id&redirect_uri&state[&code_challenge&code_challenge_method=S256][&scope]``;
  ``POST /services/oauth2/token`` with ``client_id``/``client_secret`` in the form and
  ``code_verifier`` when a challenge was given (a wrong or missing verifier is
  ``invalid_grant``); a refresh token only with the ``refresh_token`` scope; the answer
  carries ``instance_url``.

The user's approval is simulated: an authorize request from a registered redirect address
is answered at once with a 302 to it carrying ``code`` and ``state`` (or
``error=access_denied`` when :attr:`AuthCodeState.approve` is off). Codes are single use and
expire after a minute.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from sscl_daemon.simulator.crm.common import json_response
from sscl_daemon.simulator.crm.pipedrive import PipedriveState
from sscl_daemon.simulator.crm.salesforce import SalesforceState

CODE_LIFETIME = 60.0
Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass
class _Code:
    redirect_uri: str
    challenge: str | None
    scope: str
    expires: float


@dataclass
class AuthCodeState:
    """One app registration at one CRM's authorization server."""

    vendor: str  # "pipedrive" or "salesforce"
    client_id: str
    client_secret: str
    redirect_uris: set[str]
    # Registers a new refresh token with the CRM stand-in and returns it.
    issue_refresh_token: Callable[[], str]
    api_host: str = ""  # api_domain / instance_url named in the answer
    approve: bool = True
    codes: dict[str, _Code] = field(default_factory=dict)
    exchanged: int = 0

    @classmethod
    def pipedrive(cls, crm: PipedriveState, user_id: int, redirect_uri: str) -> AuthCodeState:
        def issue() -> str:
            token = secrets.token_hex(16)
            crm.refresh_tokens[token] = user_id
            return token

        return cls("pipedrive", crm.client_id, crm.client_secret, {redirect_uri}, issue)

    @classmethod
    def salesforce(cls, crm: SalesforceState, redirect_uri: str) -> AuthCodeState:
        def issue() -> str:
            crm.refresh_token = f"5Aep861{secrets.token_hex(16)}"
            return crm.refresh_token

        return cls("salesforce", crm.client_id, crm.client_secret, {redirect_uri}, issue)


def _error(error: str, description: str, status: int = 400) -> web.Response:
    return json_response({"error": error, "error_description": description}, status)


def create_app(state: AuthCodeState) -> web.Application:
    app = web.Application()
    if state.vendor == "pipedrive":
        app.router.add_get("/oauth/authorize", _authorize(state))
        app.router.add_post("/oauth/token", _token(state))
    else:
        app.router.add_get("/services/oauth2/authorize", _authorize(state))
        app.router.add_post("/services/oauth2/token", _token(state))
    return app


def _authorize(state: AuthCodeState) -> Handler:
    async def authorize(request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != state.client_id:
            return web.Response(text="unknown client_id", status=400)
        redirect = query.get("redirect_uri", "")
        if redirect not in state.redirect_uris:
            # Both vendors show an error page instead of redirecting to an unknown address.
            return web.Response(text="redirect_uri_mismatch", status=400)
        if state.vendor == "salesforce" and query.get("response_type") != "code":
            return web.Response(text="unsupported_response_type", status=400)
        challenge = query.get("code_challenge")
        if challenge is not None and query.get("code_challenge_method", "plain") != "S256":
            return web.Response(text="invalid code_challenge_method", status=400)
        reply: dict[str, str] = {}
        if state.approve:
            code = secrets.token_urlsafe(24)
            state.codes[code] = _Code(
                redirect, challenge, query.get("scope", ""), time.monotonic() + CODE_LIFETIME
            )
            reply["code"] = code
        else:
            reply.update(error="access_denied", error_description="end-user denied authorization")
        if "state" in query:
            reply["state"] = query["state"]
        raise web.HTTPFound(f"{redirect}?{urlencode(reply)}")

    return authorize


def _client_ok(state: AuthCodeState, request: web.Request, form: dict[str, str]) -> bool:
    if state.vendor == "pipedrive":
        expected = base64.b64encode(f"{state.client_id}:{state.client_secret}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"
    return form.get("client_id") == state.client_id and (
        form.get("client_secret") == state.client_secret
    )


def _token(state: AuthCodeState) -> Handler:
    async def token(request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        if not _client_ok(state, request, form):
            if state.vendor == "pipedrive":
                return json_response(
                    {"success": False, "message": "Invalid client credentials"}, 401
                )
            return _error("invalid_client", "invalid client credentials")
        if form.get("grant_type") != "authorization_code":
            return _error("unsupported_grant_type", "grant type not supported")
        grant = state.codes.pop(form.get("code", ""), None)
        if grant is None or grant.expires < time.monotonic():
            return _error("invalid_grant", "invalid authorization code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _error("invalid_grant", "redirect_uri mismatch")
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge:
                return _error("invalid_grant", "invalid code verifier")
        state.exchanged += 1
        answer: dict[str, object] = {
            "access_token": secrets.token_hex(16),
            "token_type": "Bearer",
        }
        host = state.api_host or str(request.url.origin())
        if state.vendor == "pipedrive":
            answer.update(
                refresh_token=state.issue_refresh_token(),
                expires_in=3599,
                scope="base,phone-integration,contacts:full,activities:read",
                api_domain=host,
            )
        else:
            if "refresh_token" in grant.scope.split():
                answer["refresh_token"] = state.issue_refresh_token()
            answer.update(
                instance_url=host, scope=grant.scope, issued_at=str(int(time.time() * 1000))
            )
        return json_response(answer)

    return token
