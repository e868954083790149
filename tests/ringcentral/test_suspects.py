"""Suspects: which sessions a gap cut, and when they are ready for the call log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction
from sscl_daemon.ringcentral.reconcile import Suspects
from sscl_daemon.ringcentral.subscription import Gap, GapReason

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def call(tsid: str) -> CompletedCall:
    return CompletedCall(
        key=f"{tsid}:1", telephony_session_id=tsid, session_id=None, account_id="a",
        extension_id="1", extension_number="101", user_name=None, user_email=None,
        direction=Direction.INBOUND, external_number="+15550100", external_name=None,
        internal_number=None, result=CallResult.ANSWERED, start_time=T0, answer_time=T0,
        end_time=T0, ring_ms=0, queue_ms=0, talk_ms=0, hold_ms=0, total_ms=0,
    )  # fmt: skip


def test_in_flight_sessions_at_a_gap_are_suspect_until_resolved() -> None:
    suspects = Suspects(window=60)
    suspects.observe("s-a", 2, T0)
    suspects.observe("s-b", 2, T0)
    assert len(suspects) == 0
    gap = Gap(T0 + timedelta(seconds=5), T0 + timedelta(seconds=9), GapReason.RECOVERY_FAILED)
    suspects.on_gap(gap, ["s-a"])
    assert "s-a" in suspects
    assert [c.telephony_session_id for c in suspects.keep([call("s-a"), call("s-b")])] == ["s-b"]
    # still followed by the tracker: not yet
    assert suspects.due(lambda tsid: True) == ([], None)
    assert suspects.due(lambda tsid: False) == (["s-a"], T0)
    suspects.resolved(["s-a"])
    assert len(suspects) == 0


def test_sessions_first_seen_mid_call_just_after_a_gap_are_suspect() -> None:
    suspects = Suspects(window=60)
    # before any gap a late first sequence is just reordering
    suspects.observe("s-early", 5, T0)
    gap = Gap(T0, T0 + timedelta(seconds=2), GapReason.RECOVERY_FAILED)
    suspects.on_gap(gap, [])
    suspects.observe("s-cut", 4, T0 + timedelta(seconds=3))
    suspects.observe("s-new", 2, T0 + timedelta(seconds=3))
    suspects.observe("s-late", 4, T0 + timedelta(seconds=300))
    assert "s-cut" in suspects
    assert "s-early" not in suspects
    assert "s-new" not in suspects
    assert "s-late" not in suspects
    assert set(suspects.seen()) == {"s-early", "s-cut", "s-new", "s-late"}


def test_a_session_first_seen_after_a_long_gap_is_looked_up_from_the_gap_start() -> None:
    # An 18 s outage: the session started in it and is first seen when the stream is back.
    # Its call-log record starts in the gap, far more than the reconciler's margin before
    # the first notification, so the lookup must reach back to the gap's start.
    suspects = Suspects(window=60)
    gap = Gap(T0, T0 + timedelta(seconds=18), GapReason.REPLAY_INCOMPLETE)
    suspects.on_gap(gap, [])
    suspects.observe("s-cut", 6, T0 + timedelta(seconds=19))
    assert suspects.due(lambda tsid: False) == (["s-cut"], T0)
