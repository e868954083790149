"""A fuzzer over the decoders of untrusted input: the gateway frame parser (and the connection
that uses it), decode_tracked, decode_event and the edge time check, fed random bytes,
random JSON and mutations of real notification frames (byte edits and structural ones:
any node replaced by odd JSON, huge strings, huge numbers, deep nesting).

Properties: a decoder returns a value or raises its typed error, nothing else; whatever
decodes respects the edge bounds; decode_event and decode_tracked agree (what the full model
accepts the lean one accepts, with the same tracked fields); the tracker applies whatever
decodes without raising. Derandomized (the same examples every run) and bounded, so it
runs in make test in seconds; raise FUZZ_EXAMPLES to search longer.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.calls import scenarios
from tests.calls.builder import DIRECTORY, frames

from sscl_daemon.calls.events import (
    MAX_ID_LENGTH,
    MAX_LIST_LENGTH,
    MAX_SEQUENCE,
    EventDecodeError,
    Notification,
    TrackedNotification,
    check_event_time,
    decode_event,
    decode_tracked,
)
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.ringcentral.wsg import Frame, GatewayConnection, ProtocolError, Wsc, parse_frame

T = TypeVar("T")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SEEDS: list[bytes] = [
    raw
    for make in (
        scenarios.outbound,
        scenarios.inbound_direct,
        scenarios.ivr_queue,
        scenarios.blind_transfer,
        scenarios.park_pickup,
    )
    for raw in frames(make())
]

# ---- strategies ----

odd_strings = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\u0000", "\ud800", "Answered", "VoiceMail", "s-", "9" * 20]),
    st.integers(min_value=1, max_value=5_000).map(lambda n: "x" * n),
)
odd_numbers = st.one_of(
    st.integers(),
    st.sampled_from([-1, 0, 2, MAX_SEQUENCE, MAX_SEQUENCE + 1, 10**15, 2**63, 2**64 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
odd_times = st.sampled_from(
    [
        "9999-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "0001-01-01T00:00:00+23:59",
        "2026-13-40T99:99:99Z",
        "2026-03-02T15:00:00",
        "yesterday",
    ]
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), odd_numbers, odd_strings, odd_times),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(odd_strings, inner, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where a node can be replaced (real frames are 6 levels deep; nested values are skipped)."""
    found = [prefix]
    if len(prefix) > 8:
        return found
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@st.composite
def structural_mutants(draw: st.DrawFn, seeds: list[bytes] = SEEDS) -> bytes:
    """A real frame (or another of ``seeds``) with some of its nodes replaced by odd values."""
    document = json.loads(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(document)))
        new = draw(st.one_of(json_values, st.integers(100, 3_000).map(nested)))
        document = _replace(document, path, new)
    try:
        return json.dumps(document).encode()
    except RecursionError:
        return json.dumps(nested(50)).encode()


@st.composite
def byte_mutants(draw: st.DrawFn, seeds: list[bytes] = SEEDS) -> bytes:
    """A real frame (or another of ``seeds``) with bytes replaced, inserted, deleted or a
    slice repeated."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["set", "insert", "delete", "repeat"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if op == "set" and at < len(data):
            data[at : at + len(chunk)] = chunk
        elif op == "insert":
            data[at:at] = chunk
        elif op == "delete":
            del data[at : at + len(chunk)]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 50))
    return bytes(data)


inputs = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda v: json.dumps(v).encode()),
    structural_mutants(),
    byte_mutants(),
    st.sampled_from(SEEDS),
)


# ---- properties ----


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    fields = getattr(value, "__struct_fields__", None)
    if fields is None:
        return []
    return [s for name in fields for s in _strings(getattr(value, name))]


def _check_bounds(event: Notification | TrackedNotification) -> None:
    body = event.body
    assert 1 <= len(body.telephony_session_id) <= MAX_ID_LENGTH
    assert 0 <= body.sequence <= MAX_SEQUENCE
    assert len(body.parties) <= MAX_LIST_LENGTH
    for party in body.parties:
        assert 1 <= len(party.id) <= MAX_ID_LENGTH
    assert all("\x00" not in s for s in _strings(event))


def _tracked(event: Notification | TrackedNotification) -> tuple[object, ...]:
    body = event.body
    parties = [
        (p.id, p.extension_id, p.direction, p.status, p.from_, p.to, p.queue_call)
        for p in body.parties
    ]
    return (event.uuid, body.telephony_session_id, body.sequence, body.event_time, parties)


def _attempt(decode: Callable[[bytes | str], T], raw: bytes | str) -> T | EventDecodeError:
    """The decoded value or the typed error (anything else raised fails the test)."""
    try:
        return decode(raw)
    except EventDecodeError as exc:
        return exc


@FUZZ
@given(inputs, st.booleans())
def test_event_decoders_raise_only_their_typed_error(raw: bytes, as_text: bool) -> None:
    payload: bytes | str = raw.decode("utf-8", "replace") if as_text else raw
    full = _attempt(decode_event, payload)
    lean = _attempt(decode_tracked, payload)
    for outcome in (full, lean):
        if isinstance(outcome, EventDecodeError):
            assert outcome.raw == payload
    if not isinstance(full, EventDecodeError):
        _check_bounds(full)
        assert not isinstance(lean, EventDecodeError), "what the full model takes, lean takes"
        assert _tracked(lean) == _tracked(full)
    if not isinstance(lean, EventDecodeError):
        _check_bounds(lean)
        received = datetime.now(UTC)
        for at in (received, received + timedelta(days=3650), received - timedelta(days=3650)):
            checked = _attempt(functools.partial(check_event_time, lean, received_at=at), payload)
            assert checked is None or "untrusted time" in checked.reason
        # The tracker takes whatever decodes (the pipeline also guards it, but it must not
        # need to).
        tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0.0))
        tracker.apply(lean)
        tracker.flush()


@FUZZ
@given(inputs)
def test_the_frame_parser_and_the_connection_never_raise_anything_else(raw: bytes) -> None:
    try:
        frame = parse_frame(raw)
    except ProtocolError:
        pass
    else:
        assert isinstance(frame, Frame)
    conn = GatewayConnection(recovering=True, subscription_id="sub-7f3e", wsc=Wsc("t", 1))
    conn.receive('[{"type":"ConnectionDetails"},{"recoveryState":"Successful"}]')
    conn.receive(raw)
    header = b'[{"type":"ServerNotification","wsc":{"token":"t","sequence":3}},'
    conn.receive(header + raw + b"]")
