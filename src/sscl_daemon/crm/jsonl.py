"""The jsonl writer: appends one JSON object per call to a local file (used by the demo).

Each line is :func:`content.call_document` of the call. A line is written with one
``write`` and made durable with ``fsync`` before the writer answers ``Created``, so a call
the dispatcher records as logged is on disk. Exactly once: at the first write the file is
read back and every key found goes into an index; a call whose key is already there
answers ``AlreadyExisted`` without writing (this also covers a crash after the fsync and
before the dispatcher's commit). A torn last line (a crash mid-write) is not valid JSON:
it is left as it is, not indexed, and the next record starts on a new line. The record id
is ``<file name>:<line number>``.

File I/O runs in a worker thread, serialised by a lock, so the event loop never blocks on
the disk.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import JsonlOptions, WriterSettings
from sscl_daemon.crm import content
from sscl_daemon.crm.base import AlreadyExisted, Created, RetryLater, WriteContext, WriteResult


class JsonlWriter:
    """Appends call documents to ``options.path``."""

    def __init__(
        self, settings: WriterSettings, session: aiohttp.ClientSession | None = None
    ) -> None:
        if not isinstance(settings.options, JsonlOptions):
            raise TypeError(f"writer {settings.name!r}: jsonl needs JsonlOptions")
        self._name = settings.name
        self.path = Path(settings.options.path)
        self._lock = asyncio.Lock()
        self._index: dict[str, str] | None = None
        self._lines = 0
        self._needs_newline = False
        self.torn_lines = 0

    @property
    def name(self) -> str:
        return self._name

    def _load(self) -> None:
        index: dict[str, str] = {}
        lines = 0
        needs_newline = False
        if self.path.exists():
            with self.path.open("rb") as f:
                for raw in f:
                    lines += 1
                    needs_newline = not raw.endswith(b"\n")
                    try:
                        record = json.loads(raw)
                    except ValueError:
                        self.torn_lines += 1
                        continue
                    key = record.get("key") if isinstance(record, dict) else None
                    if isinstance(key, str):
                        index.setdefault(key, f"{self.path.name}:{lines}")
        self._index, self._lines, self._needs_newline = index, lines, needs_newline

    def _append(self, calls: Sequence[CompletedCall]) -> list[WriteResult]:
        if self._index is None:
            self._load()
        index = self._index
        assert index is not None
        results: list[WriteResult] = []
        chunk: list[bytes] = []
        fresh: dict[str, str] = {}
        for call in calls:
            known = index.get(call.key) or fresh.get(call.key)
            if known is not None:
                results.append(AlreadyExisted(known))
                continue
            self._lines += 1
            record_id = f"{self.path.name}:{self._lines}"
            fresh[call.key] = record_id
            chunk.append(
                json.dumps(content.call_document(call), ensure_ascii=False).encode() + b"\n"
            )
            results.append(Created(record_id))
        if chunk:
            prefix = b"\n" if self._needs_newline else b""
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                data = prefix + b"".join(chunk)
                while data:
                    # A nearly full disk takes part of a write without an error: write the
                    # rest, which then fails (ENOSPC) instead of losing the last lines.
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._needs_newline = False
            index.update(fresh)
        return results

    async def _run(self, calls: Sequence[CompletedCall]) -> list[WriteResult]:
        async with self._lock:
            try:
                return await asyncio.to_thread(self._append, calls)
            except OSError as exc:
                # A full disk or a permission fixed later: retry. The index may be ahead of the
                # file now (a partial write), so it is rebuilt from the file next time.
                self._index = None
                reason = f"cannot append to {self.path}: {exc.strerror or exc}"
                return [RetryLater(reason) for _ in calls]

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult:
        return (await self._run([call]))[0]

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]:
        return await self._run([call for call, _ in items])

    async def close(self) -> None:
        return None
