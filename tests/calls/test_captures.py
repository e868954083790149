"""Real RingCentral captures (tests/captures/csn-data, unchanged) through the call core.

The behaviours of issue 13 that the real platform showed and the simulator had not:
talk time excludes the other user's hold, the other extension's number on internal calls,
a session with a hole in its sequence numbers is not logged as if complete, and an
extension the directory does not know makes the tracker ask for a fresh directory before
it decides.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.calls.captures import CAPTURES, csn_envelopes, encoded, sequence

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.model import (
    ANSWERS_AS_A_PERSON,
    CallResult,
    CompletedCall,
    Direction,
    Extension,
    ExtensionType,
)
from sscl_daemon.calls.policy import Policy, PolicyOptions
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind

RC_TO_RC = "RingCentral-RingCentral.txt"
RC_TO_PSTN = "RingCentral-PSTN.txt"
PSTN_IVR_USER = "PSTN-RingCentral-DataStreams.txt"
CALLER, CALLEE = "979428016", "809646016"  # "Message Dispatcher" (ext 11104), "TESTER Babji"
IVR = "62242421016"


def _directory(*extensions: Extension) -> Directory:
    return Directory(extensions)


PEOPLE = _directory(
    Extension(id=CALLER, extension_number="11104", name="Message Dispatcher",
              type=ExtensionType.USER),
    Extension(id=CALLEE, extension_number="11101", name="TESTER Babji", type=ExtensionType.USER),
    Extension(id=IVR, extension_number="1001", name="IVR Menu 1001", type=ExtensionType.IVR_MENU),
)  # fmt: skip


def run(
    name: str,
    directory: Directory | None,
    *,
    log_internal: bool = False,
    keep: set[int] | None = None,
) -> tuple[Tracker, list[CompletedCall]]:
    tracker = Tracker(
        directory,
        TrackerOptions(completion_grace_s=0),
        Policy(PolicyOptions(log_internal=log_internal), directory),
    )
    made: list[CompletedCall] = []
    for envelope in csn_envelopes(name):
        if keep is None or sequence(envelope) in keep:
            made += tracker.apply(decode_event(encoded(envelope)))
    made += tracker.expire(datetime(2020, 6, 23, 2, 0, tzinfo=UTC))
    return tracker, made


def by_user(calls: list[CompletedCall]) -> dict[str | None, CompletedCall]:
    return {call.extension_id: call for call in calls}


def test_the_callee_talk_time_excludes_the_callers_hold() -> None:
    # The caller held 25.015 -> 29.334; the callee answered at 21.084 and left at 35.061.
    _, made = run(RC_TO_RC, PEOPLE, log_internal=True)
    callee = by_user(made)[CALLEE]
    assert callee.hold_ms == 29_334 - 25_015
    assert callee.talk_ms == (35_061 - 21_084) - (29_334 - 25_015)  # 9.66 s, not 13.98 s
    caller = by_user(made)[CALLER]
    assert caller.hold_ms == 29_334 - 25_015
    # one definition for both parties: talk while nobody held
    assert caller.talk_ms == (35_051 - 21_084) - (29_334 - 25_015)


def test_internal_calls_name_the_other_extension() -> None:
    for directory in (PEOPLE, None):
        _, made = run(RC_TO_RC, directory, log_internal=True)
        calls = by_user(made)
        assert {c.direction for c in made} == {Direction.INTERNAL}
        # the callee sees the caller's short number in `from`; the caller dialled 11101
        assert calls[CALLEE].internal_number == "11104"
        assert calls[CALLER].internal_number == "11101"


def test_a_hole_in_the_sequence_is_not_logged_as_a_complete_call() -> None:
    # The answer and the hold (sequences 4-8) never arrive: the tracker alone would say
    # "missed" with a ring time of the whole call. The session is reported for the call log.
    tracker, made = run(RC_TO_PSTN, PEOPLE, keep={2, 3, 9, 10})
    assert [c.result for c in made] == [CallResult.MISSED]
    holed = tracker.take_holed()
    assert holed == [(made[0].telephony_session_id, made[0].start_time)]
    # the whole capture has no hole
    tracker, made = run(RC_TO_PSTN, PEOPLE)
    assert [c.result for c in made] == [CallResult.ANSWERED]
    assert tracker.take_holed() == []


def test_an_extension_the_directory_does_not_know_waits_for_a_fresh_directory() -> None:
    stale = _directory(
        Extension(id=IVR, extension_number="1001", name="IVR Menu 1001",
                  type=ExtensionType.IVR_MENU),
    )  # fmt: skip
    tracker = Tracker(stale, TrackerOptions(completion_grace_s=0), Policy(None, stale))
    made: list[CompletedCall] = []
    for envelope in csn_envelopes(PSTN_IVR_USER):
        made += tracker.apply(decode_event(encoded(envelope)))
    assert made == []  # complete, but not decided before the directory is loaded again
    assert tracker.take_directory_wanted() == {CALLEE}
    assert tracker.take_directory_wanted() == set()  # asked once
    tracker.replace_directory(PEOPLE)
    made += tracker.expire(datetime(2020, 6, 23, 1, 6, 15, tzinfo=UTC))
    [call] = made
    assert (call.extension_id, call.result, call.user_name) == (
        CALLEE,
        CallResult.ANSWERED,
        "TESTER Babji",
    )


def test_without_a_fresh_directory_the_session_is_decided_after_the_wait() -> None:
    stale = _directory()
    tracker = Tracker(
        stale, TrackerOptions(completion_grace_s=0, directory_wait_s=30), Policy(None, stale)
    )
    for envelope in csn_envelopes(PSTN_IVR_USER):
        assert tracker.apply(decode_event(encoded(envelope))) == []
    assert tracker.take_directory_wanted() == {IVR, CALLEE}
    assert tracker.expire(datetime(2020, 6, 23, 1, 6, 40, tzinfo=UTC)) == []
    made = tracker.expire(datetime(2020, 6, 23, 1, 6, 45, tzinfo=UTC))
    # the IVR left with no user after it: heuristics; the user answered: a user
    assert [(c.extension_id, c.result) for c in made] == [(CALLEE, CallResult.ANSWERED)]


def test_every_extension_type_of_the_current_api_is_classified_on_purpose() -> None:
    # API reference "Get Extension Info" `type`, the current list.
    current = {
        "User", "FaxUser", "FlexibleUser", "VirtualUser", "DigitalUser", "Department",
        "Announcement", "Voicemail", "SharedLinesGroup", "PagingOnly", "IvrMenu",
        "ApplicationExtension", "ParkLocation", "Bot", "Room", "RoomConnector", "Limited",
        "Site", "ProxyAdmin", "DelegatedLinesGroup", "GroupCallPickup",
    }  # fmt: skip
    assert {ExtensionType.parse(t).value for t in current} == current  # none is "Unknown"
    people = {t for t in current if ExtensionType.parse(t) in ANSWERS_AS_A_PERSON}
    assert people == {"User", "DigitalUser", "VirtualUser", "FlexibleUser", "Limited"}
    # a type newer than this list is taken for a person, not dropped
    assert ExtensionType.parse("SomethingNew") in ANSWERS_AS_A_PERSON


def test_a_new_users_phone_seen_only_in_setup_still_gets_a_log() -> None:
    # No public capture has it: a simulated missed call to a user added after the last
    # directory load, whose Proceeding notifications were lost. It was taken for an IVR.
    org = Organisation.build(4)
    call = CallFactory(org, 4).make(datetime(2026, 3, 2, 9, tzinfo=UTC), CallKind.INBOUND_MISSED)
    [expected] = call.expected
    known = Directory.from_api(
        [r for r in org.extension_records() if str(r["id"]) != expected.extension_id]
    )
    tracker = Tracker(known, TrackerOptions(completion_grace_s=0), Policy(None, known))
    made: list[CompletedCall] = []
    for n, event in enumerate(call.events):
        party = event.body["parties"][0]  # type: ignore[index]
        if party.get("extensionId") and party["status"]["code"] == "Proceeding":  # type: ignore[index]
            continue
        envelope = {"uuid": str(n), "body": event.body}
        made += tracker.apply(decode_event(encoded(envelope)))
    # a notification is missing: completed after the gap grace, then waiting for the directory
    made += tracker.expire(call.start + timedelta(milliseconds=call.end_offset_ms + 10_000))
    assert tracker.take_directory_wanted() == {expected.extension_id}
    made += tracker.flush()  # no fresh directory came
    assert [(c.key, c.result) for c in made] == [(expected.key, CallResult.MISSED)]


def test_a_queue_calls_caller_and_queue_are_named_apart_from_live_events() -> None:
    # tests/captures/rc-call-queue-or-direct: the real agent party of a queue call, whose
    # from.name is "<queue> - WIRELESS CALLER" (the record path: tests/ringcentral).
    raw = (CAPTURES / "rc-call-queue-or-direct" / "queue-call-notification.json").read_bytes()
    tracker = Tracker(None, TrackerOptions(completion_grace_s=0), Policy(None, None))
    assert tracker.apply(decode_event(raw)) == []
    [call] = tracker.flush()
    assert (call.external_number, call.external_name, call.queue_name) == (
        "+16504888888",
        "WIRELESS CALLER",
        "Tyler's call queue",
    )
