"""``sscl-daemon status`` shows the updates of logged calls still waiting for their
recording or voicemail (issue 15), in text and JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest
from tests.daemon.harness import to_toml
from tests.daemon.helpers import make_call

from sscl_daemon.calls.model import CallResult
from sscl_daemon.cli import main
from sscl_daemon.config import StoreSettings
from sscl_daemon.store import Store
from sscl_daemon.store.enrichments import Enrichments, Wanted


async def test_status_counts_waiting_updates(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = await Store.open(StoreSettings(dsn=pg_dsn), tmp_path)
    try:
        call = make_call(1)
        voicemail = msgspec.structs.replace(make_call(2), result=CallResult.VOICEMAIL)
        await Enrichments(store).enqueue(
            "default",
            "crm",
            [
                Wanted(voicemail, "rec-1", "voicemail", None),
                Wanted(call, "rec-2", "recording", "n"),
            ],
            first_delay=60.0,
            window=3600.0,
        )
    finally:
        await store.close()
    config = tmp_path / "config.toml"
    config.write_text(
        to_toml(
            {
                "daemon": {"state_dir": str(tmp_path / "state")},
                "store": {"dsn": pg_dsn},
                "writers": {"crm": {"type": "jsonl", "path": str(tmp_path / "calls.jsonl")}},
            }
        )
    )
    assert await asyncio.to_thread(main, ["status", "--config", str(config)]) == 0
    assert "updates waiting for a recording or voicemail: crm: 2" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["status", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["updates_pending"] == {"crm": 2}
