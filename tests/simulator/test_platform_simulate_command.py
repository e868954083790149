"""`sscl-daemon simulate` as a user runs it: prints settings that work, checks given credentials."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import sys
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@asynccontextmanager
async def _simulate(*extra: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sscl_daemon",
        "simulate",
        "--port",
        "0",
        "--calls-per-second",
        "0",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not lines or "/_sim/status" not in lines[-1]:
                line = (await proc.stdout.readline()).decode()
                assert line, f"simulate ended early: {lines}"
                lines.append(line)
        yield proc, "".join(lines)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(10):
                await proc.wait()


def _settings(output: str) -> dict[str, str]:
    block = output[output.index("[ringcentral]") : output.index("\nFaults")]
    parsed: dict[str, dict[str, str]] = tomllib.loads(block)
    return parsed["ringcentral"]


async def _login(server: str, client_id: str, secret: str, jwt: str) -> int:
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server + "/restapi/oauth/token",
            data={"grant_type": JWT_GRANT, "assertion": jwt},
            headers={"Authorization": basic},
        ) as resp,
    ):
        return resp.status


async def test_printed_settings_point_at_a_working_simulator() -> None:
    async with _simulate() as (proc, output):
        settings = _settings(output)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", settings["server"])
        status = await _login(
            settings["server"], settings["client_id"], settings["client_secret"], settings["jwt"]
        )
        assert status == 200
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0


async def test_given_credentials_are_checked_and_never_printed() -> None:
    secret, jwt = "cli-s3cr3t", "cli-jwt-value"
    async with _simulate("--client-id", "cid", "--client-secret", secret, "--jwt", jwt) as (
        _,
        output,
    ):
        settings = _settings(output)
        assert secret not in output
        assert jwt not in output
        assert settings["client_id"] == "cid"
        assert settings["client_secret"] == "env:SSCL_RC_CLIENT_SECRET"
        server = settings["server"]
        assert await _login(server, "cid", "wrong", jwt) == 401
        assert await _login(server, "cid", secret, "wrong") == 400
        assert await _login(server, "cid", secret, jwt) == 200


async def test_bad_arguments_are_reported() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sscl_daemon",
        "simulate",
        "--calls-per-second",
        "-1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"must be 0 or more" in err
