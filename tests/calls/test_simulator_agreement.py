"""The call core agrees with the simulator's ground truth for every kind of call.

The simulator (``sscl_daemon.simulator.scenarios``) writes each call as
RingCentral would report it, with the call logs it should produce; both
sides follow the same call rules, written independently. Every kind is
checked in both payload styles (modern reasons and 2020-style without),
with and without an extension directory.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.policy import Policy
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind

ORG = Organisation.build(seed=11)
DIRECTORY = Directory.from_api(ORG.extension_records())


@pytest.mark.parametrize("with_directory", [True, False])
@pytest.mark.parametrize("kind", list(CallKind))
def test_tracker_logs_what_the_simulator_expects(kind: CallKind, with_directory: bool) -> None:
    directory = DIRECTORY if with_directory else None
    for seed in range(6):
        factory = CallFactory(ORG, seed, voicemail_code="Voicemail" if seed % 2 else "VoiceMail")
        call = factory.make(datetime(2026, 3, 2, 15, tzinfo=UTC) + timedelta(minutes=seed), kind)
        tracker = Tracker(directory, TrackerOptions(completion_grace_s=2), Policy(None, directory))
        logged = []
        for n, event in enumerate(call.events):
            envelope = {
                "uuid": f"{seed}-{n}",
                "event": f"/restapi/v1.0/account/{ORG.account_id}/telephony/sessions",
                "body": event.body,
            }
            logged += tracker.apply(decode_event(json.dumps(envelope)))
        logged += tracker.flush()
        got = {
            c.key: (c.result.value, c.direction.value, c.external_number, c.recording_ids,
                    c.talk_ms, c.hold_ms)
            for c in logged
        }  # fmt: skip
        expected = {
            e.key: (e.result, e.direction, e.external_number, e.recording_ids, e.talk_ms,
                    e.hold_ms)
            for e in call.expected
        }  # fmt: skip
        assert got == expected, (seed, call.modern)
