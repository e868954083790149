"""decode_tracked's inline path for gateway frames (bytes, no backslash) gives what the
general path gives, and hands every other frame to it: one with a NUL is still refused,
one with other escapes decodes the same, one that is not a notification or breaks a bound
raises the same typed error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.calls import scenarios
from tests.calls.builder import frames

from sscl_daemon.calls.events import MAX_ID_LENGTH, EventDecodeError, decode_event, decode_tracked


def frame(**party_from: object) -> list[Any]:
    """A real frame of an inbound call, its first party's ``from`` updated."""
    header, env = json.loads(frames(scenarios.inbound_direct())[1])
    env["body"]["parties"][0]["from"] = dict(env["body"]["parties"][0].get("from") or {})
    env["body"]["parties"][0]["from"].update(party_from)
    return [header, env]


def test_gateway_frames_decode_as_the_full_model_reads_them() -> None:
    for raw in frames(scenarios.inbound_direct()):
        assert b"\\" not in raw
        tracked, full = decode_tracked(raw), decode_event(raw)
        assert len(tracked.body.parties) == len(full.body.parties) > 0
        for lean, whole in zip(tracked.body.parties, full.body.parties, strict=True):
            for name in lean.__struct_fields__:
                assert getattr(lean, name) == getattr(whole, name), name
        assert (tracked.uuid, tracked.body.sequence) == (full.uuid, full.body.sequence)


def test_a_frame_with_escapes_takes_the_general_path_and_decodes_the_same() -> None:
    raw = json.dumps(frame(name='O"Brien \u00e9\\')).encode()
    assert b"\\" in raw
    assert decode_tracked(raw).body.parties[0].from_.name == 'O"Brien \u00e9\\'  # type: ignore[union-attr]


@pytest.mark.parametrize("as_bytes", [True, False])
def test_a_nul_in_a_frame_is_refused(as_bytes: bool) -> None:
    raw = json.dumps(frame(name="ACME\u0000CORP"))
    with pytest.raises(EventDecodeError, match="NUL"):
        decode_tracked(raw.encode() if as_bytes else raw)


def test_frames_the_inline_path_refuses_raise_the_general_paths_error() -> None:
    header, env = frame()
    other = json.dumps([{**header, "type": "ClientRequest"}, env]).encode()
    with pytest.raises(EventDecodeError, match="ClientRequest"):
        decode_tracked(other)
    too_long = json.dumps(frame(extensionId="9" * (MAX_ID_LENGTH + 1))).encode()
    with pytest.raises(EventDecodeError):
        decode_tracked(too_long)
    with pytest.raises(EventDecodeError):
        decode_tracked(b"[{}, {")
