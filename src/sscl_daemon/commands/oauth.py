"""``sscl-daemon oauth pipedrive|salesforce``: obtain a CRM refresh token through the browser.

Where it sits: a one-time set-up step (docs/crm-setup.md) before a Pipedrive or Salesforce
writer can use OAuth. It prints the CRM's authorize address, listens on the loopback
interface for the redirect that brings the authorization code back (the app's callback URL
is ``http://localhost:PORT/callback``), exchanges the code at the CRM's token endpoint
(Salesforce with PKCE) and writes the refresh token into the credentials directory as a
0600 file, ready for ``refresh_token = "credential:NAME"``. The token is never printed.
The client secret is read from ``credential:NAME``/``env:NAME`` or asked for, never taken
from the command line (where ``ps`` and the shell history would keep it).

On a server without a browser, forward the port (``ssh -L 8765:localhost:8765 server``) or
give ``--paste`` and paste the address the browser was sent to.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import getpass
import hashlib
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp import web

from sscl_daemon.config import (
    ConfigError,
    Need,
    PipedriveOptions,
    SalesforceOptions,
    add_config_argument,
    load_for_command,
)
from sscl_daemon.config.schema import ConfigIssue, DaemonSettings
from sscl_daemon.config.secrets import SecretSource, credential_source, resolve_secret
from sscl_daemon.errors import SsclError
from sscl_daemon.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK

HELP = "obtain a Pipedrive or Salesforce OAuth refresh token through the browser"

DEFAULT_PORT = 8765
CALLBACK_PATH = "/callback"


@dataclass(frozen=True)
class Vendor:
    """A CRM's authorization-code endpoints, after its OAuth documentation."""

    name: str
    default_server: str  # scheme://host of the authorization server
    authorize_path: str
    token_path: str
    pkce: bool  # Salesforce recommends (and new apps require) PKCE; Pipedrive has none
    basic_auth: bool  # client id/secret as HTTP Basic (Pipedrive) or in the form (Salesforce)
    scope: str | None  # Pipedrive's scopes are fixed in the app registration


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


VENDORS = {
    "pipedrive": Vendor(
        "pipedrive",
        _origin(PipedriveOptions.token_url),
        "/oauth/authorize",
        "/oauth/token",
        pkce=False,
        basic_auth=True,
        scope=None,
    ),
    "salesforce": Vendor(
        "salesforce",
        SalesforceOptions.login_url,
        "/services/oauth2/authorize",
        "/services/oauth2/token",
        pkce=True,
        basic_auth=False,
        scope="api refresh_token",
    ),
}


class OAuthFailure(SsclError):
    """The flow ended without a refresh token; the message says why (never a secret)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("crm", choices=sorted(VENDORS), help="the CRM whose app to authorise")
    parser.add_argument("--client-id", required=True, help="the OAuth app's client id")
    parser.add_argument(
        "--client-secret",
        metavar="REF",
        help="where the client secret is: credential:NAME or env:NAME (asked for if omitted)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"loopback port of the callback http://localhost:PORT{CALLBACK_PATH} "
        f"(default {DEFAULT_PORT}; register that address as the app's callback URL)",
    )
    parser.add_argument(
        "--server",
        help="the authorization server (default: https://oauth.pipedrive.com; Salesforce: "
        "login_url, e.g. https://test.salesforce.com for a sandbox or your My Domain)",
    )
    parser.add_argument("--name", help="the credential file to write (default: CRM-refresh-token)")
    parser.add_argument(
        "--credentials-dir",
        type=Path,
        help="where to write it (default: daemon.credentials_dir of the configuration)",
    )
    parser.add_argument(
        "--paste",
        action="store_true",
        help="do not listen: paste the address the browser was sent to after approving",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the approval"
    )
    add_config_argument(parser)


def authorize_url(
    vendor: Vendor, server: str, client_id: str, redirect_uri: str, state: str, challenge: str
) -> str:
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "state": state}
    if vendor.pkce:
        params.update(response_type="code", code_challenge=challenge)
        params["code_challenge_method"] = "S256"
    if vendor.scope:
        params["scope"] = vendor.scope
    return f"{server.rstrip('/')}{vendor.authorize_path}?{urlencode(params)}"


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def code_from_redirect(query: str, state: str) -> str:
    """The authorization code of a redirect's query string, after checking ``state``."""
    params = {key: values[0] for key, values in parse_qs(query).items()}
    if "error" in params:
        detail = params.get("error_description", "")
        raise OAuthFailure(f"the CRM refused: {params['error']} {detail}".strip())
    if params.get("state") != state:
        raise OAuthFailure("the redirect does not carry this run's state: start again")
    code = params.get("code", "")
    if not code:
        raise OAuthFailure("the redirect carries no authorization code")
    return code


class Callback:
    """The loopback listener the CRM redirects the browser to, with the code in its query."""

    def __init__(self, state: str) -> None:
        self._state = state
        self._arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        app = web.Application()
        app.router.add_get(CALLBACK_PATH, self._callback)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self, port: int) -> int:
        """Listen on 127.0.0.1 (and ::1, where "localhost" may point) at ``port``; the port."""
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        bound = int(self._runner.addresses[0][1])
        with contextlib.suppress(OSError):  # no IPv6 loopback on this machine
            await web.TCPSite(self._runner, "::1", bound).start()
        return bound

    async def code(self) -> str:
        """The authorization code of the first redirect (its error, if the CRM refused)."""
        return await self._arrived

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _callback(self, request: web.Request) -> web.Response:
        try:
            code = code_from_redirect(request.query_string, self._state)
        except OAuthFailure as exc:
            if not self._arrived.done():
                self._arrived.set_exception(exc)
            return web.Response(text=f"sscl-daemon: {exc}", status=400)
        if not self._arrived.done():
            self._arrived.set_result(code)
        return web.Response(text="sscl-daemon has the authorization; you may close this page.")


@dataclass(frozen=True)
class CrmGrant:
    """What the token endpoint answered: the refresh token, and the host to use."""

    refresh_token: str
    host: str | None  # Salesforce instance_url, Pipedrive api_domain


async def exchange(
    vendor: Vendor,
    server: str,
    client: tuple[str, str],
    code: str,
    redirect_uri: str,
    verifier: str,
) -> CrmGrant:
    """Swap the authorization code for tokens at the CRM's token endpoint."""
    client_id, client_secret = client
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    headers: dict[str, str] = {}
    if vendor.basic_auth:
        pair = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {pair}"
    else:
        form.update(client_id=client_id, client_secret=client_secret)
    if vendor.pkce:
        form["code_verifier"] = verifier
    url = f"{server.rstrip('/')}{vendor.token_path}"
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(url, data=form, headers=headers) as response,
        ):
            body = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise OAuthFailure(f"the token endpoint {url} could not be read: {exc}") from None
    if not isinstance(body, dict):
        raise OAuthFailure(f"the token endpoint {url} answered HTTP {status} without JSON")
    if status != 200:
        # The error fields name the problem; the body holds no token when it failed.
        reason = body.get("error_description") or body.get("message") or ""
        raise OAuthFailure(
            f"the token endpoint {url} answered HTTP {status} {body.get('error', '')} {reason}"
        )
    refresh = body.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        hint = " (give the app the refresh_token scope)" if vendor.scope else ""
        raise OAuthFailure(f"the token answer holds no refresh token{hint}")
    host = body.get("instance_url") or body.get("api_domain")
    return CrmGrant(refresh, host if isinstance(host, str) else None)


def write_credential(directory: Path, name: str, value: str) -> Path:
    """``directory/name`` holding ``value``, mode 0600, replaced atomically."""
    target = directory / name
    temporary = directory / f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(value)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return target


def _client_secret(reference: str | None, source: SecretSource) -> str:
    if reference is None:
        if not sys.stdin.isatty():
            raise OAuthFailure("give --client-secret credential:NAME or env:NAME")
        secret = getpass.getpass("client secret of the app: ")
        if not secret:
            raise OAuthFailure("no client secret given")
        return secret
    if not reference.startswith(("credential:", "env:")):
        raise OAuthFailure(
            "--client-secret takes credential:NAME or env:NAME, not the secret itself "
            "(the command line is visible to every user in ps and kept in the shell history)"
        )
    issues: list[ConfigIssue] = []
    value = resolve_secret(reference, "--client-secret", source, issues)
    if value is None:
        raise OAuthFailure("; ".join(str(issue) for issue in issues))
    return value


def _credentials_dir(args: argparse.Namespace) -> Path:
    if args.credentials_dir is not None:
        return Path(args.credentials_dir)
    try:
        return load_for_command(args, needs=Need.NONE).daemon.credentials_dir
    except ConfigError:
        return DaemonSettings.credentials_dir  # no configuration yet: the default place


async def _obtain(args: argparse.Namespace, vendor: Vendor, secret: str) -> CrmGrant:
    server = args.server or vendor.default_server
    state = secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    callback = None if args.paste else Callback(state)
    try:
        port = args.port if callback is None else await callback.start(args.port)
        redirect_uri = f"http://localhost:{port}{CALLBACK_PATH}"
        print(f"The app's callback URL must be {redirect_uri}", flush=True)
        print("Open this address in a browser, log in as the integration user and approve:")
        print(authorize_url(vendor, server, args.client_id, redirect_uri, state, challenge))
        print(flush=True)
        if callback is None:
            print("Then paste the address the browser was sent to:", flush=True)
            pasted = await asyncio.to_thread(sys.stdin.readline)
            code = code_from_redirect(urlsplit(pasted.strip()).query, state)
        else:
            print(f"Waiting for the redirect to {redirect_uri} ...", flush=True)
            try:
                async with asyncio.timeout(args.timeout):
                    code = await callback.code()
            except TimeoutError:
                raise OAuthFailure(f"no redirect came back within {args.timeout:.0f} s") from None
    finally:
        if callback is not None:
            await callback.stop()
    return await exchange(vendor, server, (args.client_id, secret), code, redirect_uri, verifier)


def run(args: argparse.Namespace) -> int:
    vendor = VENDORS[args.crm]
    directory = _credentials_dir(args)
    name = args.name or f"{vendor.name}-refresh-token"
    if not directory.is_dir():
        print(
            f"the credentials directory {directory} does not exist: create it "
            f"(install -d -m 0700 {directory}) or give --credentials-dir",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        secret = _client_secret(args.client_secret, credential_source(directory))
    except OAuthFailure as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    try:
        grant = asyncio.run(_obtain(args, vendor, secret))
    except OAuthFailure as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILURE
    try:
        path = write_credential(directory, name, grant.refresh_token)
    except OSError as exc:
        print(f"cannot write {directory / name}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"Wrote the refresh token to {path} (mode 0600).")
    if grant.host:
        print(f"The CRM names this host for the API: {grant.host}")
    print(f'In config.toml, [writers.{vendor.name}]: refresh_token = "credential:{name}"')
    print(f"In the unit (systemctl edit sscl-daemon): LoadCredential={name}:{path}")
    return EXIT_OK
