"""The session lifecycle table, and the hand-optimised tracker against a plain reference.

``Tracker.apply`` is the per-event hot path, so it does not look phases up in
:data:`~sscl_daemon.calls.lifecycle.TRANSITIONS`. :class:`Reference` below does: it keeps
each session's raw events and moves it through the table with :func:`step`, deciding
completion from the plain rules (every party final, no hand-off, the grace after the last
event, longer while a sequence number is missing). For any order of any calls' events the
two complete the same sessions at the same moments, and the calls the tracker makes do not
depend on the order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sscl_daemon.calls import lifecycle
from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import Reason, StatusCode, decode_event, parse_reason, parse_status
from sscl_daemon.calls.lifecycle import FINAL, Action, LifecycleError, Phase, Trigger, step
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind

ORG = Organisation.build(seed=5)
DIRECTORY = Directory.from_api(ORG.extension_records())
START = datetime(2026, 4, 1, 10, tzinfo=UTC)
GRACE_S, GAP_GRACE_S = 2.0, 5.0
_ENDS = (StatusCode.DISCONNECTED, StatusCode.GONE)
_MAILBOX = (StatusCode.VOICEMAIL, StatusCode.VOICEMAIL_SCREENING)
_HANDOFF = (
    Reason.PICKUP, Reason.CALL_SWITCH, Reason.BLIND_TRANSFER, Reason.RCC_TRANSFER,
    Reason.DTMF_TRANSFER,
)  # fmt: skip


@dataclass
class _Session:
    # sequence -> (event time ms, party id, status, reason)
    events: dict[int, tuple[int, str, StatusCode, Reason]] = field(default_factory=dict)
    phase: Phase = Phase.OPEN
    deadline: int | None = None


class Reference:
    """The completion rules, written plainly over raw events and the lifecycle table."""

    def __init__(self) -> None:
        self.sessions: dict[str, _Session] = {}
        self.done: set[str] = set()
        self.clock = 0

    def apply(self, body: dict[str, object]) -> set[str]:
        tsid, seq = str(body["telephonySessionId"]), int(str(body["sequence"]))
        at = int(datetime.fromisoformat(str(body["eventTime"])).timestamp() * 1000 + 0.5)
        self.clock = max(self.clock, at)
        if tsid not in self.done:
            session = self.sessions.setdefault(tsid, _Session())
            if seq not in session.events:
                [party] = body["parties"]  # type: ignore[misc]
                status = party.get("status") or {}
                session.events[seq] = (
                    at,
                    str(party["id"]),
                    parse_status(status.get("code")),
                    parse_reason(status.get("reason")),
                )
                self._evaluate(session)
        return self._due()

    def _evaluate(self, session: _Session) -> None:
        latest: dict[str, tuple[int, StatusCode, Reason]] = {}
        for seq in sorted(session.events):
            _, party, code, reason = session.events[seq]
            latest[party] = (seq, code, reason)
        codes = [code for _, code, _ in latest.values()]
        final = [c for c in codes if c in _ENDS]
        newest = max(latest.values(), key=lambda item: item[0])
        handoff = newest[1] is StatusCode.DISCONNECTED and newest[2] in _HANDOFF
        settled = all(c in _ENDS or c in _MAILBOX for c in codes) and final and not handoff
        trigger = Trigger.ALL_FINAL if settled else Trigger.EVENT
        session.phase, action = step(session.phase, trigger)
        if action is Action.SCHEDULE:
            seqs = sorted(session.events)
            contiguous = seqs[0] <= 2 and seqs == list(range(seqs[0], seqs[-1] + 1))
            sure = contiguous and not any(c in _MAILBOX for c in codes)
            last = max(at for at, _, _, _ in session.events.values())
            session.deadline = last + round((GRACE_S if sure else GAP_GRACE_S) * 1000)
        elif action is Action.UNSCHEDULE:
            session.deadline = None

    def _due(self) -> set[str]:
        due = set()
        for tsid, session in list(self.sessions.items()):
            pending = session.phase is Phase.GRACE_PENDING and session.deadline is not None
            if pending and session.deadline is not None and session.deadline <= self.clock:
                session.phase, action = step(session.phase, Trigger.GRACE_PASSED)
                assert action is Action.LOG
                due.add(tsid)
                del self.sessions[tsid]
                self.done.add(tsid)
        return due


def _events(seed: int, kinds: list[CallKind]) -> list[dict[str, object]]:
    factory = CallFactory(ORG, seed)
    bodies: list[dict[str, object]] = []
    for n, kind in enumerate(kinds):
        call = factory.make(START + timedelta(seconds=40 * n), kind)
        bodies.extend(event.body for event in call.events)
    return bodies


def _tracker() -> Tracker:
    options = TrackerOptions(completion_grace_s=GRACE_S, gap_grace_s=GAP_GRACE_S)
    return Tracker(DIRECTORY, options, Policy(None, DIRECTORY))


def _run(bodies: list[dict[str, object]]) -> tuple[list[set[str]], list[set[str]], set[bytes]]:
    """Both sides on the same events: the sessions each completes after every event."""
    tracker, reference = _tracker(), Reference()
    ours: list[set[str]] = []
    theirs: list[set[str]] = []
    made: set[bytes] = set()
    done: set[str] = set()
    for n, body in enumerate(bodies):
        before = set(tracker.sessions()) | {str(body["telephonySessionId"])}
        calls = tracker.apply(decode_event(json.dumps({"uuid": f"u{n}", "body": body})))
        made.update(msgspec.json.encode(c) for c in calls)
        completed = {t for t in before - done if tracker.phase(t) is None}
        done |= completed
        ours.append(completed)
        theirs.append(reference.apply(body))
    return ours, theirs, made


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 50),
    kinds=st.lists(st.sampled_from(list(CallKind)), min_size=1, max_size=4),
    data=st.data(),
)
def test_tracker_and_reference_complete_the_same_sessions_in_any_order(
    seed: int, kinds: list[CallKind], data: st.DataObject
) -> None:
    bodies = _events(seed, kinds)
    shuffled = data.draw(st.permutations(bodies))
    ours, theirs, _ = _run(shuffled)
    assert ours == theirs


def _ms(body: dict[str, object]) -> int:
    return int(datetime.fromisoformat(str(body["eventTime"])).timestamp() * 1000)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 50),
    kinds=st.lists(st.sampled_from(list(CallKind)), min_size=1, max_size=4),
    data=st.data(),
)
def test_the_calls_do_not_depend_on_the_order_within_the_grace(
    seed: int, kinds: list[CallKind], data: st.DataObject
) -> None:
    # Notifications delayed by less than the completion grace (in event time): the calls
    # are those of the in-order run. (Later than that, the session completes without the
    # late event -- with a hole, which sends it to the call log.)
    bodies = _events(seed, kinds)
    delays = data.draw(st.lists(st.integers(0, 1500), min_size=len(bodies), max_size=len(bodies)))
    late = [b for _, _, b in sorted(zip([_ms(b) + d for b, d in zip(bodies, delays, strict=True)],
                                        range(len(bodies)), bodies, strict=True))]  # fmt: skip
    ordered = sorted(bodies, key=lambda b: (_ms(b), int(str(b["sequence"]))))
    (late_calls, late_holes), (in_order, holes) = _calls(late), _calls(ordered)
    assert (late_holes, holes) == (set(), set())
    assert late_calls == in_order


def _calls(bodies: list[dict[str, object]]) -> tuple[dict[tuple[str, str], bytes], set[str]]:
    tracker = _tracker()
    made = []
    for n, body in enumerate(bodies):
        made += tracker.apply(decode_event(json.dumps({"uuid": f"u{n}", "body": body})))
    made += tracker.flush()
    calls = {(c.telephony_session_id, c.key): msgspec.json.encode(_comparable(c)) for c in made}
    return calls, {tsid for tsid, _ in tracker.take_holed()}


def _comparable(call: CompletedCall) -> CompletedCall:
    # A warm transfer's target is read from the consult session while that one is still
    # followed: in some orders it has completed first, and the target is not named.
    if call.final_reason == Reason.ATTENDED_TRANSFER.value:
        return msgspec.structs.replace(call, transferred_to=None)
    return call


def test_every_phase_is_reachable_and_every_final_phase_is_final() -> None:
    reached = {Phase.OPEN}
    for (phase, _), (target, _) in lifecycle.TRANSITIONS.items():
        assert phase not in FINAL, f"{phase} is final: nothing leaves it"
        reached.add(target)
    assert reached == set(Phase)


def test_a_transition_not_in_the_table_is_an_error() -> None:
    with pytest.raises(LifecycleError, match="no transition from 'complete'"):
        step(Phase.COMPLETE, Trigger.EVENT)


def test_the_documented_diagram_is_the_table() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "session-lifecycle.md"
    assert lifecycle.diagram() in doc.read_text(encoding="utf-8"), (
        "docs/session-lifecycle.md is out of date: "
        "python -m sscl_daemon.calls.lifecycle prints the diagram"
    )
