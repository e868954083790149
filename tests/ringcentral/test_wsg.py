"""The pure gateway protocol: subscribe, recover, route by subscription, track wsc, errors."""

from __future__ import annotations

import json

from sscl_daemon.ringcentral.wsg import (
    SUBSCRIPTION_PATH,
    TELEPHONY_FILTER,
    Deliver,
    GatewayConnection,
    Phase,
    Reconnect,
    Recovered,
    ReplayIncomplete,
    Send,
    Subscribed,
    Wsc,
    parse_frame,
)


def details(seq: int, token: str = "T1", state: str | None = None, code: str | None = None) -> str:
    body: dict[str, object] = {"recoveryTimeout": 180, "idleTimeout": 1800}
    if state:
        body["recoveryState"] = state
    if code:
        body["recoveryErrorCode"] = code
    header = {
        "type": "ConnectionDetails",
        "messageId": "m",
        "status": 200,
        "wsc": {"token": token, "sequence": seq},
    }
    return json.dumps([header, body])


def notification(uuid: str, sub: str, seq: int, token: str = "T1") -> str:
    header = {
        "type": "ServerNotification",
        "messageId": uuid,
        "status": 200,
        "wsc": {"token": token, "sequence": seq},
    }
    body = {
        "uuid": uuid,
        "event": "/restapi/v1.0/account/1/telephony/sessions",
        "subscriptionId": sub,
        "body": {"telephonySessionId": "s-1", "sequence": 2},
    }
    return json.dumps([header, body])


def response(message_id: str, status: int, body: object, **headers: str) -> str:
    header = {
        "type": "ClientRequest",
        "messageId": message_id,
        "status": status,
        "headers": headers,
    }
    return json.dumps([header, body])


def subscribe(conn: GatewayConnection, frame: str) -> str:
    [send] = conn.receive(frame)
    assert isinstance(send, Send)
    header, body = json.loads(send.text)
    assert header["type"] == "ClientRequest"
    assert header["method"] == "POST"
    assert header["path"] == SUBSCRIPTION_PATH
    assert body == {
        "eventFilters": [TELEPHONY_FILTER],
        "deliveryMode": {"transportType": "WebSocket"},
    }
    return str(header["messageId"])


def test_fresh_connection_subscribes_and_delivers() -> None:
    conn = GatewayConnection(recovering=False)
    message_id = subscribe(conn, details(1))
    assert conn.phase is Phase.SUBSCRIBING
    [done] = conn.receive(response(message_id, 200, {"id": "sub-1", "status": "Active"}))
    assert done == Subscribed("sub-1", lost=True, recovery_error=None)
    [deliver] = conn.receive(notification("u1", "sub-1", 2))
    assert isinstance(deliver, Deliver)
    assert deliver.uuid == "u1"
    assert json.loads(deliver.envelope)["body"]["telephonySessionId"] == "s-1"
    assert conn.wsc == Wsc("T1", 2)


def test_other_subscriptions_and_unrelated_responses_are_ignored() -> None:
    conn = GatewayConnection(recovering=False)
    message_id = subscribe(conn, details(1))
    assert conn.receive(response("someone-else", 200, {"id": "x"})) == []
    conn.receive(response(message_id, 200, {"id": "sub-2"}))
    assert conn.receive(notification("u1", "sub-old", 3)) == []
    assert conn.ignored == 1


def test_successful_recovery_keeps_the_subscription() -> None:
    conn = GatewayConnection(recovering=True, wsc=Wsc("T1", 5))
    assert conn.receive(details(9, state="Successful")) == [Recovered()]
    assert conn.phase is Phase.ACTIVE
    # after a restart the id is unknown: learned from the first replayed notification
    [deliver] = conn.receive(notification("u7", "sub-1", 6))
    assert isinstance(deliver, Deliver)
    assert conn.subscription_id == "sub-1"
    assert conn.receive(notification("u8", "sub-9", 10)) == []


def test_failed_recovery_resubscribes_and_reports_the_code() -> None:
    conn = GatewayConnection(recovering=True, subscription_id="sub-1", wsc=Wsc("T1", 5))
    message_id = subscribe(conn, details(1, token="T2", state="Failed", code="WSG-1003"))
    [done] = conn.receive(response(message_id, 200, None, **{"WSG-SubscriptionId": "sub-2"}))
    assert done == Subscribed("sub-2", lost=True, recovery_error="WSG-1003")
    assert conn.wsc == Wsc("T2", 1)


def test_wsc_keeps_the_highest_sequence() -> None:
    conn = GatewayConnection(recovering=False)
    message_id = subscribe(conn, details(1))
    conn.receive(response(message_id, 200, {"id": "s"}))
    for uuid, seq in (("a", 4), ("b", 3), ("c", 6), ("d", 5)):
        conn.receive(notification(uuid, "s", seq))
    assert conn.wsc == Wsc("T1", 6)
    assert "T1" not in repr(conn.wsc)


def test_gateway_errors_end_the_connection() -> None:
    idle = json.dumps(
        [
            {"type": "Error", "status": 400},
            {"errorCode": "WSG-902", "message": "Idle timeout expired"},
        ]
    )
    assert GatewayConnection(recovering=False).receive(idle) == [
        Reconnect("gateway error WSG-902", recoverable=True)
    ]
    bad = json.dumps([{"type": "Error"}, {"errorCode": "WSG-400", "message": "Malformed"}])
    [action] = GatewayConnection(recovering=True).receive(bad)
    assert isinstance(action, Reconnect)
    assert not action.recoverable


def test_refused_subscription_reconnects_after_retry_after() -> None:
    conn = GatewayConnection(recovering=False)
    message_id = subscribe(conn, details(1))
    [action] = conn.receive(
        response(message_id, 429, {"errorCode": "CMN-301"}, **{"Retry-After": "30"})
    )
    assert action == Reconnect("subscription refused: 429 CMN-301", retry_after=30.0, healthy=False)


def test_unreadable_frames_are_counted_not_fatal() -> None:
    conn = GatewayConnection(recovering=False)
    assert conn.receive('[{"type":"ClientRequest","messageId":"x"},--Boundary_1') == []
    assert conn.receive("not json") == []
    assert conn.receive('[{"type":"Heartbeat","messageId":"h"}]') == []
    assert conn.ignored == 2
    assert parse_frame('[{"type":"Heartbeat"}]').body is None


def test_a_short_replay_after_recovery_is_reported() -> None:
    conn = GatewayConnection(
        recovering=True, subscription_id="s", wsc=Wsc("T1", 10), last_notification=10
    )
    # 11..29 were missed while away (the details frame is 30); the replay starts at 25
    assert conn.receive(details(30, state="Successful")) == [Recovered()]
    first = conn.receive(notification("u25", "s", 25))
    assert first[0] == ReplayIncomplete(14)
    assert isinstance(first[1], Deliver)
    assert [type(a) for a in conn.receive(notification("u26", "s", 26))] == [Deliver]


def test_a_complete_replay_or_none_needed_is_quiet() -> None:
    full = GatewayConnection(recovering=True, wsc=Wsc("T1", 10), last_notification=10)
    full.receive(details(14, state="Successful"))
    assert [type(a) for a in full.receive(notification("u11", "s", 11))] == [Deliver]
    nothing = GatewayConnection(recovering=True, wsc=Wsc("T1", 10), last_notification=10)
    nothing.receive(details(11, state="Successful"))
    assert [type(a) for a in nothing.receive(notification("u12", "s", 12))] == [Deliver]
    failed = GatewayConnection(recovering=True, wsc=Wsc("T1", 10), last_notification=10)
    failed.receive(details(1, token="T2", state="Failed"))
    assert failed.last_notification is None


def test_a_recovery_with_nothing_sent_while_away_counts_its_details_frame_as_seen() -> None:
    # A recovered connection that ends before any notification (e.g. WSG-902) leaves the
    # next recovery's ConnectionDetails two ahead of our last notification: not a miss.
    quiet = GatewayConnection(recovering=True, wsc=Wsc("T1", 10), last_notification=10)
    quiet.receive(details(11, state="Successful"))
    assert quiet.last_notification == 11
    after = GatewayConnection(
        recovering=True, wsc=Wsc("T1", 11), last_notification=quiet.last_notification
    )
    after.receive(details(12, state="Successful"))
    assert [type(a) for a in after.receive(notification("u13", "s", 13))] == [Deliver]
