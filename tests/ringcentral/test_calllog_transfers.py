"""Warm transfers read from call-log records (ringcentral/calllog_legs.py consult_transfers,
calllog_record.py RecordCalls._consulted): which answered call a consult call took over.

Issue 19 (soak seed 13): a user answered a call from an outside number while, on another call
from the same number, they made the consult call of a warm transfer. The consult's TransferCall
leg names the session it took the caller from (`transferee`), yet the daemon matched it by
(user, number, time) and logged the unrelated call as `transferred` (transferred_to None).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import msgspec

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import CallResult, CompletedCall
from sscl_daemon.calls.policy import Policy, PolicyOptions
from sscl_daemon.ringcentral.calllog import calls_from_records
from sscl_daemon.ringcentral.records import CallLogRecord
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory, CallKind

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Record = dict[str, object]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _when(record: Record) -> datetime:
    return datetime.fromisoformat(str(record["startTime"]).replace("Z", "+00:00"))


def _legs(record: Record) -> list[Record]:
    legs = record["legs"]
    assert isinstance(legs, list)
    return legs


def _warm_and_other(seed: int) -> tuple[Organisation, Record, Record, Record]:
    """A warm transfer's two records (the customer's session, the consult) and a plain
    answered inbound call of the transferring user from the same caller, 5 s long, during
    which the consult call starts: the seed-13 soak record (Accept + PstnToSip legs)."""
    org = Organisation.build(seed, users=12, queues=2)
    factory = CallFactory(org, seed)
    warm = factory.make(START, CallKind.WARM_TRANSFER)
    customer, consult = (copy.deepcopy(r) for r in warm.call_log_records)
    plain = factory.make(START + timedelta(hours=1), CallKind.INBOUND_ANSWERED)
    [other] = (copy.deepcopy(r) for r in plain.call_log_records)
    accept = _legs(customer)[0]
    begins = _when(consult) - timedelta(seconds=1)
    other.update(
        startTime=_iso(begins),
        durationMs=5_000,
        duration=5,
        **{"from": customer["from"], "to": customer["to"]},
    )
    for leg in _legs(other):
        leg.update(startTime=_iso(begins), durationMs=5_000, duration=5)
        leg.update(extension=accept["extension"], **{"from": customer["from"]})
        if leg["legType"] == "Accept":
            leg["to"] = customer["to"]
    return org, customer, consult, other


def _mapped(org: Organisation, records: list[Record]) -> dict[str, CompletedCall]:
    directory = Directory.from_api(org.extension_records())
    made, errors = calls_from_records(
        msgspec.convert(records, list[CallLogRecord]), org.account_id, directory
    )
    assert errors == []
    return {call.telephony_session_id: call for call in made}


def test_a_consult_of_another_call_from_the_same_number_is_no_transfer() -> None:
    org, customer, consult, other = _warm_and_other(13)
    calls = _mapped(org, [customer, consult, other])
    plain = calls[str(other["telephonySessionId"])]
    assert plain.extension_id == calls[str(customer["telephonySessionId"])].extension_id
    assert plain.result is CallResult.ANSWERED
    assert plain.transferred_to is None
    # the warm transfer itself still reads as one
    assert calls[str(customer["telephonySessionId"])].result is CallResult.TRANSFERRED


def test_a_consult_naming_no_session_still_marks_the_call_it_overlaps() -> None:
    """Records without `transferTarget`/`transferee`: the consult is matched by time."""
    org, customer, consult, _ = _warm_and_other(13)
    del _legs(customer)[0]["transferTarget"]
    for leg in _legs(consult):
        leg.pop("transferee", None)
    calls = _mapped(org, [customer, consult])
    assert calls[str(customer["telephonySessionId"])].result is CallResult.TRANSFERRED


def test_a_dense_mix_read_at_once_gives_the_ground_truth() -> None:
    """Calls every 330 ms (the soak's rate) against the simulator's users and 60 callers:
    users take several calls at once, some from one number, and one read holds them all."""
    org = Organisation.build(13)
    factory = CallFactory(org, 13)
    calls = [factory.make(START + timedelta(milliseconds=330 * i)) for i in range(1500)]
    records = [record for call in calls for record in call.call_log_records]
    directory = Directory.from_api(org.extension_records())
    made, errors = calls_from_records(
        msgspec.convert(records, list[CallLogRecord]), org.account_id, directory
    )
    assert errors == []
    policy = Policy(PolicyOptions(), directory)
    got = {call.key: call.result.value for call in made if policy.logs(call)}
    expected = {log.key: log.result for call in calls for log in call.expected}
    assert {key: got.get(key) for key in expected if got.get(key) != expected[key]} == {}
    assert got.keys() == expected.keys()
