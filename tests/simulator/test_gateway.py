"""The simulated WebSocket gateway seen by a plain aiohttp client (research rc-protocol.md A)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import pytest
from tests.simulator.conftest import ACCOUNT_FILTER, Platform


async def test_connection_details_is_the_first_frame(platform: Platform) -> None:
    await platform.login()
    token = await platform.ws_token()
    assert token["uri"] == platform.sim.ws_url
    assert token["expires_in"] == 600
    client = await platform.connect()
    header, body = client.details
    assert header["wsc"]["sequence"] == 1
    assert isinstance(header["wsc"]["token"], str)
    assert body["recoveryTimeout"] == 5
    assert body["recoveryBufferSize"] == 100
    assert body["idleTimeout"] == 1800
    assert body["absoluteTimeout"] == 86400
    assert body["maxActiveRequests"] == 10
    assert body["creationTime"].endswith("+0000")
    assert "recoveryState" not in body


async def test_authorization_header_handshake_is_accepted(platform: Platform) -> None:
    await platform.login()
    token = await platform.ws_token()
    headers = {"Authorization": f"Bearer {token['ws_access_token']}"}
    async with platform.http.ws_connect(token["uri"], headers=headers) as ws:
        first = json.loads((await ws.receive(timeout=5)).data)
    assert first[0]["type"] == "ConnectionDetails"


async def test_missing_token_closes_with_4400(platform: Platform) -> None:
    async with platform.http.ws_connect(platform.sim.ws_url) as ws:
        msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 4400


async def test_unknown_ws_token_is_refused_with_401(platform: Platform) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await platform.http.ws_connect(platform.sim.ws_url, params={"access_token": "nope"})
    assert info.value.status == 401


async def test_strict_profile_closes_4401_on_reused_ws_token(make_platform: Any) -> None:
    platform: Platform = await make_platform(
        ws_token_single_use=True, bad_ws_token_reply="close-4401"
    )
    await platform.login()
    token = await platform.ws_token()
    params = {"access_token": token["ws_access_token"]}
    async with platform.http.ws_connect(token["uri"], params=params) as ws:
        assert json.loads((await ws.receive(timeout=5)).data)[0]["type"] == "ConnectionDetails"
    async with platform.http.ws_connect(token["uri"], params=params) as ws:
        msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 4401)


async def test_subscription_create_answers_like_the_platform(platform: Platform) -> None:
    await platform.login()
    client = await platform.connect()
    reply = await client.subscribe([ACCOUNT_FILTER, "/restapi/v1.0/account/~/extension/~/presence"])
    header, info = reply
    acct = platform.sim.org.account_id
    assert header["type"] == "ClientRequest"
    assert header["headers"]["WSG-SubscriptionId"] == info["id"]
    assert header["headers"]["X-Rate-Limit-Group"] == "medium"
    assert header["headers"]["X-Rate-Limit-Limit"] == "40"
    assert info["status"] == "Active"
    assert info["eventFilters"] == [f"/restapi/v1.0/account/{acct}/telephony/sessions"]
    assert info["disabledFilters"][0]["filter"].endswith("/presence")
    assert info["deliveryMode"] == {"transportType": "WebSocket", "encryption": False}
    assert info["uri"] == f"/restapi/v1.0/subscription/{info['id']}"


async def test_invalid_subscription_requests_get_rest_errors(platform: Platform) -> None:
    await platform.login()
    client = await platform.connect()
    bad_filter = await client.request(
        "POST",
        "/restapi/v1.0/subscription",
        {"eventFilters": ["nonsense"], "deliveryMode": {"transportType": "WebSocket"}},
    )
    assert bad_filter[0]["status"] == 400
    assert bad_filter[1]["errorCode"] == "SUB-508"
    other_account = await client.request(
        "POST",
        "/restapi/v1.0/subscription",
        {
            "eventFilters": ["/restapi/v1.0/account/999/telephony/sessions"],
            "deliveryMode": {"transportType": "WebSocket"},
        },
    )
    assert other_account[0]["status"] == 403
    assert other_account[1]["errorCode"] == "SUB-406"
    unknown = await client.request(
        "PUT", "/restapi/v1.0/subscription/nope", {"eventFilters": [ACCOUNT_FILTER]}
    )
    assert unknown[0]["status"] == 404
    assert "WSG-SubscriptionId" not in unknown[0]["headers"]


async def test_notifications_of_a_call_reach_the_subscriber(platform: Platform) -> None:
    client = await platform.subscribed_client()
    sub_id = client.frames[-1][1]["id"]
    call = platform.sim.place_call()
    frames = await client.notifications(len(call.events))
    acct = platform.sim.org.account_id
    sequences = [f[0]["wsc"]["sequence"] for f in frames]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    for frame, event in zip(frames, call.events, strict=True):
        header, envelope = frame
        assert header["messageId"] == envelope["uuid"]
        assert header["status"] == 200
        assert envelope["subscriptionId"] == sub_id
        assert envelope["ownerId"] == platform.sim.org.owner_extension_id
        assert envelope["body"] == event.body
        if event.extension_id is None:
            assert envelope["event"] == f"/restapi/v1.0/account/{acct}/telephony/sessions"
        else:
            assert (
                envelope["event"]
                == f"/restapi/v1.0/account/{acct}/extension/{event.extension_id}/telephony/sessions"
            )


async def test_extension_filter_only_gets_that_extension(platform: Platform) -> None:
    await platform.login()
    client = await platform.connect()
    call = platform.sim.factory.make(platform.sim.engine.now_wall())
    ext = next(e.extension_id for e in call.events if e.extension_id is not None)
    await client.subscribe([f"/restapi/v1.0/account/~/extension/{ext}/telephony/sessions"])
    platform.sim.inject(call)
    wanted = [e for e in call.events if e.extension_id == ext]
    frames = await client.notifications(len(wanted))
    assert [f[1]["body"] for f in frames] == [e.body for e in wanted]
    # the marker proves nothing else was queued before it
    platform.sim.push_raw({"marker": True}, ext)
    (marker,) = await client.notifications(1)
    assert marker[1]["body"] == {"marker": True}


async def test_second_subscription_replaces_the_first(platform: Platform) -> None:
    await platform.login()
    client = await platform.connect()
    first = (await client.subscribe())[1]["id"]
    second = (await client.subscribe())[1]["id"]
    assert first != second
    platform.sim.push_raw({"n": 1})
    (frame,) = await client.notifications(1)
    assert frame[1]["subscriptionId"] == second
    gone = await client.request("DELETE", f"/restapi/v1.0/subscription/{first}")
    assert gone[0]["status"] == 404


async def test_delete_subscription_stops_notifications(platform: Platform) -> None:
    client = await platform.subscribed_client()
    sub_id = client.frames[-1][1]["id"]
    deleted = await client.request("DELETE", f"/restapi/v1.0/subscription/{sub_id}")
    assert deleted[0]["status"] == 204
    assert len(deleted) == 1  # no body element on 204 (research A5)
    platform.sim.push_raw({"n": 1})
    await platform.sim.wait_idle()
    # a heartbeat round trip proves the raw notification was not queued before it
    message_id = str(uuid.uuid4())
    await client.ws.send_str(json.dumps([{"type": "Heartbeat", "messageId": message_id}]))
    frame = await client.recv()
    assert frame == [{"type": "Heartbeat", "messageId": message_id}]


async def test_update_subscription_changes_filters(platform: Platform) -> None:
    client = await platform.subscribed_client()
    sub_id = client.frames[-1][1]["id"]
    ext = platform.sim.org.owner_extension_id
    updated = await client.request(
        "PUT",
        f"/restapi/v1.0/subscription/{sub_id}",
        {
            "eventFilters": ["/restapi/v1.0/account/~/extension/~/telephony/sessions"],
            "deliveryMode": {"transportType": "WebSocket"},
        },
    )
    assert updated[0]["status"] == 200
    assert updated[1]["id"] == sub_id
    assert updated[1]["eventFilters"] == [
        f"/restapi/v1.0/account/{platform.sim.org.account_id}/extension/{ext}/telephony/sessions"
    ]


async def test_heartbeat_is_echoed(platform: Platform) -> None:
    await platform.login()
    client = await platform.connect()
    await client.ws.send_str(json.dumps([{"type": "Heartbeat", "messageId": "hb-1"}]))
    assert await client.recv() == [{"type": "Heartbeat", "messageId": "hb-1"}]


async def test_malformed_frame_gets_an_error_frame_and_connection_stays(platform: Platform) -> None:
    await platform.login()
    client = await platform.connect()
    await client.ws.send_str("{not json")
    error = await client.recv()
    assert error[0]["type"] == "Error"
    assert error[1]["errorCode"] == "WSG-400"
    await client.subscribe()


async def test_idle_timeout_sends_wsg_902_then_closes(make_platform: Any) -> None:
    platform: Platform = await make_platform(idle_timeout_s=0.3)
    await platform.login()
    client = await platform.connect()
    assert client.details[1]["idleTimeout"] == 0.3
    error = await client.recv()
    assert error[0]["type"] == "Error"
    assert error[1]["errorCode"] == "WSG-902"
    msg = await client.ws.receive(timeout=5)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1000)


async def test_absolute_timeout_sends_wsg_903_despite_activity(make_platform: Any) -> None:
    platform: Platform = await make_platform(absolute_timeout_s=0.5)
    await platform.login()
    client = await platform.connect()

    async def keep_busy() -> None:
        for n in range(100):
            await client.ws.send_str(json.dumps([{"type": "Heartbeat", "messageId": f"hb-{n}"}]))
            await asyncio.sleep(0.05)

    busy = asyncio.create_task(keep_busy())
    try:
        error = await client.recv_until(lambda f: f[0]["type"] == "Error")
    finally:
        busy.cancel()
    assert error[1]["errorCode"] == "WSG-903"


async def test_subscription_quota_gives_sub_505(make_platform: Any) -> None:
    platform: Platform = await make_platform(max_subscriptions=1)
    await platform.login()
    first = await platform.connect()
    await first.subscribe()
    second = await platform.connect()
    refused = await second.request(
        "POST",
        "/restapi/v1.0/subscription",
        {"eventFilters": [ACCOUNT_FILTER], "deliveryMode": {"transportType": "WebSocket"}},
    )
    assert refused[0]["status"] == 403
    assert refused[1]["errorCode"] == "SUB-505"


async def test_rate_driven_traffic_reaches_the_subscriber(make_platform: Any) -> None:
    platform: Platform = await make_platform(calls_per_second=20.0)
    client = await platform.subscribed_client()
    frames = await client.notifications(20)
    tsids = {f[1]["body"]["telephonySessionId"] for f in frames}
    played = {t for call in platform.sim.calls for t in call.telephony_session_ids}
    assert tsids <= played
    assert len(platform.sim.calls) >= 1


async def test_raw_frame_is_sent_verbatim(platform: Platform) -> None:
    await platform.login()
    client = await platform.connect()
    assert platform.sim.push_raw_frame('[{"type":"Mystery"},"not an object"]') == 1
    assert await client.recv() == [{"type": "Mystery"}, "not an object"]


async def test_raw_body_reaches_the_subscriber_unchanged(platform: Platform) -> None:
    client = await platform.subscribed_client()
    platform.sim.push_raw(["not", "a", "dict"])
    (frame,) = await client.notifications(1)
    assert frame[1]["body"] == ["not", "a", "dict"]
    acct = platform.sim.org.account_id
    assert frame[1]["event"] == f"/restapi/v1.0/account/{acct}/telephony/sessions"


async def test_server_pings_and_drops_a_client_that_never_pongs(make_platform: Any) -> None:
    platform: Platform = await make_platform(ping_interval_s=0.1, pong_timeout_s=0.2)
    await platform.login()
    token = await platform.ws_token()
    params = {"access_token": token["ws_access_token"]}
    async with platform.http.ws_connect(token["uri"], params=params, autoping=False) as ws:
        assert json.loads((await ws.receive(timeout=5)).data)[0]["type"] == "ConnectionDetails"
        ping = await ws.receive(timeout=5)
        assert ping.type is aiohttp.WSMsgType.PING
        gone = await ws.receive(timeout=5)
    assert gone.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_client_that_pongs_stays_connected(make_platform: Any) -> None:
    platform: Platform = await make_platform(ping_interval_s=0.05, pong_timeout_s=0.5)
    await platform.login()
    client = await platform.connect()  # aiohttp answers pings by itself
    await client.subscribe()
    # held back for many ping intervals, longer than the pong timeout
    platform.sim.delay_notifications(0.8)
    platform.sim.push_raw({"after": "pings"})
    (frame,) = await client.notifications(1)
    assert frame[1]["body"] == {"after": "pings"}
    assert not client.ws.closed


async def test_client_vanishing_mid_stream_leaves_the_gateway_serving(platform: Platform) -> None:
    client = await platform.subscribed_client()
    for n in range(2000):
        platform.sim.push_raw({"n": n, "pad": "x" * 500})
    await client.notifications(1)
    connection = client.ws._response.connection
    assert connection is not None
    assert connection.transport is not None
    connection.transport.abort()  # an RST from the client side
    async with asyncio.timeout(5):
        await platform.sim.gateway.wait_until(lambda: not platform.sim.gateway.connections)
    again = await platform.connect(wsc=client.wsc)
    assert again.details[1]["recoveryState"] == "Successful"
    platform.sim.push_raw({"n": "after"})
    # replayed: only what never reached the dead socket, in order, then the new one
    last = await again.recv_until(
        lambda f: f[0]["type"] == "ServerNotification" and f[1]["body"]["n"] == "after"
    )
    replayed = [
        f[1]["body"]["n"] for f in again.frames[:-1] if f[0]["type"] == "ServerNotification"
    ]
    assert replayed == sorted(replayed)
    assert all(isinstance(n, int) and n >= 1 for n in replayed)
    assert last[1]["body"] == {"n": "after"}


async def test_rest_calls_over_the_websocket(platform: Platform) -> None:
    await platform.login()
    client = await platform.connect()
    header, page = await client.request("GET", "/restapi/v1.0/account/~/extension?perPage=2")
    assert header["status"] == 200
    assert header["headers"]["X-Rate-Limit-Group"] == "medium"
    assert page["records"] == platform.sim.org.extension_records()[:2]
    assert page["navigation"]["nextPage"]["uri"].startswith(platform.sim.base_url)
    message_id = "q-1"
    request = {
        "type": "ClientRequest",
        "messageId": message_id,
        "method": "GET",
        "path": "/restapi/v1.0/account/~/call-log",
        "query": {"view": "Detailed", "perPage": "10"},
    }
    await client.ws.send_str(json.dumps([request]))
    header, log = await client.recv_until(lambda f: f[0].get("messageId") == message_id)
    assert header["status"] == 200
    assert header["headers"]["X-Rate-Limit-Group"] == "heavy"
    assert log["paging"]["perPage"] == 10
    missing = await client.request("GET", "/restapi/v1.0/account/~/telephony/sessions/s-nope")
    assert missing[0]["status"] == 404
    assert missing[1]["errorCode"] == "TAS-102"
    other = await client.request("GET", "/restapi/v1.0/nowhere")
    assert other[0]["status"] == 404
