"""Scenario engine: well-formed notification sequences, ground truth that follows the rules,
call-log records that agree with the events, determinism from the seed.

The ground-truth check re-derives the expected logs from the emitted events alone, using the
rules of issue 5 (answered/transferred for users who answered; otherwise voicemail, missed or
an abandoned call; internal legs and queue members who did not answer get nothing), and
compares them with `SimCall.expected`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from sscl_daemon.calls.model import CallResult, Direction, ExtensionType
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import (
    STATUS_CODES,
    CallFactory,
    CallKind,
    ExpectedLog,
    SimCall,
    SimEvent,
)

START = datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=UTC)
ORG = Organisation.build(42)
USERS = {u.id for u in ORG.users}
ALL_EXTENSIONS = {e.id for e in ORG.extensions()}
E164 = re.compile(r"^\+1\d{10}$")
PARTY_KEYS = {
    "accountId",
    "id",
    "direction",
    "to",
    "from",
    "status",
    "park",
    "missedCall",
    "standAlone",
    "muted",
}
BODY_KEYS = {
    "sequence",
    "sessionId",
    "telephonySessionId",
    "serverId",
    "eventTime",
    "parties",
    "origin",
}
FINAL = {"Disconnected", "Gone"}
# Reasons a 2020-style call still carries: the only evidence of the outcome.
ALWAYS_REASONED = {"BlindTransfer", "TargetBusy", "AttendedTransfer"}
LOG_RESULTS = {"Accepted", "Call connected", "Missed", "Voicemail", "Busy", "Hang Up", "No Answer"}


def _ms(text: object) -> int:
    assert isinstance(text, str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _party(event: SimEvent) -> dict[str, object]:
    parties = event.body["parties"]
    assert isinstance(parties, list)
    assert len(parties) == 1
    party = parties[0]
    assert isinstance(party, dict)
    return party


def _status(party: dict[str, object]) -> dict[str, object]:
    status = party["status"]
    assert isinstance(status, dict)
    return status


def _ref(party: dict[str, object], key: str) -> dict[str, object]:
    value = party[key]
    assert isinstance(value, dict)
    return value


def _by_session(call: SimCall) -> dict[str, list[SimEvent]]:
    sessions: dict[str, list[SimEvent]] = defaultdict(list)
    for event in call.events:
        sessions[str(event.body["telephonySessionId"])].append(event)
    return sessions


def _calls(count: int, seed: int = 1) -> list[SimCall]:
    factory = CallFactory(ORG, seed)
    return [factory.make(START + timedelta(seconds=7 * i)) for i in range(count)]


EVERY_KIND = [CallFactory(ORG, seed).make(START, kind) for kind in CallKind for seed in range(6)]
MIXED = _calls(300)


def _ids(calls: list[SimCall]) -> list[str]:
    return [f"{c.kind}-{i}" for i, c in enumerate(calls)]


# -- notification sequences --------------------------------------------------------------------


def check_well_formed(call: SimCall) -> None:
    start_ms = int(call.start.timestamp() * 1000)
    offsets = [e.offset_ms for e in call.events]
    assert offsets == sorted(offsets)
    assert call.end_offset_ms == offsets[-1]
    sessions = _by_session(call)
    assert set(sessions) == set(call.telephony_session_ids)
    party_ids: dict[str, set[str]] = {}
    pickups: dict[str, object] = {}
    for tsid, events in sessions.items():
        assert tsid.startswith("s-")
        core = tsid[2:]
        sequences = [e.body["sequence"] for e in events]
        assert sequences == list(range(2, 2 + len(events))), sequences
        times = [_ms(e.body["eventTime"]) for e in events]
        assert times == sorted(times)
        assert times[0] >= start_ms
        session_ids = {e.body["sessionId"] for e in events}
        assert len(session_ids) == 1
        assert str(next(iter(session_ids))).isdigit()
        last_code: dict[str, str] = {}
        for event, event_ms in zip(events, times, strict=True):
            assert set(event.body) == BODY_KEYS
            assert event.body["origin"] == {"type": "Call"}
            # emitted tens of ms after the status change, as real notifications are
            assert 0 <= event.offset_ms - (event_ms - start_ms) <= 200
            party = _party(event)
            assert set(party) >= PARTY_KEYS
            assert re.fullmatch(rf"p-{re.escape(core)}-\d+", str(party["id"]))
            assert party["accountId"] == ORG.account_id
            assert party["direction"] in ("Inbound", "Outbound")
            assert party.get("extensionId") == event.extension_id
            if event.extension_id is not None:
                assert event.extension_id in ALL_EXTENSIONS
            status = _status(party)
            assert status["code"] in STATUS_CODES
            assert status["rcc"] is False
            assert "phoneNumber" in _ref(party, "from")
            assert "phoneNumber" in _ref(party, "to")
            if event.extension_id is None:
                # the PSTN side shows full E.164 numbers
                assert E164.match(str(_ref(party, "from")["phoneNumber"]))
                assert E164.match(str(_ref(party, "to")["phoneNumber"]))
            if "mobilePickupData" in status:
                # one value per ringing party, repeated on its Answered (captures)
                pickup = pickups.setdefault(str(party["id"]), status["mobilePickupData"])
                assert status["mobilePickupData"] == pickup
            if status["code"] == "Gone":
                peer = status["peerId"]
                assert isinstance(peer, dict)
                assert peer["telephonySessionId"] in sessions
            pid = str(party["id"])
            assert last_code.get(pid) not in FINAL, f"{pid} reported after it ended"
            last_code[pid] = str(status["code"])
            if not call.modern and status["code"] == "Disconnected" and "reason" in status:
                assert status["reason"] in ALWAYS_REASONED
        assert set(last_code.values()) <= FINAL, "every party of a session ends"
        party_ids[tsid] = set(last_code)
    for event in call.events:
        status = _status(_party(event))
        if status["code"] == "Gone":
            peer = status["peerId"]
            assert isinstance(peer, dict)
            assert peer["partyId"] in party_ids[str(peer["telephonySessionId"])]


@pytest.mark.parametrize("call", EVERY_KIND, ids=_ids(EVERY_KIND))
def test_every_kind_is_well_formed(call: SimCall) -> None:
    check_well_formed(call)


def test_random_mix_is_well_formed_and_covers_every_kind_and_both_styles() -> None:
    for call in MIXED:
        check_well_formed(call)
    assert {c.kind for c in MIXED} == set(CallKind)
    assert {c.modern for c in MIXED} == {True, False}
    reasons = {
        str(_status(_party(e)).get("reason"))
        for c in MIXED
        if c.modern
        for e in c.events
        if _status(_party(e))["code"] == "Disconnected"
    }
    assert {"CallerInputRedirect", "BlindTransfer", "Cancelled", "None"} <= reasons


def test_queue_deliveries_look_like_queue_calls() -> None:
    queue_ids = {q.extension.id: q for q in ORG.queues}
    seen = 0
    for call in EVERY_KIND:
        if call.kind is not CallKind.IVR_QUEUE_ANSWERED:
            continue
        for event in call.events:
            party = _party(event)
            if party.get("queueCall"):
                seen += 1
                to = _ref(party, "to")
                queue = queue_ids[str(to["extensionId"])]
                assert event.extension_id in {m.id for m in queue.members}
                assert str(_ref(party, "from")["name"]).startswith(f"{queue.extension.name} - ")
                ui = party["uiCallInfo"]
                assert isinstance(ui, dict)
                assert ui["primary"] == {"type": "QueueName", "value": queue.extension.name}
    assert seen > 0


def test_voicemail_spelling_is_configurable() -> None:
    for spelling in ("VoiceMail", "Voicemail"):
        call = CallFactory(ORG, 3, voicemail_code=spelling).make(START, CallKind.INBOUND_VOICEMAIL)
        codes = [_status(_party(e))["code"] for e in call.events]
        assert spelling in codes
    with pytest.raises(ValueError, match="voicemail_code"):
        CallFactory(ORG, 3, voicemail_code="VM")


def test_time_scale_shrinks_calls() -> None:
    normal = CallFactory(ORG, 8).make(START, CallKind.HOLD_RESUME)
    fast = CallFactory(ORG, 8, time_scale=0.01).make(START, CallKind.HOLD_RESUME)
    assert [e.body["sequence"] for e in fast.events] == [e.body["sequence"] for e in normal.events]
    assert fast.end_offset_ms < normal.end_offset_ms / 20
    check_well_formed(fast)


# -- ground truth ------------------------------------------------------------------------------


def _row(
    tsid: str, states: list[dict[str, object]], result: str
) -> tuple[str, str, str, str | None]:
    """One derived log: the user's direction and the number on the far side of their party."""
    last = states[-1]
    inbound = last["direction"] == "Inbound"
    number = str(_ref(last, "from" if inbound else "to")["phoneNumber"])
    return (f"{tsid}:{last['extensionId']}", result, "inbound" if inbound else "outbound", number)


def derive_expected(call: SimCall) -> set[tuple[str, str, str, str | None]]:
    """The expected logs from the events alone, by the rules of issue 5."""
    out: set[tuple[str, str, str, str | None]] = set()
    for tsid, events in _by_session(call).items():
        parties: dict[str, list[dict[str, object]]] = defaultdict(list)
        for event in events:
            party = _party(event)
            parties[str(party["id"])].append(party)
        external = [p for p in parties.values() if "extensionId" not in p[0]]
        if not external:
            continue  # an internal call: no log
        users = {}
        for pid, states in parties.items():
            last = states[-1]
            if last.get("extensionId") not in USERS:
                continue
            if "extensionId" in _ref(last, "from") and "extensionId" in _ref(last, "to"):
                continue  # this user's leg stayed internal (warm-transfer consult)
            users[pid] = states
        answered = {
            pid: s for pid, s in users.items() if any(_status(p)["code"] == "Answered" for p in s)
        }

        if answered:
            for states in answered.values():
                reason = _status(states[-1]).get("reason")
                handed_on = reason in ("BlindTransfer", "AttendedTransfer")
                out.add(_row(tsid, states, "transferred" if handed_on else "answered"))
        elif users:
            voicemail = [
                s
                for s in users.values()
                if any(_status(p)["code"] in ("VoiceMail", "Voicemail") for p in s)
            ]
            for states in voicemail or list(users.values()):
                reason = _status(states[-1]).get("reason")
                if voicemail:
                    result = "voicemail"
                elif reason == "TargetBusy":
                    result = "busy"
                elif reason == "Rejected":
                    result = "rejected"
                else:
                    result = "missed"
                out.add(_row(tsid, states, result))
        else:
            caller = external[0][-1]
            out.add((f"{tsid}:-", "abandoned", "inbound", str(_ref(caller, "from")["phoneNumber"])))
    return out


def check_expected(call: SimCall) -> None:
    keys = [log.key for log in call.expected]
    assert len(set(keys)) == len(keys), "one log per user per session"
    for log in call.expected:
        tsid, _, ext = log.key.partition(":")
        assert tsid in call.telephony_session_ids
        assert log.telephony_session_id == tsid
        assert ext == (log.extension_id or "-")
        if log.extension_id is not None:
            assert log.extension_id in USERS
        assert log.result in {r.value for r in CallResult}
        assert log.direction in {d.value for d in Direction}
        assert log.external_number is not None
        assert E164.match(log.external_number)
    got = {(e.key, e.result, e.direction, e.external_number) for e in call.expected}
    assert got == derive_expected(call)


@pytest.mark.parametrize("call", EVERY_KIND, ids=_ids(EVERY_KIND))
def test_expected_logs_follow_the_rules(call: SimCall) -> None:
    check_expected(call)


def test_expected_logs_follow_the_rules_across_the_mix() -> None:
    for call in MIXED:
        check_expected(call)


EXPECTED_RESULTS = {
    CallKind.OUTBOUND_ANSWERED: ["answered"],
    CallKind.OUTBOUND_NO_ANSWER: ["missed"],
    CallKind.OUTBOUND_BUSY: ["busy"],
    CallKind.INBOUND_ANSWERED: ["answered"],
    CallKind.INBOUND_MISSED: ["missed"],
    CallKind.INBOUND_VOICEMAIL: ["voicemail"],
    CallKind.IVR_QUEUE_ANSWERED: ["answered"],
    CallKind.IVR_ABANDONED: ["abandoned"],
    CallKind.BLIND_TRANSFER: ["transferred", "answered"],
    CallKind.WARM_TRANSFER: ["transferred", "answered"],
    CallKind.HOLD_RESUME: ["answered"],
    CallKind.PARK_PICKUP: ["answered", "answered"],
    CallKind.RECORDED: ["answered"],
    CallKind.INTERNAL: [],
}


@pytest.mark.parametrize("call", EVERY_KIND, ids=_ids(EVERY_KIND))
def test_each_kind_has_its_outcome(call: SimCall) -> None:
    results = [log.result for log in call.expected]
    if call.kind is CallKind.QUEUE_MISSED:
        assert results
        assert set(results) == {"missed"}
        return
    assert results == EXPECTED_RESULTS[call.kind]
    if call.kind is CallKind.IVR_ABANDONED:
        assert call.expected[0].extension_id is None
        assert call.expected[0].key.endswith(":-")
    if call.kind is CallKind.RECORDED:
        assert len(call.expected[0].recording_ids) == 1
    if call.kind is CallKind.HOLD_RESUME:
        assert call.expected[0].hold_ms > 0


def test_warm_transfer_spans_two_sessions_linked_by_peer_ids() -> None:
    call = CallFactory(ORG, 5).make(START, CallKind.WARM_TRANSFER)
    a, b = call.telephony_session_ids
    first, second = call.expected
    assert first.key.startswith(f"{a}:")
    assert first.result == "transferred"
    assert second.key.startswith(f"{b}:")
    assert second.result == "answered"
    assert first.external_number == second.external_number
    assert first.extension_id != second.extension_id
    gone = [_party(e) for e in call.events if _status(_party(e))["code"] == "Gone"]
    assert {p.get("extensionId") for p in gone} >= {first.extension_id}
    assert all(_status(p)["reason"] == "AttendedTransfer" for p in gone)


def _talk_and_hold(states: list[tuple[int, str]]) -> tuple[int, int]:
    answered = hold = -1
    hold_ms = 0
    for t, code in states:
        if code == "Answered":
            answered = t if answered < 0 else answered
            if hold >= 0:
                hold_ms += t - hold
                hold = -1
        elif code in ("Hold", "Parked"):
            hold = t
    end = states[-1][0]
    if hold >= 0:
        hold_ms += end - hold
    talk = 0 if answered < 0 else end - answered - hold_ms
    return talk, hold_ms


def test_talk_and_hold_times_agree_with_event_times() -> None:
    for call in EVERY_KIND + MIXED[:60]:
        timeline: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for event in call.events:
            party = _party(event)
            if event.extension_id is not None:
                key = f"{event.body['telephonySessionId']}:{event.extension_id}"
                timeline[key].append((_ms(event.body["eventTime"]), str(_status(party)["code"])))
        for log in call.expected:
            if log.extension_id is None:
                continue
            assert (log.talk_ms, log.hold_ms) == _talk_and_hold(timeline[log.key]), log


# -- call-log records --------------------------------------------------------------------------


def check_call_log(call: SimCall) -> None:
    sessions = _by_session(call)
    by_tsid = {str(r["telephonySessionId"]): r for r in call.call_log_records}
    assert set(by_tsid) == set(call.telephony_session_ids)
    for tsid, record in by_tsid.items():
        events = sessions[tsid]
        times = [_ms(e.body["eventTime"]) for e in events]
        assert record["sessionId"] == events[0].body["sessionId"]
        # with milliseconds, as current records have them (a 2021 capture: "...:26.354Z")
        assert record["startTime"] == events[0].body["eventTime"]
        assert record["durationMs"] == times[-1] - times[0]
        assert record["duration"] == round((times[-1] - times[0]) / 1000)
        assert record["type"] == "Voice"
        assert record["direction"] in ("Inbound", "Outbound")
        assert record["result"] in LOG_RESULTS
        assert str(record["uri"]).endswith(f"/call-log/{record['id']}?view=Detailed")
        legs = record["legs"]
        assert isinstance(legs, list)
        assert legs
        assert legs[0]["master"] is True
        for leg in legs:
            assert isinstance(leg["legType"], str)
            assert leg["result"] in LOG_RESULTS
            assert 0 <= leg["durationMs"] <= record["durationMs"]
            assert leg["duration"] == round(leg["durationMs"] / 1000)
            assert isinstance(leg["extension"]["id"], int)
            assert str(leg["extension"]["id"]) in ALL_EXTENSIONS
        leg_users = {str(leg["extension"]["id"]) for leg in legs}
        recording = record.get("recording")
        for log in call.expected:
            if log.key.startswith(f"{tsid}:") and log.extension_id is not None:
                assert log.extension_id in leg_users, "reconcile can find the user in the legs"
                # and one of the user's legs names the outside number the live events show
                own = [leg for leg in legs if str(leg["extension"]["id"]) == log.extension_id]
                assert any(
                    leg["from" if leg["direction"] == "Inbound" else "to"]["phoneNumber"]
                    == log.external_number
                    for leg in own
                )
            if log.telephony_session_id == tsid:
                if log.recording_ids:
                    assert isinstance(recording, dict)
                    assert (recording["id"],) == log.recording_ids
                    assert recording["type"] in ("Automatic", "OnDemand")
                    assert str(recording["contentUri"]).endswith(
                        f"/recording/{recording['id']}/content"
                    )
                else:
                    assert recording is None
        if any(
            log.result == "voicemail" and log.telephony_session_id == tsid for log in call.expected
        ):
            assert record["result"] == "Voicemail"
            assert isinstance(record["message"], dict)


@pytest.mark.parametrize("call", EVERY_KIND, ids=_ids(EVERY_KIND))
def test_call_log_records_agree_with_events(call: SimCall) -> None:
    check_call_log(call)


def test_call_log_results_per_kind() -> None:
    wanted = {
        CallKind.OUTBOUND_ANSWERED: "Call connected",
        CallKind.OUTBOUND_NO_ANSWER: "No Answer",
        CallKind.OUTBOUND_BUSY: "Busy",
        CallKind.INBOUND_ANSWERED: "Accepted",
        CallKind.INBOUND_MISSED: "Missed",
        CallKind.INBOUND_VOICEMAIL: "Voicemail",
        CallKind.IVR_ABANDONED: "Hang Up",
        CallKind.QUEUE_MISSED: "Missed",
    }
    for call in EVERY_KIND:
        if call.kind in wanted:
            assert call.call_log_records[0]["result"] == wanted[call.kind]


# -- determinism -------------------------------------------------------------------------------


def test_same_seed_same_calls_other_seed_other_calls() -> None:
    assert _calls(40, seed=9) == _calls(40, seed=9)
    assert _calls(40, seed=9) != _calls(40, seed=10)


def test_salted_calls_do_not_depend_on_order() -> None:
    factory = CallFactory(ORG, 4)
    first = factory.make(START, salt=3)
    factory.make(START)
    factory.make(START + timedelta(seconds=1), salt=1)
    assert CallFactory(ORG, 4).make(START, salt=3) == first


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CallFactory(ORG, 1).make(datetime(2026, 1, 1))


def test_queue_members_are_users_of_that_queue() -> None:
    departments = {q.extension.id for q in ORG.queues}
    for call in EVERY_KIND:
        for event in call.events:
            party = _party(event)
            if party.get("queueCall"):
                assert ORG.extension(str(event.extension_id)).type is ExtensionType.USER
                assert _ref(party, "to")["extensionId"] in departments


def test_expected_log_is_a_frozen_record() -> None:
    log = EVERY_KIND[0].expected[0]
    assert isinstance(log, ExpectedLog)
    with pytest.raises(AttributeError):
        log.result = "missed"  # type: ignore[misc]


INBOUND_KINDS = {
    CallKind.INBOUND_ANSWERED, CallKind.INBOUND_MISSED, CallKind.INBOUND_VOICEMAIL,
    CallKind.IVR_QUEUE_ANSWERED, CallKind.IVR_ABANDONED, CallKind.QUEUE_MISSED,
    CallKind.BLIND_TRANSFER, CallKind.PARK_PICKUP,
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(INBOUND_KINDS))
def test_the_caller_is_answered_when_ringcentral_picks_up(kind: CallKind) -> None:
    # The captures (csn-data: RC -> RC, PSTN -> IVR -> user): the calling party goes
    # Answered when the RC side is reached -- before any phone rings or a user answers,
    # and on a call nobody answers too.
    for seed in range(6):
        call = CallFactory(ORG, seed).make(START, kind)
        first = call.events[0]
        caller_id = _party(first)["id"]
        assert "extensionId" not in _party(first)
        codes = [
            (_party(e)["id"] == caller_id, str(_status(_party(e))["code"]))
            for e in _by_session(call)[str(first.body["telephonySessionId"])]
        ]
        caller_answered = codes.index((True, "Answered"))
        assert (True, "Disconnected") in codes[caller_answered:] or (True, "Gone") in codes
        user_steps = [code for own, code in codes[:caller_answered] if not own]
        assert "Proceeding" not in user_steps
        assert "Answered" not in user_steps
