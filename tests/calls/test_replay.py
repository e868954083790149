"""``sscl-daemon replay``: files of raw notifications in, JSON call logs out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.calls import scenarios
from tests.calls.builder import CUSTOMER, DIRECTORY, frames

from sscl_daemon import cli

STABLE_KEYS = [
    "key", "telephony_session_id", "session_id", "account_id", "extension_id",
    "extension_number", "direction", "external_number", "external_name", "result",
    "start_time", "answer_time", "end_time", "ring_seconds", "talk_seconds", "hold_seconds",
    "total_seconds", "recording_ids", "transferred_to",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_default_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --config, replay reads the default file: none here, whatever the host has."""
    from sscl_daemon.config.locations import CONFIG_ENV

    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "no-config.toml"))


def directory_file(tmp_path: Path) -> Path:
    records = [
        {
            "id": int(ext.id),
            "extensionNumber": ext.extension_number,
            "name": ext.name,
            "type": ext.type.value,
            "status": "Enabled",
            "contact": {"email": ext.email, "department": ext.department},
        }
        for ext in DIRECTORY
    ]
    path = tmp_path / "extensions.json"
    path.write_text(json.dumps({"uri": "https://platform.example/extension", "records": records}))
    return path


def bare(raw: bytes) -> bytes:
    """The envelope alone, as a webhook (or a capture tool) would store it."""
    return json.dumps(json.loads(raw)[1]).encode()


def run_cli(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[dict[str, object]], str]:
    code = cli.main(["replay", *args])
    captured = capsys.readouterr()
    # Without --config (and no file at the default path) the first line says so.
    err = "".join(
        line for line in captured.err.splitlines(True) if not line.startswith("no configuration")
    )
    return code, [json.loads(line) for line in captured.out.splitlines()], err


def test_replay_prints_one_json_log_per_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raws = frames(scenarios.inbound_direct(recording=True))
    # mix both accepted shapes: WebSocket frames and bare envelopes
    lines = [raw if i % 2 else bare(raw) for i, raw in enumerate(raws)]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    code, logs, err = run_cli(capsys, str(events), "--directory", str(directory_file(tmp_path)))
    assert code == 0, err
    assert len(logs) == 1
    log = logs[0]
    assert list(log)[: len(STABLE_KEYS)] == STABLE_KEYS
    assert log["result"] == "answered"
    assert log["direction"] == "inbound"
    assert log["external_number"] == CUSTOMER
    assert log["extension_number"] == "101"
    assert log["extension_id"] == "1001"
    assert log["start_time"] == "2026-03-02T15:00:00.000Z"
    assert log["answer_time"] == "2026-03-02T15:00:08.000Z"
    assert log["end_time"] == "2026-03-02T15:01:40.000Z"
    assert (log["ring_seconds"], log["talk_seconds"], log["hold_seconds"]) == (8, 80, 12)
    assert log["total_seconds"] == 100
    assert log["recording_ids"] == ["7181543004"]
    assert log["transferred_to"] is None


def test_bad_lines_are_reported_and_the_rest_is_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raws = frames(scenarios.blind_transfer())
    lines = [raws[0], b"{not json", *raws[1:4], b'{"uuid": "1", "event": "x"}', *raws[4:]]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines))
    code, logs, err = run_cli(capsys, str(events))
    assert code == 1
    assert f"{events}:2: not a usable notification" in err
    assert f"{events}:6: not a usable notification" in err
    assert "body" in err.splitlines()[1]
    assert {(log["extension_id"], log["result"]) for log in logs} == {
        ("1001", "transferred"),
        ("1002", "answered"),
    }


def test_config_blocklist_sends_skipped_calls_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sscl.toml"
    config.write_text(
        f'[calls]\ncompletion_grace = 2.0\n[blocklist]\nentries = "{CUSTOMER}, 555"\n'
    )
    events = tmp_path / "events.jsonl"
    # each scenario numbers its notification uuids from 1: make the second set distinct
    internal = [raw.replace(b'"40000', b'"41000') for raw in frames(scenarios.internal())]
    events.write_bytes(b"\n".join([*frames(scenarios.outbound()), *internal]))
    code, logs, err = run_cli(capsys, str(events), "--config", str(config))
    assert code == 0
    assert logs == []
    assert "(blocklisted_number): external number +14155550142 matches the blocklist" in err
    assert "(internal_call)" in err


def test_unusable_config_or_directory_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"")
    config = tmp_path / "bad.toml"
    config.write_text('[blocklist]\nentries = ["12ab"]\n')
    assert cli.main(["replay", str(events), "--config", str(config)]) == 2
    assert "12ab" in capsys.readouterr().err
    broken = tmp_path / "dir.json"
    broken.write_text('{"records": [{"name": "no id"}]}')
    assert cli.main(["replay", str(events), "--directory", str(broken)]) == 2
    assert "no usable 'id'" in capsys.readouterr().err
    assert cli.main(["replay", str(tmp_path / "missing.jsonl")]) == 2


def test_replay_as_a_real_process(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(frames(scenarios.ivr_queue(hang_up_in_ivr=True))))
    done = subprocess.run(
        [sys.executable, "-m", "sscl_daemon", "replay", str(events)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (log,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert log["result"] == "abandoned"
    assert log["key"].endswith(":-")
    assert log["extension_id"] is None


def test_concatenated_files_report_the_duplicate_uuids_they_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recovery re-delivers notifications; the replay says which ones it dropped."""
    raws = frames(scenarios.blind_transfer())
    first, second = tmp_path / "events.jsonl.1", tmp_path / "events.jsonl"
    first.write_bytes(b"\n".join(raws[:6]) + b"\n")
    # the second file starts with the last two notifications of the first again
    second.write_bytes(b"\n".join(bare(raw) for raw in raws[4:]) + b"\n")
    code, logs, err = run_cli(capsys, str(first), str(second))
    assert code == 0, err
    assert {(log["extension_id"], log["result"]) for log in logs} == {
        ("1001", "transferred"),
        ("1002", "answered"),
    }
    uuids = [json.loads(raw)[1]["uuid"] for raw in raws[4:6]]
    assert err.splitlines() == [
        f"{second}:1: duplicate uuid {uuids[0]} (first at {first}:5), skipped",
        f"{second}:2: duplicate uuid {uuids[1]} (first at {first}:6), skipped",
        "2 duplicate notification(s) skipped (a uuid seen before)",
    ]


def test_the_configuration_is_found_as_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sscl_daemon.config.locations import CONFIG_ENV

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(frames(scenarios.outbound())))
    missing = tmp_path / "none.toml"
    monkeypatch.setenv(CONFIG_ENV, str(missing))
    assert cli.main(["replay", str(events)]) == 0
    captured = capsys.readouterr()
    assert f"no configuration at {missing}: the built-in defaults apply" in captured.err
    assert len(captured.out.splitlines()) == 1
    config = tmp_path / "config.toml"
    config.write_text(f'[blocklist]\nentries = ["{CUSTOMER}"]\n')
    monkeypatch.setenv(CONFIG_ENV, str(config))
    assert cli.main(["replay", str(events)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "(blocklisted_number)" in captured.err
    several = tmp_path / "accounts.toml"
    several.write_text(
        "[accounts.acme.ringcentral]\nclient_id = 'a'\n"
        f"[accounts.acme.blocklist]\nentries = ['{CUSTOMER}']\n"
        "[accounts.globex.ringcentral]\nclient_id = 'g'\n"
    )
    assert cli.main(["replay", str(events), "-c", str(several)]) == 2
    assert "name one with --account" in capsys.readouterr().err
    assert cli.main(["replay", str(events), "-c", str(several), "--account", "globex"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
