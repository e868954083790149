"""Acceptance: RingCentral's own Python SDK (`ringcentral` 0.9.2, unchanged) talks to the simulator.

The SDK pins `websockets==15.*` while the project runs a newer websockets, so it cannot share
`.venv`: the test builds a separate virtualenv once (cached under ~/.cache, or the path in
`SSCL_RC_SDK_VENV`) and runs the SDK in a subprocess against the simulator on loopback. The
script logs in with a JWT, gets the ws token, opens the WebSocket, subscribes to the account's
telephony sessions, and prints every notification the SDK hands to its listeners.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sscl_daemon.simulator.app import Simulator

SDK_REQUIREMENT = "ringcentral==0.9.2"
SDK_SCRIPT = r"""
import asyncio, json, sys
from ringcentral import SDK
from ringcentral.websocket.events import WebSocketEvents

server, wanted = sys.argv[1], int(sys.argv[2])
sdk = SDK("any-client-id", "any-client-secret", server)
sdk.platform().login(jwt="any-jwt")

def emit(**kw):
    print(json.dumps(kw), flush=True)

async def main():
    client = sdk.create_web_socket_client()
    got = []
    done = asyncio.Event()

    def on_notification(message):
        got.append(message)
        emit(notification=message)
        if len(got) >= wanted:
            done.set()

    client.on(WebSocketEvents.connectionCreated,
              lambda c: emit(connected=json.loads(c.get_connection_info()["connection_details"])))
    client.on(WebSocketEvents.subscriptionCreated,
              lambda s: emit(subscribed=s.get_subscription_info()))
    client.on(WebSocketEvents.receiveSubscriptionNotification, on_notification)
    reader = asyncio.create_task(client.create_new_connection())
    await client.create_subscription(["/restapi/v1.0/account/~/telephony/sessions"])
    await asyncio.wait_for(done.wait(), 60)
    await client.close_connection()
    reader.cancel()

asyncio.run(main())
"""


def _sdk_python() -> Path:
    """A virtualenv holding the official SDK; built on first use."""
    default = Path.home() / ".cache" / "sscl-daemon" / "ringcentral-sdk-0.9.2"
    venv = Path(os.environ.get("SSCL_RC_SDK_VENV", default))
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SDK_REQUIREMENT,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if install.returncode != 0:
        pytest.skip(
            f"cannot install {SDK_REQUIREMENT} into {venv} (needs the PyPI index): "
            f"{install.stderr.strip()[-500:]}"
        )
    marker.touch()
    return python


async def _read_json_line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line:
        assert proc.stderr is not None
        err = await proc.stderr.read()
        raise AssertionError(f"SDK script ended early: {err.decode()[-2000:]}")
    parsed: dict[str, Any] = json.loads(line)
    return parsed


async def test_official_python_sdk_receives_notifications_of_a_call(
    sim: Simulator, tmp_path: Path
) -> None:
    python = await asyncio.to_thread(_sdk_python)
    script = tmp_path / "sdk_client.py"
    script.write_text(SDK_SCRIPT)
    call = sim.factory.make(sim.engine.now_wall())
    wanted = len(call.events)
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(script),
        sim.base_url,
        str(wanted),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            connected = await _read_json_line(proc)
            assert connected["connected"][0]["type"] == "ConnectionDetails"
            subscribed = await _read_json_line(proc)
            header, info = subscribed["subscribed"]
            assert header["headers"]["WSG-SubscriptionId"] == info["id"]
            assert info["eventFilters"] == [
                f"/restapi/v1.0/account/{sim.org.account_id}/telephony/sessions"
            ]
            # play the whole call at once: every event is due now
            sim.inject(call)
            sim.fast_forward()
            received = [(await _read_json_line(proc))["notification"] for _ in range(wanted)]
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [n[1]["body"] for n in received] == [e.body for e in call.events]
    assert all(n[1]["subscriptionId"] == info["id"] for n in received)
    assert all(n[0]["type"] == "ServerNotification" for n in received)
