"""Pure rendering of call logs: subject, outcome, durations, notes, markers."""

from __future__ import annotations

import pytest
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CallResult, Direction
from sscl_daemon.crm import content
from sscl_daemon.crm.content import CallOutcome, Match


def test_subject_inbound_outbound_internal_and_name() -> None:
    assert content.subject(make_call()) == "Inbound call from +14155550123"
    out = make_call(direction=Direction.OUTBOUND, external_name="Bob Buyer")
    assert content.subject(out) == "Outbound call to Bob Buyer (+14155550123)"
    assert content.subject(out, "Robert B.") == "Outbound call to Robert B. (+14155550123)"
    internal = make_call(direction=Direction.INTERNAL, external_number=None, internal_number="102")
    assert content.subject(internal) == "Internal call with 102"


@pytest.mark.parametrize(
    ("result", "direction", "expected"),
    [
        (CallResult.ANSWERED, Direction.INBOUND, CallOutcome.ANSWERED),
        (CallResult.MISSED, Direction.INBOUND, CallOutcome.NO_ANSWER),
        (CallResult.VOICEMAIL, Direction.INBOUND, CallOutcome.VOICEMAIL),
        (CallResult.BUSY, Direction.OUTBOUND, CallOutcome.BUSY),
        (CallResult.REJECTED, Direction.INBOUND, CallOutcome.REJECTED),
        (CallResult.REJECTED, Direction.OUTBOUND, CallOutcome.NO_ANSWER),
        (CallResult.ABANDONED, Direction.INBOUND, CallOutcome.ABANDONED),
        (CallResult.TRANSFERRED, Direction.INBOUND, CallOutcome.TRANSFERRED),
        (CallResult.INCOMPLETE, Direction.INBOUND, CallOutcome.INCOMPLETE),
    ],
)
def test_outcome(result: CallResult, direction: Direction, expected: CallOutcome) -> None:
    assert content.outcome(make_call(result=result, direction=direction)) is expected


def test_durations() -> None:
    assert content.talk_seconds(make_call(talk_ms=125_499)) == 125
    assert content.talk_seconds(make_call(talk_ms=125_500)) == 126
    assert [content.minutes(s) for s in (0, 1, 60, 61)] == [0, 1, 1, 2]
    assert content.hms(0) == "00:00:00"
    assert content.hms(3_725) == "01:02:05"
    assert content.hms(90_000) == "25:00:00"


def test_e164_helpers() -> None:
    assert content.to_e164("(415) 555-0123", "US") == "+14155550123"
    assert content.to_e164("+44 20 7946 0958") == "+442079460958"
    assert content.to_e164("4155550123") is None  # no region, no '+'
    assert content.to_e164("not a number", "US") is None
    assert content.phone_variants("+14155550123") == ("+14155550123", "14155550123", "4155550123")


def test_note_has_times_user_transfer_recording_and_markers() -> None:
    call = make_call(
        hold_ms=30_000,
        queue_name="Sales",
        transferred_to="Bob (ext. 102)",
        recording_ids=("rec-77",),
    )
    text = content.note_text(call)
    lines = text.splitlines()
    assert "Talk time: 00:02:05" in lines
    assert "Ring time: 00:00:12" in lines
    assert "Queue time: 00:00:04" in lines
    assert "Queue: Sales" in lines
    assert "Hold time: 00:00:30" in lines
    assert "RingCentral user: Alice Agent (ext. 101)" in lines
    assert "Transferred to: Bob (ext. 102)" in lines
    assert (
        "Recording: https://media.ringcentral.com/restapi/v1.0/account/37439510/recording/rec-77/content"
        in lines
    )
    assert lines[-3:] == [
        "RingCentral session: s-1001",
        "RingCentral call session: 9001",
        "sscl-key: s-1001:62001",
    ]


def test_html_note_escapes_and_links() -> None:
    call = make_call(user_name="<Eve & Co>", recording_ids=("r1",))
    note = content.note_html(call)
    assert "&lt;Eve &amp; Co&gt;" in note
    assert "<Eve" not in note
    assert (
        '<a href="https://media.ringcentral.com/restapi/v1.0/account/37439510/recording/r1/content">'
        in note
    )
    assert "<p>sscl-key: s-1001:62001</p>" in note


def test_recognise_ours_client_and_sibling() -> None:
    call = make_call()
    assert content.recognise(call, content.note_html(call)) is Match.OURS
    assert content.recognise(call, content.note_text(call)) is Match.OURS
    # A user's client log names the session but has no key of ours.
    assert content.recognise(call, "Called Bob\n- Session Id: 9001\n") is Match.CLIENT
    assert content.recognise(call, "<p>RingCentral session: s-1001</p>") is Match.CLIENT
    assert content.recognise(call, "<ul><li><b>Session Id</b>: 9001</li></ul>") is Match.CLIENT
    assert content.recognise(call, "<li><b>Session Id</b>: 90012</li>") is None
    # Our log for another user of the same session (a transfer) is not this call's log.
    sibling = make_call(extension_id="62002")
    assert content.recognise(call, content.note_text(sibling)) is None
    assert content.recognise(call, "Session Id: 12345") is None
    assert content.recognise(call, None) is None


def test_first_match_prefers_ours() -> None:
    call = make_call()
    records = [("1", "nothing"), ("2", "Session Id: 9001"), ("3", content.note_text(call))]
    assert content.first_match(call, records) == ("3", Match.OURS)
    assert content.first_match(call, records[:2]) == ("2", Match.CLIENT)
    assert content.first_match(call, records[:1]) is None


def test_note_names_the_contact() -> None:
    assert "With: Bob (+14155550123)" in content.note_text(make_call(), "Bob").splitlines()
    assert "With: +14155550123" in content.note_text(make_call()).splitlines()
