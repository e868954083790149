"""Each injected fault, observed by a plain client (issue 5 point 4), plus session recovery."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from tests.simulator.conftest import Platform, basic

SUB_BODY = {
    "eventFilters": ["/restapi/v1.0/account/~/telephony/sessions"],
    "deliveryMode": {"transportType": "WebSocket"},
}


async def _wait_disconnected(platform: Platform) -> None:
    async with asyncio.timeout(5):
        await platform.sim.gateway.wait_until(lambda: not platform.sim.gateway.connections)


async def test_clean_drop_sends_a_close_frame(platform: Platform) -> None:
    client = await platform.subscribed_client()
    assert await platform.sim.drop_websocket() == 1
    msg = await client.ws.receive(timeout=5)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)


async def test_abrupt_drop_gives_no_close_frame(platform: Platform) -> None:
    client = await platform.subscribed_client()
    await platform.sim.drop_websocket(abrupt=True)
    msg = await client.ws.receive(timeout=5)
    # no close handshake: the client only sees the TCP connection vanish
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert client.ws.close_code != 1001


async def test_recovery_replays_what_was_missed_and_keeps_the_subscription(
    platform: Platform,
) -> None:
    client = await platform.subscribed_client()
    sub_id = client.frames[-1][1]["id"]
    platform.sim.push_raw({"n": 0})
    (before,) = await client.notifications(1)
    await platform.sim.drop_websocket(abrupt=True)
    await _wait_disconnected(platform)
    for n in range(1, 4):
        platform.sim.push_raw({"n": n})
    await platform.sim.wait_idle()
    recovered = await platform.connect(wsc=client.wsc)
    assert recovered.details[1]["recoveryState"] == "Successful"
    assert recovered.wsc == client.wsc
    replay = await recovered.notifications(3)
    assert [f[1]["body"]["n"] for f in replay] == [1, 2, 3]
    assert all(f[1]["subscriptionId"] == sub_id for f in replay)
    assert replay[0][0]["wsc"]["sequence"] > before[0]["wsc"]["sequence"]
    # the subscription survived: new notifications keep flowing
    platform.sim.push_raw({"n": 4})
    (after,) = await recovered.notifications(1)
    assert after[1]["body"]["n"] == 4


async def test_recovery_buffer_keeps_only_the_newest(make_platform: Any) -> None:
    platform: Platform = await make_platform(recovery_buffer_size=3)
    client = await platform.subscribed_client()
    await platform.sim.drop_websocket()
    await _wait_disconnected(platform)
    for n in range(6):
        platform.sim.push_raw({"n": n})
    await platform.sim.wait_idle()
    recovered = await platform.connect(wsc=client.wsc)
    assert recovered.details[1]["recoveryState"] == "Successful"
    replay = await recovered.notifications(3)
    assert [f[1]["body"]["n"] for f in replay] == [3, 4, 5]


async def test_strict_overlap_replays_already_sent_notifications(make_platform: Any) -> None:
    platform: Platform = await make_platform(recovery_replay_overlap=2)
    client = await platform.subscribed_client()
    for n in range(3):
        platform.sim.push_raw({"n": n})
    first = await client.notifications(3)
    await platform.sim.drop_websocket(abrupt=True)
    await _wait_disconnected(platform)
    recovered = await platform.connect(wsc=client.wsc)
    replay = await recovered.notifications(2)
    assert [f[1]["uuid"] for f in replay] == [f[1]["uuid"] for f in first[1:]]


async def test_recovery_with_refreshed_token_of_same_session_works(platform: Platform) -> None:
    client = await platform.subscribed_client()
    await platform.sim.drop_websocket()
    await _wait_disconnected(platform)
    await platform.refresh()
    recovered = await platform.connect(wsc=client.wsc)
    assert recovered.details[1]["recoveryState"] == "Successful"


async def test_recovery_from_another_oauth_session_fails_with_wsg_1003(platform: Platform) -> None:
    client = await platform.subscribed_client()
    await platform.sim.drop_websocket()
    await _wait_disconnected(platform)
    await platform.login()  # a new JWT login = a new OAuth session
    recovered = await platform.connect(wsc=client.wsc)
    assert recovered.details[1]["recoveryState"] == "Failed"
    assert recovered.details[1]["recoveryErrorCode"] == "WSG-1003"
    assert recovered.wsc != client.wsc
    # the new connection is usable: subscribe again
    await recovered.subscribe()


async def test_recovery_without_subscription_fails_with_wsg_1005(platform: Platform) -> None:
    await platform.login()
    client = await platform.connect()
    await platform.sim.drop_websocket()
    await _wait_disconnected(platform)
    recovered = await platform.connect(wsc=client.wsc)
    assert recovered.details[1]["recoveryState"] == "Failed"
    assert recovered.details[1]["recoveryErrorCode"] == "WSG-1005"


async def test_recovery_past_the_window_fails(make_platform: Any) -> None:
    # a zero window: any time at all between the drop and the reconnect is past it
    platform: Platform = await make_platform(recovery_timeout_s=0.0)
    client = await platform.subscribed_client()
    await platform.sim.drop_websocket()
    await _wait_disconnected(platform)
    recovered = await platform.connect(wsc=client.wsc)
    assert recovered.details[1]["recoveryState"] == "Failed"
    assert recovered.details[1]["recoveryErrorCode"] == "WSG-1001"


async def test_refused_recovery_fault(platform: Platform) -> None:
    client = await platform.subscribed_client()
    await platform.sim.drop_websocket()
    await _wait_disconnected(platform)
    platform.sim.refuse_recovery()
    refused = await platform.connect(wsc=client.wsc)
    assert refused.details[1]["recoveryState"] == "Failed"
    assert refused.details[1]["recoveryErrorCode"] == "WSG-1001"


async def test_malformed_wsc_gets_wsg_400_and_close(platform: Platform) -> None:
    await platform.login()
    token = await platform.ws_token()
    params = {"access_token": token["ws_access_token"], "wsc": "garbage!"}
    async with platform.http.ws_connect(token["uri"], params=params) as ws:
        first = json.loads((await ws.receive(timeout=5)).data)
        closing = await ws.receive(timeout=5)
    assert first[0]["type"] == "Error"
    assert first[1]["errorCode"] == "WSG-400"
    assert closing.type is aiohttp.WSMsgType.CLOSE


async def test_delayed_notification_arrives_after_later_ones(platform: Platform) -> None:
    client = await platform.subscribed_client()
    platform.sim.delay_notifications(0.3, count=1)
    for n in range(3):
        platform.sim.push_raw({"n": n})
    frames = await client.notifications(3)
    assert [f[1]["body"]["n"] for f in frames] == [1, 2, 0]


async def test_duplicated_notification_has_the_same_uuid(platform: Platform) -> None:
    client = await platform.subscribed_client()
    platform.sim.duplicate_notifications(1)
    platform.sim.push_raw({"n": 0})
    platform.sim.push_raw({"n": 1})
    frames = await client.notifications(3)
    assert [f[1]["body"]["n"] for f in frames] == [0, 0, 1]
    assert frames[0][1]["uuid"] == frames[1][1]["uuid"]
    assert frames[0][0]["wsc"]["sequence"] < frames[1][0]["wsc"]["sequence"]


async def test_reordered_notifications_swap(platform: Platform) -> None:
    client = await platform.subscribed_client()
    platform.sim.reorder_notifications(1)
    platform.sim.push_raw({"n": 0})
    platform.sim.push_raw({"n": 1})
    frames = await client.notifications(2)
    assert [f[1]["body"]["n"] for f in frames] == [1, 0]


@pytest.mark.parametrize(("status", "retry"), [(429, 7), (503, None), (500, None)])
async def test_rest_fault_hits_the_next_requests_under_a_prefix(
    platform: Platform, status: int, retry: int | None
) -> None:
    await platform.login()
    platform.sim.fail_rest(
        "/restapi/v1.0/account/~/extension", status, count=2, retry_after_s=retry
    )
    for _ in range(2):
        code, headers, body = await platform.get("/restapi/v1.0/account/~/extension")
        assert code == status
        assert body["errorCode"].startswith("CMN-")
        assert headers.get("Retry-After") == (None if retry is None else str(retry))
    other, _, _ = await platform.get("/restapi/v1.0/account/~/call-log")
    assert other == 200
    code, _, _ = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 200


async def test_expired_tokens_get_401_and_refresh_recovers(platform: Platform) -> None:
    await platform.login()
    ws_token = await platform.ws_token()
    assert platform.sim.expire_tokens() >= 1
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await platform.http.ws_connect(
            ws_token["uri"], params={"access_token": ws_token["ws_access_token"]}
        )
    assert refused.value.status == 401
    code, _, body = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 401
    assert body["errors"][0]["errorCode"] == "OAU-210"
    await platform.refresh()
    code, _, _ = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 200


async def test_pause_holds_rest_answers_and_frames(platform: Platform) -> None:
    client = await platform.subscribed_client()
    loop = asyncio.get_running_loop()
    platform.sim.pause(0.4)
    started = loop.time()
    platform.sim.push_raw({"n": 0})
    with pytest.raises(TimeoutError):
        await client.recv(within=0.2)
    code, _, _ = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 200
    assert loop.time() - started >= 0.35
    (frame,) = await client.notifications(1)
    assert frame[1]["body"] == {"n": 0}


async def test_silent_connection_sends_nothing_but_stays_open(platform: Platform) -> None:
    client = await platform.subscribed_client()
    assert platform.sim.silence_websocket() == 1
    platform.sim.push_raw({"n": 0})
    await client.ws.send_str(json.dumps([{"type": "Heartbeat", "messageId": "hb"}]))
    await client.ws.ping()
    with pytest.raises(TimeoutError):
        await client.recv(within=0.5)
    assert not client.ws.closed
    assert len(platform.sim.gateway.connections) == 1


async def test_control_api_injects_faults_over_http(platform: Platform) -> None:
    client = await platform.subscribed_client()
    base = platform.sim.base_url + "/_sim/"
    async with platform.http.post(base + "faults/duplicate", json={"count": 1}) as resp:
        assert resp.status == 200
    async with platform.http.post(base + "notifications", json={"body": {"raw": True}}) as resp:
        assert resp.status == 200
    frames = await client.notifications(2)
    assert frames[0][1]["uuid"] == frames[1][1]["uuid"]
    async with platform.http.post(base + "faults/rest", json={"status": 200}) as resp:
        assert resp.status == 400
        assert "400-599" in await resp.text()
    async with platform.http.post(base + "calls", json={"kind": "no-such-kind"}) as resp:
        assert resp.status == 400
        assert "unknown call kind" in await resp.text()
    async with platform.http.post(base + "faults/drop", json={"abrupt": False}) as resp:
        assert (await resp.json())["dropped"] == 1
    msg = await client.ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    async with platform.http.get(base + "status") as resp:
        status = await resp.json()
    assert status["accountId"] == platform.sim.org.account_id
    assert status["connections"] == 0
    assert status["published"] == 1


async def test_control_api_places_calls_and_reports_ground_truth(platform: Platform) -> None:
    base = platform.sim.base_url + "/_sim/"
    async with platform.http.post(base + "calls", json={"kind": "inbound_answered"}) as resp:
        assert resp.status == 200
        placed = await resp.json()
    assert placed["kind"] == "inbound_answered"
    assert placed["expected"]
    async with platform.http.get(base + "calls") as resp:
        listed = (await resp.json())["calls"]
    assert listed == [placed]
    assert [log.key for log in platform.sim.expected_logs()] == [
        e["key"] for e in placed["expected"]
    ]
    async with platform.http.post(base + "faults/pause", json={"seconds": -1}) as resp:
        assert resp.status == 400
    async with platform.http.post(base + "faults/pause", json={"seconds": "x"}) as resp:
        assert resp.status == 400
        assert "invalid control request" in await resp.text()


async def test_expired_refresh_tokens_force_a_new_login(platform: Platform) -> None:
    await platform.login()
    async with platform.http.post(
        platform.sim.base_url + "/_sim/faults/expire-tokens", json={"refresh": True}
    ) as resp:
        assert (await resp.json())["expired"] >= 1
    form = {"grant_type": "refresh_token", "refresh_token": platform.refresh_token}
    async with platform.http.post(
        platform.sim.base_url + "/restapi/oauth/token",
        data=form,
        headers={"Authorization": basic()},
    ) as resp:
        body = await resp.json()
    assert (resp.status, body["error"], body["errors"][0]["errorCode"]) == (
        400,
        "invalid_grant",
        "OAU-210",
    )
    await platform.login()
    code, _, _ = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 200


async def test_revoked_sessions_refuse_every_token(platform: Platform) -> None:
    await platform.login()
    async with platform.http.post(platform.sim.base_url + "/_sim/faults/revoke-sessions") as resp:
        assert (await resp.json())["revoked"] == 1
    code, _, body = await platform.get("/restapi/v1.0/account/~/extension")
    assert code == 401
    assert body["errors"][0]["errorCode"] == "OAU-213"


async def test_recovery_while_the_old_socket_is_still_attached_takes_the_session_over(
    platform: Platform,
) -> None:
    # The client's network died without the server noticing: its socket is still attached.
    client = await platform.subscribed_client()
    platform.sim.push_raw({"n": 0})
    await client.notifications(1)
    recovered = await platform.connect(wsc=client.wsc)
    assert recovered.details[1]["recoveryState"] == "Successful"
    platform.sim.push_raw({"n": 1})
    (after,) = await recovered.notifications(1)
    assert after[1]["body"]["n"] == 1
