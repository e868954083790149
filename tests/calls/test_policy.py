"""Blocklist, scope, directory and the policy's explanations."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from tests.calls import scenarios
from tests.calls.builder import CUSTOMER, DIRECTORY, MAIN_NUMBER, Session, ext, frames, pstn

from sscl_daemon.calls.blocklist import (
    Blocklist,
    BlocklistError,
    Scope,
    ScopeMode,
    parse_blocklist,
)
from sscl_daemon.calls.directory import Directory, DirectoryError
from sscl_daemon.calls.events import decode_event
from sscl_daemon.calls.model import CallResult, CompletedCall, Direction, ExtensionType
from sscl_daemon.calls.policy import Decision, Policy, PolicyOptions, SkipReason
from sscl_daemon.calls.tracker import Tracker, TrackerOptions


def test_blocklist_accepts_list_and_comma_string_and_normalises() -> None:
    from_list = parse_blocklist(["+1 (510) 555-1234", "101", "+1800*", "+44 20 7946 0000"])
    from_text = parse_blocklist("+15105551234, 101 ,+1800*,+442079460000")
    assert from_list == from_text
    assert from_list.numbers == frozenset({"+15105551234", "+442079460000"})
    assert from_list.extensions == frozenset({"101"})
    assert from_list.prefixes == ("+1800",)
    assert len(from_list) == 4
    assert from_list.matches_number("+18005550199")
    assert from_list.matches_number("+15105551234")
    assert not from_list.matches_number("+15105551235")
    assert not from_list.matches_number(None)
    assert from_list.matches_extension("101")
    assert not from_list.matches_extension("1010")
    assert from_list.entries() == ["+15105551234", "+442079460000", "+1800*", "101"]
    assert parse_blocklist([]) == Blocklist()


def test_national_numbers_need_a_region() -> None:
    assert parse_blocklist(["(510) 555-1234"], "US").numbers == frozenset({"+15105551234"})
    assert parse_blocklist(["020 7946 0000"], "GB").numbers == frozenset({"+442079460000"})
    # 7-8 digits: an extension unless the region reads it as a valid phone number
    assert parse_blocklist(["1234567"]).extensions == frozenset({"1234567"})
    with pytest.raises(BlocklistError) as caught:
        parse_blocklist(["5105551234"])
    assert caught.value.entry == "5105551234"
    assert "default_region" in caught.value.reason


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("12ab", "neither a phone number"),
        ("+1510555", "not a valid phone number"),
        ("+1-800-FLOWERS", "only hold digits"),
        ("1800*", "a prefix must be"),
        ("+*", "a prefix must be"),
        ("", "empty entry"),
    ],
)
def test_bad_entries_are_named_with_the_reason(entry: str, why: str) -> None:
    with pytest.raises(BlocklistError) as caught:
        parse_blocklist(["101", entry])
    assert caught.value.entry == entry
    assert why in caught.value.reason
    assert repr(entry) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_scope_modes_and_validation() -> None:
    everybody = Scope()
    assert everybody.allows("101", None)
    only = Scope(ScopeMode.INCLUDE, frozenset({"101"}), frozenset({"Support"}))
    assert only.allows("101", None)
    assert only.allows("103", "Support")
    assert not only.allows("102", "Sales")
    assert not only.allows(None, None)
    others = Scope(ScopeMode.EXCLUDE, frozenset({"101"}), frozenset())
    assert not others.allows("101", "Sales")
    assert others.allows("102", "Sales")
    assert Scope("include", frozenset({"1"})).mode is ScopeMode.INCLUDE  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'everyone'"):
        Scope("everyone")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'10x'"):
        Scope.checked(ScopeMode.INCLUDE, ["101", "10x"])
    with pytest.raises(ValueError, match="department"):
        Scope.checked(ScopeMode.EXCLUDE, [], ["  "])
    assert Scope(ScopeMode.INCLUDE, frozenset({"10x"})).problems() == [
        "scope extension '10x' is not an extension number (1 to 8 digits)"
    ]


def test_directory_from_api_records() -> None:
    records: list[dict[str, object]] = [
        {"id": 62264425004, "extensionNumber": "101", "name": "Alice Agent", "type": "User",
         "status": "Enabled", "contact": {"email": "alice@example.com", "department": "Sales"}},
        {"id": "62264426004", "extensionNumber": "2000", "name": "Main IVR", "type": "IvrMenu"},
        {"id": 62264427004, "extensionNumber": "3000", "type": "Department"},
        {"id": 62264428004, "type": "SomethingNew"},
    ]  # fmt: skip
    directory = Directory.from_api(records)
    alice = directory.by_id("62264425004")
    assert alice is not None
    assert alice.extension_number == "101"
    assert alice.email == "alice@example.com"
    assert alice.department == "Sales"
    assert directory.by_number("101") == alice
    assert directory.is_user("62264425004") is True
    assert directory.is_user("62264426004") is False
    assert directory.is_user("nope") is None
    queue = directory.by_number("3000")
    assert queue is not None
    assert queue.type is ExtensionType.DEPARTMENT
    unknown = directory.by_id("62264428004")
    assert unknown is not None
    assert unknown.type is ExtensionType.UNKNOWN
    assert len(directory) == 4
    with pytest.raises(DirectoryError, match="#1"):
        Directory.from_api([records[0], {"name": "no id"}])


def answered_call() -> CompletedCall:
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0))
    out = [
        c for raw in frames(scenarios.inbound_direct()) for c in tracker.apply(decode_event(raw))
    ]
    assert len(out) == 1
    return out[0]


def test_explain_says_why_a_call_is_or_is_not_logged() -> None:
    call = answered_call()
    policy = Policy(PolicyOptions(), DIRECTORY)
    decision = policy.explain(call)
    assert decision.logged
    assert decision.reason is None
    assert str(decision).endswith("logged: answered inbound call of 101")

    cases = [
        (PolicyOptions(blocklist=parse_blocklist([CUSTOMER])), SkipReason.BLOCKLISTED_NUMBER),
        (PolicyOptions(blocklist=parse_blocklist(["+1415*"])), SkipReason.BLOCKLISTED_NUMBER),
        (PolicyOptions(blocklist=parse_blocklist(["101"])), SkipReason.BLOCKLISTED_EXTENSION),
        (PolicyOptions(scope=Scope(ScopeMode.INCLUDE, departments=frozenset({"Support"}))),
         SkipReason.OUT_OF_SCOPE),
        (PolicyOptions(scope=Scope(ScopeMode.EXCLUDE, extensions=frozenset({"101"}))),
         SkipReason.OUT_OF_SCOPE),
    ]  # fmt: skip
    for options, reason in cases:
        policy.replace_options(options)
        decision = policy.explain(call)
        assert not decision.logged
        assert decision.reason is reason
        assert "skipped" in str(decision)
    policy.replace_options(PolicyOptions(), blocklist=parse_blocklist(["3000"]))
    queued = msgspec.structs.replace(call, participants=("2000", "3000", "101"))
    assert policy.explain(queued).logged
    policy.replace_options(blocklist=parse_blocklist(["3000"], log_other_parties=False))
    assert policy.explain(queued).reason is SkipReason.BLOCKLISTED_PARTICIPANT
    assert policy.explain(call).logged

    policy.replace_options(PolicyOptions())
    internal = msgspec.structs.replace(call, direction=Direction.INTERNAL, external_number=None)
    assert policy.explain(internal).reason is SkipReason.INTERNAL_CALL
    policy.replace_options(log_internal=True)
    assert policy.explain(internal).logged
    abandoned = msgspec.structs.replace(call, result=CallResult.ABANDONED, extension_id=None)
    policy.replace_options(log_abandoned=False)
    assert policy.explain(abandoned).reason is SkipReason.ABANDONED_DISABLED
    ivr = msgspec.structs.replace(call, extension_id="2000", extension_number="2000")
    explained = policy.explain(ivr)
    assert explained.reason is SkipReason.NOT_A_USER
    assert "IvrMenu" in explained.detail


def test_a_live_policy_swap_applies_to_the_next_completed_call() -> None:
    policy = Policy(PolicyOptions(), DIRECTORY)
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0), policy)
    raws = frames(scenarios.inbound_direct())
    logged = [c for raw in raws[:-1] for c in tracker.apply(decode_event(raw))]
    policy.replace_options(blocklist=parse_blocklist([CUSTOMER]))
    logged += tracker.apply(decode_event(raws[-1]))
    assert logged == []
    ((call, decision),) = tracker.take_skipped()
    assert call.extension_number == "101"
    assert decision.reason is SkipReason.BLOCKLISTED_NUMBER
    assert tracker.counters().skipped == 1


def test_owner_attribution_needs_an_owner_extension() -> None:
    from sscl_daemon.calls.policy import MissedAttribution

    with pytest.raises(ValueError, match="missed_owner_extension"):
        PolicyOptions(missed_attribution=MissedAttribution.OWNER)


def _run(policy: Policy, *sessions: Session) -> tuple[list[CompletedCall], list[Decision]]:
    tracker = Tracker(DIRECTORY, TrackerOptions(completion_grace_s=0), policy)
    logged = [c for raw in frames(*sessions) for c in tracker.apply(decode_event(raw))]
    logged += tracker.flush()
    return logged, [decision for _, decision in tracker.take_skipped()]


def _unanswered_queue_call() -> Session:
    """The Sales Queue rings Alice (101) and Bob (102); the caller gives up after 30 s."""
    s = Session("s-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d600b1")
    s.party("1", direction="Outbound", from_=pstn(CUSTOMER), to=pstn(MAIN_NUMBER))
    s.party("2", direction="Inbound", extension_id="3000", from_=pstn(CUSTOMER),
            to=ext("3000", MAIN_NUMBER, "Sales Queue"))  # fmt: skip
    for pid, ext_id in (("3", "1001"), ("4", "1002")):
        s.party(pid, direction="Inbound", extension_id=ext_id, queueCall=True,
                from_=pstn(CUSTOMER), to=ext("3000", MAIN_NUMBER, "Sales Queue"))  # fmt: skip
    s.ev("1", "Setup", 0.0)
    s.ev("2", "Setup", 0.2)
    s.ev("3", "Proceeding", 1.0)
    s.ev("4", "Proceeding", 1.0)
    s.ev("1", "Disconnected", 30.0)
    s.ev("3", "Disconnected", 30.1)
    s.ev("4", "Disconnected", 30.1)
    s.ev("2", "Disconnected", 30.2)
    return s


def test_a_blocked_extension_loses_its_own_logs_only() -> None:
    """Alice (101) is blocked: Bob's logs of calls she touched are still written (issue 18, 9)."""
    policy = Policy(PolicyOptions(blocklist=parse_blocklist(["101"])), DIRECTORY)

    logged, skipped = _run(policy, scenarios.blind_transfer())
    assert [(c.extension_number, c.result) for c in logged] == [("102", CallResult.ANSWERED)]
    assert [(d.key.split(":")[1], d.reason) for d in skipped] == [
        ("1001", SkipReason.BLOCKLISTED_EXTENSION)
    ]
    assert "its own calls are never logged" in skipped[0].detail

    logged, skipped = _run(policy, _unanswered_queue_call())
    assert [(c.extension_number, c.result) for c in logged] == [("102", CallResult.MISSED)]
    assert [d.reason for d in skipped] == [SkipReason.BLOCKLISTED_EXTENSION]


def test_log_other_parties_off_skips_every_leg_of_a_blocked_extensions_call() -> None:
    blocklist = parse_blocklist(["101"], log_other_parties=False)
    policy = Policy(PolicyOptions(blocklist=blocklist), DIRECTORY)
    for session in (scenarios.blind_transfer(), _unanswered_queue_call()):
        logged, skipped = _run(policy, session)
        assert logged == []
        assert sorted(d.reason for d in skipped) == [
            SkipReason.BLOCKLISTED_EXTENSION,
            SkipReason.BLOCKLISTED_PARTICIPANT,
        ]
        other = next(d for d in skipped if d.reason is SkipReason.BLOCKLISTED_PARTICIPANT)
        assert "log_other_parties is false" in other.detail


def test_an_internal_call_with_a_blocked_extension_logs_the_other_user() -> None:
    policy = Policy(PolicyOptions(log_internal=True, blocklist=parse_blocklist(["102"])), DIRECTORY)
    logged, skipped = _run(policy, scenarios.internal())
    assert [c.extension_number for c in logged] == ["101"]
    assert [d.reason for d in skipped] == [SkipReason.BLOCKLISTED_EXTENSION]


def test_blocklist_check_explains_own_calls_and_the_other_parties(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sscl_daemon.cli import main

    config = tmp_path / "config.toml"
    config.write_text('[blocklist]\nentries = ["101"]\n')
    assert main(["blocklist", "check", "101", "--config", str(config)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("NOT LOGGED: calls of extension 101 would be skipped")
    assert out[1].startswith("OTHERS LOGGED: the other people in a call with extension 101")
    assert main(["blocklist", "check", "102", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("LOGGED: calls of extension 102")
    args = ["blocklist", "check", CUSTOMER, "--extension", "101", "--config", str(config)]
    assert main(args) == 1
    assert "its own calls are never logged" in capsys.readouterr().out

    config.write_text('[blocklist]\nentries = ["101"]\nlog_other_parties = false\n')
    assert main(["blocklist", "check", "101", "--config", str(config)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("OTHERS NOT LOGGED")
    assert "log_other_parties = false" in out[1]


def test_blocklist_check_without_config_reads_the_default_file_never_an_empty_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18 item 8: no --config means the daemon's file, not an empty blocklist."""
    from sscl_daemon.cli import main
    from sscl_daemon.config.locations import CONFIG_ENV

    config = tmp_path / "config.toml"
    config.write_text(f'[blocklist]\nentries = ["{CUSTOMER}"]\n')
    monkeypatch.setenv(CONFIG_ENV, str(config))
    assert main(["blocklist", "check", CUSTOMER]) == 1
    assert "NOT LOGGED" in capsys.readouterr().out
    missing = tmp_path / "nowhere.toml"
    monkeypatch.setenv(CONFIG_ENV, str(missing))
    assert main(["blocklist", "check", CUSTOMER]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(missing) in captured.err


def test_blocklist_check_answers_each_account_of_a_multi_account_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sscl_daemon.cli import main

    config = tmp_path / "config.toml"
    config.write_text(
        "[accounts.acme.ringcentral]\nclient_id = 'a'\n"
        f"[accounts.acme.blocklist]\nentries = ['{CUSTOMER}']\n"
        "[accounts.globex.ringcentral]\nclient_id = 'g'\n"
    )
    assert main(["blocklist", "check", CUSTOMER, "-c", str(config)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("account acme: NOT LOGGED")
    assert out[1].startswith("account globex: LOGGED")
    assert main(["blocklist", "check", CUSTOMER, "-c", str(config), "--account", "globex"]) == 0
    assert capsys.readouterr().out.startswith("LOGGED")
    assert main(["blocklist", "check", CUSTOMER, "-c", str(config), "--account", "x"]) == 2
