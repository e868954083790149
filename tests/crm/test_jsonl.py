"""The jsonl writer: durable appends, exactly once across restarts and torn lines."""

from __future__ import annotations

import json
from pathlib import Path

from tests.crm.conftest import make_call

from sscl_daemon.config import JsonlOptions, WriterSettings, WriterType
from sscl_daemon.crm.base import AlreadyExisted, Created, RetryLater, WriteContext
from sscl_daemon.crm.jsonl import JsonlWriter
from sscl_daemon.crm.registry import build_writer


def settings(path: Path) -> WriterSettings:
    return WriterSettings("demo", WriterType.JSONL, JsonlOptions(path))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


async def test_create_and_repeat(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "calls.jsonl"
    writer = JsonlWriter(settings(path))
    call = make_call()
    assert await writer.write(call, WriteContext()) == Created("calls.jsonl:1")
    assert await writer.write(call, WriteContext(attempt=2, uncertain=True)) == AlreadyExisted(
        "calls.jsonl:1"
    )
    record = json.loads(lines(path)[0])
    assert record["key"] == call.key
    assert record["schema_version"] == 1
    assert record["outcome"] == "answered"
    assert record["talk_seconds"] == 125
    assert record["start_time"] == "2026-11-24T09:30:00Z"
    assert len(lines(path)) == 1


async def test_restart_rebuilds_index_from_file(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    first = JsonlWriter(settings(path))
    a, b = make_call(), make_call(telephony_session_id="s-2")
    await first.write_batch([(a, WriteContext()), (b, WriteContext())])
    # A new process (crash after fsync, before the dispatcher's commit) finds both.
    second = JsonlWriter(settings(path))
    results = await second.write_batch([(b, WriteContext(uncertain=True)), (a, WriteContext())])
    assert results == [AlreadyExisted("calls.jsonl:2"), AlreadyExisted("calls.jsonl:1")]
    assert len(lines(path)) == 2


async def test_batch_with_duplicate_inside(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    writer = JsonlWriter(settings(path))
    a = make_call()
    results = await writer.write_batch([(a, WriteContext()), (a, WriteContext())])
    assert results == [Created("calls.jsonl:1"), AlreadyExisted("calls.jsonl:1")]
    assert len(lines(path)) == 1


async def test_torn_last_line_is_kept_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    good = make_call()
    await JsonlWriter(settings(path)).write(good, WriteContext())
    with path.open("ab") as f:
        f.write(b'{"key": "s-9:1", "telephony')  # crash mid-write
    writer = JsonlWriter(settings(path))
    fresh = make_call(telephony_session_id="s-9", extension_id="1")
    assert await writer.write(fresh, WriteContext()) == Created("calls.jsonl:3")
    assert writer.torn_lines == 1
    content = lines(path)
    assert content[1] == '{"key": "s-9:1", "telephony'
    assert json.loads(content[2])["key"] == "s-9:1"


async def test_unwritable_path_retries(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    writer = JsonlWriter(settings(blocker / "calls.jsonl"))
    result = await writer.write(make_call(), WriteContext())
    assert isinstance(result, RetryLater)
    assert str(blocker) in result.reason


async def test_registry_builds_jsonl(tmp_path: Path) -> None:
    writer = build_writer(settings(tmp_path / "x.jsonl"), None)  # type: ignore[arg-type]
    assert isinstance(writer, JsonlWriter)
    assert writer.name == "demo"
