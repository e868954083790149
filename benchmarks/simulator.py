"""How many telephony notifications per second the simulator pushes to one WebSocket client.

The simulator runs in a child process (as it would beside the daemon); this process is the
client: it logs in, opens the WebSocket, subscribes to the account's telephony sessions, then
tells the child to play pre-generated calls and counts the `ServerNotification` frames it
reads. Two runs:

* burst: every call is due at once; the clock runs from the "go" message to the last frame
  read, so it includes scheduling, encoding and sending;
* paced: call starts spread so that events fall due at `--rate` per second for a few
  seconds; prints the rate actually delivered (below the offered rate = the simulator lags).

Loopback only; bounded in count and time. The goal (issue 5) is at least 20,000/s.

    .venv/bin/python benchmarks/simulator.py [--notifications 100000] [--rate 25000] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import multiprocessing
import time
from datetime import timedelta
from multiprocessing.connection import Connection

import aiohttp

from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.profiles import PlatformProfile, RateGroup, RateLimit

GOAL_PER_S = 20_000
PREFIX = '[{"type":"ServerNotification"'


async def _serve(pipe: Connection, notifications: int, rate: float, seed: int) -> None:
    limits = {group: RateLimit(10**6) for group in RateGroup}
    profile = PlatformProfile.lenient().with_changes(
        call_log_delay_s=3600.0, recovery_buffer_size=100, rate_limits=limits
    )
    # time_scale: a call's own events only milliseconds apart, so pacing comes from call starts
    config = SimulatorConfig(seed=seed, profile=profile, time_scale=0.0001)
    async with Simulator(config) as sim:
        calls = []
        events = 0
        while events < notifications:
            call = sim.factory.make(sim.engine.now_wall())
            calls.append(call)
            events += len(call.events)
        pipe.send((sim.base_url, events))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pipe.recv)  # "go" (burst)
        past = sim.engine.now_wall() - timedelta(hours=1)
        for call in calls:
            # started an hour ago: every event is due at once
            sim.inject(dataclasses.replace(call, start=past))
        await loop.run_in_executor(None, pipe.recv)  # "go" (paced)
        # leave time to schedule everything before the first call falls due
        start = sim.engine.now_wall() + timedelta(seconds=3)
        per_call = events / len(calls)
        for n, call in enumerate(calls):
            offset = timedelta(seconds=n * per_call / rate)
            sim.inject(dataclasses.replace(call, start=start + offset))
        await loop.run_in_executor(None, pipe.recv)  # "stop"


def _child(pipe: Connection, notifications: int, rate: float, seed: int) -> None:
    asyncio.run(_serve(pipe, notifications, rate, seed))


async def _count(ws: aiohttp.ClientWebSocketResponse, expected: int) -> tuple[float, float]:
    """Read `expected` notifications: (time of the first, time of the last)."""
    count = 0
    first = last = 0.0
    async with asyncio.timeout(120):
        while count < expected:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"connection ended after {count} notifications: {msg.type}")
            if msg.data.startswith(PREFIX):
                count += 1
                last = time.perf_counter()
                if count == 1:
                    first = last
    return first, last


async def _client(base_url: str, expected: int, pipe: Connection) -> tuple[float, float]:
    """Subscribe, then time the burst (from "go") and the paced run (first to last frame)."""
    basic = "Basic " + base64.b64encode(b"bench:bench").decode()
    async with aiohttp.ClientSession() as http:
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "bench"}
        headers = {"Authorization": basic}
        async with http.post(base_url + "/restapi/oauth/token", data=form, headers=headers) as r:
            token = (await r.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with http.post(base_url + "/restapi/oauth/wstoken", headers=auth) as r:
            ws_token = await r.json()
        params = {"access_token": ws_token["ws_access_token"]}
        async with http.ws_connect(ws_token["uri"], params=params, max_msg_size=0) as ws:
            await ws.receive()  # ConnectionDetails
            request = {
                "type": "ClientRequest",
                "messageId": "sub-1",
                "method": "POST",
                "path": "/restapi/v1.0/subscription",
            }
            body = {
                "eventFilters": ["/restapi/v1.0/account/~/telephony/sessions"],
                "deliveryMode": {"transportType": "WebSocket"},
            }
            await ws.send_json([request, body])
            await ws.receive()  # subscription response
            go = time.perf_counter()
            pipe.send("go")
            _, burst_end = await _count(ws, expected)
            pipe.send("go")
            paced_first, paced_last = await _count(ws, expected)
            return burst_end - go, paced_last - paced_first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=25_000.0, help="offered rate, paced run")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(
        target=_child, args=(theirs, args.notifications, args.rate, args.seed), daemon=True
    )
    child.start()
    try:
        base_url, expected = ours.recv()
        burst_s, paced_s = asyncio.run(_client(base_url, expected, ours))
        ours.send("stop")
        child.join(timeout=10)
    finally:
        if child.is_alive():
            child.terminate()
    for name, elapsed in (("burst", burst_s), (f"paced, {args.rate:,.0f}/s offered", paced_s)):
        rate = expected / elapsed
        verdict = "meets" if rate >= GOAL_PER_S else "BELOW"
        print(
            f"simulator -> 1 WebSocket client, {name}: {expected} notifications in"
            f" {elapsed:.2f} s = {rate:,.0f}/s ({verdict} the {GOAL_PER_S:,}/s goal)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
