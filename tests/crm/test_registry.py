"""The writer factory maps every writer type to its class."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from sscl_daemon.config import (
    JsonlOptions,
    PipedriveOptions,
    Secret,
    WebhookOptions,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm.jsonl import JsonlWriter
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.crm.registry import WRITER_CLASSES, build_writer
from sscl_daemon.crm.webhook import WebhookWriter


async def test_build_each_of_mine(http_session: aiohttp.ClientSession, tmp_path: Path) -> None:
    cases = [
        (JsonlOptions(tmp_path / "a.jsonl"), WriterType.JSONL, JsonlWriter),
        (WebhookOptions("https://r.example.com/h", Secret("s")), WriterType.WEBHOOK, WebhookWriter),
        (PipedriveOptions(api_token=Secret("t")), WriterType.PIPEDRIVE, PipedriveWriter),
    ]
    for options, kind, cls in cases:
        writer = build_writer(WriterSettings(f"w-{kind}", kind, options), http_session)
        assert isinstance(writer, cls)
        assert writer.name == f"w-{kind}"
        await writer.close()


def test_every_type_is_mapped() -> None:
    assert set(WRITER_CLASSES) == set(WriterType)


def test_wrong_options_type_is_refused(http_session: aiohttp.ClientSession) -> None:
    with pytest.raises(TypeError, match="pipedrive needs PipedriveOptions"):
        build_writer(
            WriterSettings("x", WriterType.PIPEDRIVE, JsonlOptions(Path("x"))), http_session
        )
