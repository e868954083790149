"""The jsonl writer on a filling disk: a short write is never taken for a whole one (issue 19).

The chaos soak found two calls missing from the jsonl file after its filesystem was filled:
``os.write`` on a nearly full disk writes part of the data and returns the count, without an
error, and the writer answered ``Created`` for every call of the chunk. Here the disk takes
the first part of a write and then refuses with ENOSPC, as the kernel does.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from tests.crm.conftest import make_call

from sscl_daemon.config import JsonlOptions, WriterSettings, WriterType
from sscl_daemon.crm import jsonl
from sscl_daemon.crm.base import Created, RetryLater, WriteContext
from sscl_daemon.crm.jsonl import JsonlWriter


async def test_a_short_write_on_a_full_disk_is_retried_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "calls.jsonl"
    writer = JsonlWriter(WriterSettings("log", WriterType.JSONL, JsonlOptions(path)))
    calls = [make_call(telephony_session_id=f"s-{n}") for n in range(3)]
    real_write = os.write
    room = [200]  # bytes left on the "disk"

    def filling_write(fd: int, data: bytes) -> int:
        if room[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        taken = real_write(fd, data[: room[0]])
        room[0] -= taken
        return taken

    monkeypatch.setattr(jsonl.os, "write", filling_write)
    results = await writer.write_batch([(call, WriteContext()) for call in calls])
    assert all(isinstance(result, RetryLater) for result in results)
    # space again: every call is written whole, once
    monkeypatch.setattr(jsonl.os, "write", real_write)
    results = await writer.write_batch([(call, WriteContext(attempt=2)) for call in calls])
    assert all(isinstance(result, Created) for result in results)
    keys: list[str] = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the torn line the full disk left
        keys.append(record["key"])
    assert sorted(keys) == sorted(call.key for call in calls)
