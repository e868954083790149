"""Decoding raw notifications: accepted shapes, tolerance, and one typed error."""

from __future__ import annotations

import json
from collections.abc import Callable

import msgspec
import pytest
from tests.calls import scenarios
from tests.calls.builder import frames

from sscl_daemon.calls.codes import OriginType, Reason, StatusCode, parse_status
from sscl_daemon.calls.events import EventDecodeError, decode_event, decode_tracked
from sscl_daemon.calls.wire import TrackedNotification


def envelope(**body_changes: object) -> dict[str, object]:
    raw = frames(scenarios.inbound_direct())[1]
    env: dict[str, object] = json.loads(raw)[1]
    env["body"].update(body_changes)  # type: ignore[attr-defined]
    return env


def test_frame_envelope_and_bare_body_decode_alike() -> None:
    raw = frames(scenarios.inbound_direct())[1]
    env = json.loads(raw)[1]
    from_frame = decode_event(raw)
    from_envelope = decode_event(json.dumps(env))
    from_body = decode_event("  \n" + json.dumps(env["body"]))
    assert from_frame == from_envelope
    assert from_body.body == from_frame.body
    assert from_body.uuid is None
    note = from_frame
    assert note.uuid == "4000000000000000002"
    assert note.subscription_id == "sub-7f3e"
    assert note.body.sequence == 3
    party = note.body.parties[0]
    assert party.id.endswith("-2")
    assert party.extension_id == "1001"
    assert party.to is not None
    assert party.to.phone_number == "+16505550101"
    assert party.status is not None
    assert party.status.kind is StatusCode.SETUP
    assert not party.outbound
    assert note.body.origin is not None
    assert note.body.origin.kind is OriginType.CALL


def test_unknown_fields_statuses_reasons_and_origins_are_kept_not_fatal() -> None:
    env = envelope(origin={"type": "HologramCall"}, newThing={"x": [1, 2]})
    party = env["body"]["parties"][0]  # type: ignore[index]
    party["status"] = {"code": "Teleported", "reason": "Wormhole", "rcc": False, "extra": 1}
    party["brandNewField"] = True
    note = decode_event(json.dumps(env))
    status = note.body.parties[0].status
    assert status is not None
    assert status.kind is StatusCode.UNKNOWN
    assert status.code == "Teleported"
    assert status.why is Reason.UNKNOWN
    assert status.reason == "Wormhole"
    assert note.body.origin is not None
    assert note.body.origin.kind is OriginType.UNKNOWN
    assert note.body.origin.type == "HologramCall"


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("VoiceMail", StatusCode.VOICEMAIL),
        ("Voicemail", StatusCode.VOICEMAIL),
        ("voicemail", StatusCode.VOICEMAIL),
        ("VMScreening", StatusCode.VOICEMAIL_SCREENING),
        ("VoiceMailScreening", StatusCode.VOICEMAIL_SCREENING),
        ("ANSWERED", StatusCode.ANSWERED),
        ("", StatusCode.UNKNOWN),
        (None, StatusCode.UNKNOWN),
    ],
)
def test_status_spellings(spelling: str | None, expected: StatusCode) -> None:
    assert parse_status(spelling) is expected


def test_numeric_ids_become_strings() -> None:
    env = envelope(sessionId=4119612004, accountId=400131234008)
    env["ownerId"] = 1001
    party = env["body"]["parties"][0]  # type: ignore[index]
    party["extensionId"] = 1001
    party["to"]["extensionId"] = 1001
    party["recordings"] = [{"id": 7181543004, "active": True}]
    note = decode_event(json.dumps(env).encode())
    assert note.owner_id == "1001"
    assert note.body.session_id == "4119612004"
    assert note.body.sequence == 3  # numbers that are not ids stay numbers
    decoded = note.body.parties[0]
    assert decoded.extension_id == "1001"
    assert decoded.to is not None
    assert decoded.to.extension_id == "1001"
    assert decoded.recordings is not None
    assert decoded.recordings[0].id == "7181543004"


def test_naive_event_time_is_utc() -> None:
    env = envelope(eventTime="2026-03-02T15:00:00.300")
    note = decode_event(json.dumps(env))
    assert note.body.event_time.isoformat().startswith("2026-03-02T15:00:00.300")


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "not a JSON object"),
        (b"garbage", "not a JSON object"),
        (b"{not json", "malformed"),
        (b"[1, 2, 3]", "Expected"),
        (b'[{"type": "Heartbeat", "messageId": "x"}]', "Heartbeat"),
        (b'[{"type": "ConnectionDetails"}, {"body": {}}]', "ConnectionDetails"),
        (b'{"uuid": "1", "event": "/restapi/v1.0/account/1/telephony/sessions"}', "body"),
        (b'{"uuid": "1", "body": {"sequence": 2}}', "telephonySessionId"),
        (b'{"telephonySessionId": "s-1", "sequence": "two", "eventTime": "x"}', "int"),
        ('{"uuid": "1", "body": {"telephonySessionId": "s-1", "sequence": 2, '
         '"eventTime": "yesterday"}}', "datetime"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("decode", [decode_event, decode_tracked])
def test_undecodable_payloads_raise_one_error_carrying_the_payload(
    raw: bytes | str, why: str, decode: Callable[[bytes | str], object]
) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode(raw)
    assert caught.value.raw == raw
    assert why in caught.value.reason
    assert isinstance(caught.value, ValueError)


def tracked_fields(note: object) -> object:
    """What Tracker.apply reads of either view, as plain data."""
    body = msgspec.to_builtins(note.body)  # type: ignore[attr-defined]
    for party in body["parties"]:
        for dropped in ("missedCall", "standAlone", "muted", "park", "conferenceRole",
                        "ringOutRole", "ringMeRole"):  # fmt: skip
            party.pop(dropped, None)
    for dropped in ("serverId", "extensionId"):
        body.pop(dropped, None)
    return note.uuid, note.event, body  # type: ignore[attr-defined]


def test_the_tracked_view_carries_what_the_tracker_reads_of_the_full_one() -> None:
    for make in (scenarios.ivr_queue, scenarios.park_pickup, lambda: scenarios.inbound_direct(
            recording=True)):  # fmt: skip
        for raw in frames(make()):
            env = json.loads(raw)[1]
            for shape in (raw, json.dumps(env).encode(), json.dumps(env)):
                lean = decode_tracked(shape)
                # The lean struct itself, not the full one (which extends it).
                assert type(lean) is TrackedNotification
                assert tracked_fields(lean) == tracked_fields(decode_event(shape))


def test_the_tracked_view_falls_back_to_the_full_decoder() -> None:
    raw = frames(scenarios.inbound_direct())[1]
    env = json.loads(raw)[1]
    bare_body = decode_tracked("  \n" + json.dumps(env["body"]))
    assert bare_body == decode_event(json.dumps(env["body"]))
    env["body"]["sessionId"] = 4119612004
    numeric = decode_tracked(json.dumps(env).encode())
    assert numeric.body.session_id == "4119612004"
    # a field the tracker never reads is not validated on the lean path
    env["body"]["sessionId"] = "4119612004"
    env["body"]["serverId"] = {"not": "a string"}
    assert decode_tracked(json.dumps(env)).body.sequence == 3
    with pytest.raises(EventDecodeError):
        decode_event(json.dumps(env))
