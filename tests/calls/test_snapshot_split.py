"""Snapshot and restore at every split point of generated calls.

A daemon may be stopped after any notification: the tracker's snapshot taken
there and restored into a fresh tracker must carry on as if nothing happened.
For a generated interleaving of several calls (the scenarios of
``test_properties`` plus arbitrary party histories, in any order), splitting
the stream at each position in turn and restoring gives the same call logs,
the same state (the content of its snapshot) and the same counters as one tracker that saw
the whole stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.calls.builder import DIRECTORY
from tests.calls.test_properties import FLOWS, PROPS, random_session

from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.tracker import SnapshotError, Tracker, TrackerOptions

OPTIONS = TrackerOptions(completion_grace_s=2.0)


def run(raws: Sequence[bytes], split: int | None) -> tuple[list[CompletedCall], object, object]:
    """Feed ``raws``; with ``split``, snapshot after that many and go on in a restored tracker."""
    tracker = Tracker(DIRECTORY, OPTIONS)
    calls: list[CompletedCall] = []
    for index, raw in enumerate(raws):
        if index == split:
            restored = Tracker(DIRECTORY, OPTIONS)
            restored.restore(tracker.snapshot())
            tracker = restored
        calls += tracker.apply(decode_event(raw))
    state = comparable(tracker.snapshot())
    calls += tracker.flush()
    return calls, state, tracker.counters()


def distinct(raw: bytes, stream: int) -> bytes:
    """``raw`` with uuid and telephony session id moved into the stream's own range."""
    tsid = b'"telephonySessionId": "s-'
    raw = raw.replace(b'"40000', f'"4{stream}000'.encode())
    return raw.replace(tsid, tsid + f"{stream}-".encode())


def comparable(snapshot: bytes) -> object:
    """A snapshot's content; the recently finished sessions are a set, whatever their order."""
    content = msgspec.msgpack.decode(snapshot)
    content["finished"] = sorted(content["finished"])
    return content


@st.composite
def interleaved_calls(draw: st.DrawFn) -> list[bytes]:
    """Two to four calls (known flows or arbitrary histories) interleaved in any order."""
    chosen = draw(st.lists(st.integers(0, len(FLOWS) - 1), min_size=1, max_size=3, unique=True))
    streams = [list(FLOWS[i]) for i in chosen] + [draw(random_session())]
    # Each call built alone starts from the same uuid, and some flows share a session id;
    # RingCentral's are unique, so each stream gets its own uuid range and session id.
    streams = [[distinct(raw, n) for raw in stream] for n, stream in enumerate(streams)]
    merged: list[bytes] = []
    while any(streams):
        pick = draw(st.sampled_from([s for s in streams if s]))
        merged.append(pick.pop(0))
    return merged


@PROPS
@given(raws=interleaved_calls())
def test_restoring_at_any_point_changes_nothing(raws: list[bytes]) -> None:
    whole = run(raws, None)
    assert whole[0], "the generated calls yield call logs"
    for split in range(len(raws) + 1):
        assert run(raws, split) == whole, f"split after {split} of {len(raws)} notifications"


def test_an_unreadable_snapshot_is_a_typed_error() -> None:
    tracker = Tracker(DIRECTORY, OPTIONS)
    for junk in (b"", b"\x93\x01", Tracker(None).snapshot()[:-3]):
        with pytest.raises(SnapshotError, match="snapshot"):
            tracker.restore(junk)
