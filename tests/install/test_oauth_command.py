"""``sscl-daemon oauth pipedrive|salesforce`` against the CRM stand-ins (issue 18 item 10).

The command runs as a process, as an admin runs it: it prints the authorize address, the
test plays the browser (follows the stand-in's consent redirect to the command's loopback
callback), and the command writes the refresh token as a 0600 credential file without
printing it. The token then works at the CRM stand-in's own token endpoint, as the writer
uses it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from sscl_daemon.simulator import authcode
from sscl_daemon.simulator.crm import pipedrive, salesforce
from sscl_daemon.simulator.crm.common import serve


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Run:
    status: int
    output: str


async def run_command(args: list[str], env: dict[str, str], *, paste: bool = False) -> Run:
    """The command; the test is the browser: it follows the printed authorize address."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sscl_daemon", "oauth", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, **env},
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdin is not None
    output = ""
    async with asyncio.timeout(60):
        while True:
            line = (await process.stdout.readline()).decode()
            output += line
            if not line or "authorize?" in line:
                break
        if "authorize?" in line:
            redirect = await browse(line.strip())
            if paste:
                process.stdin.write(redirect.encode() + b"\n")
                await process.stdin.drain()
        output += (await process.stdout.read()).decode()
        status = await process.wait()
    return Run(status, output)


async def browse(url: str) -> str:
    """Open ``url`` like a browser; returns where the consent redirect pointed."""
    async with aiohttp.ClientSession() as http:
        async with http.get(url, allow_redirects=False) as consent:
            assert consent.status == 302, await consent.text()
            location = consent.headers["Location"]
        try:
            async with http.get(location) as landing:
                await landing.read()
        except aiohttp.ClientConnectionError:
            pass  # --paste: nothing listens, as in a browser on another machine
    return location


@asynccontextmanager
async def authorization_server(state: authcode.AuthCodeState) -> AsyncIterator[str]:
    async with serve(authcode.create_app(state)) as url:
        yield url


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir(mode=0o700)
    (directory / "pipedrive-client-secret").write_text("pd-client-secret\n")
    return directory


async def test_pipedrive_refresh_token_through_the_loopback_redirect(credentials: Path) -> None:
    crm = pipedrive.PipedriveState()
    user = crm.add_user("admin@example.com")
    port = free_port()
    state = authcode.AuthCodeState.pipedrive(crm, user, f"http://localhost:{port}/callback")
    async with authorization_server(state) as server:
        run = await run_command(
            ["pipedrive", "--client-id", crm.client_id, "--server", server,
             "--client-secret", "credential:pipedrive-client-secret",
             "--port", str(port), "--credentials-dir", str(credentials)],
            {"CREDENTIALS_DIRECTORY": ""},
        )  # fmt: skip
    assert run.status == 0, run.output
    token_file = credentials / "pipedrive-refresh-token"
    token = token_file.read_text()
    assert crm.refresh_tokens[token] == user
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token not in run.output
    assert "pd-client-secret" not in run.output
    assert f"The app's callback URL must be http://localhost:{port}/callback" in run.output
    assert 'refresh_token = "credential:pipedrive-refresh-token"' in run.output
    assert f"LoadCredential=pipedrive-refresh-token:{token_file}" in run.output
    # The writer's refresh grant accepts it at the CRM (which rotates it, as Pipedrive does).
    async with serve(pipedrive.create_app(crm)) as api, aiohttp.ClientSession() as http:
        basic = base64.b64encode(f"{crm.client_id}:{crm.client_secret}".encode()).decode()
        form = {"grant_type": "refresh_token", "refresh_token": token}
        headers = {"Authorization": f"Basic {basic}"}
        async with http.post(f"{api}/oauth/token", data=form, headers=headers) as answer:
            assert answer.status == 200
            assert (await answer.json())["access_token"]


async def test_salesforce_refresh_token_with_pkce(credentials: Path) -> None:
    crm = salesforce.SalesforceState()
    port = free_port()
    state = authcode.AuthCodeState.salesforce(crm, f"http://localhost:{port}/callback")
    state.api_host = "https://acme.my.salesforce.example"
    async with authorization_server(state) as server:
        run = await run_command(
            ["salesforce", "--client-id", crm.client_id, "--server", server,
             "--client-secret", "env:SF_SECRET", "--port", str(port),
             "--credentials-dir", str(credentials), "--name", "sf-token"],
            {"SF_SECRET": crm.client_secret},
        )  # fmt: skip
    assert run.status == 0, run.output
    token = (credentials / "sf-token").read_text()
    assert token == crm.refresh_token
    assert token not in run.output
    assert "The CRM names this host for the API: https://acme.my.salesforce.example" in run.output
    async with serve(salesforce.create_app(crm)) as api, aiohttp.ClientSession() as http:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": crm.client_id,
            "client_secret": crm.client_secret,
        }
        async with http.post(f"{api}/services/oauth2/token", data=form) as answer:
            assert answer.status == 200, await answer.text()


async def test_paste_mode_for_a_server_without_browser(credentials: Path) -> None:
    crm = pipedrive.PipedriveState()
    user = crm.add_user("admin@example.com")
    port = free_port()
    state = authcode.AuthCodeState.pipedrive(crm, user, f"http://localhost:{port}/callback")
    async with authorization_server(state) as server:
        run = await run_command(
            ["pipedrive", "--client-id", crm.client_id, "--server", server, "--paste",
             "--client-secret", "credential:pipedrive-client-secret",
             "--port", str(port), "--credentials-dir", str(credentials)],
            {},
            paste=True,
        )  # fmt: skip
    assert run.status == 0, run.output
    assert crm.refresh_tokens[(credentials / "pipedrive-refresh-token").read_text()] == user


async def test_a_refusal_is_reported_and_nothing_written(credentials: Path) -> None:
    crm = pipedrive.PipedriveState()
    port = free_port()
    state = authcode.AuthCodeState.pipedrive(crm, 1, f"http://localhost:{port}/callback")
    state.approve = False
    async with authorization_server(state) as server:
        run = await run_command(
            ["pipedrive", "--client-id", crm.client_id, "--server", server,
             "--client-secret", "credential:pipedrive-client-secret",
             "--port", str(port), "--credentials-dir", str(credentials)],
            {},
        )  # fmt: skip
    assert run.status == 1, run.output
    assert "the CRM refused: access_denied" in run.output
    assert not (credentials / "pipedrive-refresh-token").exists()


async def test_the_client_secret_is_never_taken_from_the_command_line(credentials: Path) -> None:
    run = await run_command(
        ["pipedrive", "--client-id", "x", "--client-secret", "the-secret-itself",
         "--credentials-dir", str(credentials)],
        {},
    )  # fmt: skip
    assert run.status == 2
    assert "not the secret itself" in run.output
    missing = await run_command(
        ["pipedrive", "--client-id", "x", "--client-secret", "env:SSCL_UNSET_SECRET",
         "--credentials-dir", str(credentials / "absent")],
        {},
    )  # fmt: skip
    assert missing.status == 2
    assert "does not exist" in missing.output
