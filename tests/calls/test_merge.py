"""``calls/merge.with_live``: which side's result wins when a record meets a live view.

The live ``transferred`` is kept over the record's ``answered`` only when the live history
is whole; with a hole in it (lost events) the record's result stands. Seen in the chaos
soak (issue 13/19): a call logged ``transferred`` that RingCentral reports ``answered``.
"""

from __future__ import annotations

import msgspec
import pytest
from tests.calls.test_two_paths import DIRECTORY, ORG, START, live_calls, log_calls

from sscl_daemon.calls.merge import with_live
from sscl_daemon.calls.model import CallResult, CallSource, CompletedCall
from sscl_daemon.simulator.scenarios import CallFactory, CallKind


def _answered_pair() -> tuple[CompletedCall, CompletedCall]:
    """An answered call's record and its live view made to look handed on."""
    call = CallFactory(ORG, 5).make(START, CallKind.INBOUND_ANSWERED)
    logs = log_calls(call, DIRECTORY)
    live = live_calls(call, DIRECTORY)
    key = next(k for k, c in logs.items() if c.result is CallResult.ANSWERED)
    return logs[key], msgspec.structs.replace(live[key], result=CallResult.TRANSFERRED)


@pytest.mark.parametrize(
    ("complete", "expected"),
    [(False, CallResult.ANSWERED), (True, CallResult.TRANSFERRED)],
)
def test_live_transfer_wins_over_the_record_only_with_a_whole_history(
    complete: bool, expected: CallResult
) -> None:
    record, live = _answered_pair()
    merged = with_live(record, live, complete=complete)
    assert merged.result is expected
    assert merged.source is CallSource.LIVE_CALL_LOG
