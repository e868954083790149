"""JSON nested far past the interpreter's recursion limit: every decoder refuses it with its
typed error (EventDecodeError, ProtocolError), and the gateway connection ignores the frame.

On f315870 each of these raised RecursionError, which crashed the subscription task.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from tests.calls import scenarios
from tests.calls.builder import frames

from sscl_daemon.calls.events import EventDecodeError, decode_event, decode_tracked
from sscl_daemon.ringcentral.wsg import (
    Deliver,
    GatewayConnection,
    ProtocolError,
    Wsc,
    parse_frame,
)

DEPTHS = [1_000, 20_000]


def nested(depth: int, kind: str) -> bytes:
    """A value nested ``depth`` levels: arrays or single-key objects."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def _shapes(depth: int, kind: str) -> dict[str, bytes]:
    """The deep value where each decoder meets it: top level, frame body, a field, a party."""
    deep = nested(depth, kind)
    env = json.loads(frames(scenarios.inbound_direct())[1])[1]
    marker = '"__deep__"'
    env["body"]["extra"] = "__deep__"
    in_field = json.dumps(env).replace(marker, deep.decode()).encode()
    env["body"].pop("extra")
    env["body"]["parties"] = "__deep__"
    in_parties = json.dumps(env).replace(marker, deep.decode()).encode()
    return {
        "top": deep,
        "frame": b'[{"type":"ServerNotification"},' + deep + b"]",
        "unknown field": in_field,
        "parties": in_parties,
        "numeric id": in_field.replace(b'"extensionId": "1001"', b'"extensionId": 1001'),
    }


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("decode", [decode_event, decode_tracked])
def test_event_decoders_raise_their_typed_error(
    decode: Callable[[bytes | str], object], kind: str, depth: int
) -> None:
    for name, raw in _shapes(depth, kind).items():
        for payload in (raw, raw.decode()):
            with pytest.raises(EventDecodeError) as caught:
                decode(payload)
            assert caught.value.raw == payload, name


@pytest.mark.parametrize("depth", DEPTHS)
def test_frame_parser_raises_its_typed_error(depth: int) -> None:
    for raw in _shapes(depth, "array").values():
        with pytest.raises(ProtocolError):
            parse_frame(raw)


def test_gateway_connection_ignores_a_deep_frame_and_goes_on() -> None:
    conn = GatewayConnection(recovering=True, subscription_id="sub-7f3e", wsc=Wsc("t", 1))
    details = '[{"type":"ConnectionDetails","wsc":{"token":"t","sequence":2}},'
    conn.receive(details + '{"recoveryState":"Successful"}]')
    deep = nested(20_000, "object").decode()
    header = '{"type":"ServerNotification","wsc":{"token":"t","sequence":3}}'
    assert conn.receive(f"[{header},{deep}]") == []
    assert conn.receive(f'[{header},{{"uuid":"u", "body":{deep}}}]') == []
    good = frames(scenarios.inbound_direct())[1]
    (delivered,) = conn.receive(good)
    assert isinstance(delivered, Deliver)
    assert decode_tracked(delivered.envelope).body.sequence == 3
