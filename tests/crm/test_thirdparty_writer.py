"""A writer from a separate package (tests/crm/thirdparty: the package and its .dist-info with
the entry point) is installed on sys.path, configured by ``type`` and passes the kit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sscl_daemon.config import ContactSettings, WriterSettings, parse_config
from sscl_daemon.crm import registry
from sscl_daemon.crm.conformance import Harness, Logged, WriterConformance
from sscl_daemon.simulator.crm.common import serve

THIRDPARTY = Path(__file__).parent / "thirdparty"
RC = {"client_id": "id", "client_secret": "s", "jwt": "j"}


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The package is importable and its entry point visible, as after ``pip install``."""
    monkeypatch.syspath_prepend(str(THIRDPARTY))
    registry.rescan()
    yield
    monkeypatch.undo()
    registry.rescan()


@dataclass
class LedgerlyHarness(Harness):
    base: str = ""
    api_key: str = ""
    # The package's own state class, imported once the package is installed.
    ledger: Any = None

    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        parsed = parse_config(
            {
                "ringcentral": RC,
                "writers": {
                    name: {
                        "type": "ledgerly",
                        "url": self.base,
                        "api_key": self.api_key,
                        "timeout": timeout,
                    }
                },
            }
        )
        writer = parsed.account().writers[0]
        return WriterSettings(
            writer.name, writer.type, writer.options, timeout=timeout, contacts=contacts
        )

    def logged(self, key: str) -> list[Logged]:
        return [
            Logged(e["id"], (e["person_id"],) if e.get("person_id") else (), e.get("owner_id"))
            for e in self.ledger.entries.values()
            if e["key"] == key
        ]

    def add_contact(self, name: str, e164: str) -> str:
        return str(self.ledger.add_person(name, e164))

    def add_user(self, email: str) -> str:
        return str(self.ledger.add_user(email))

    def refuse(self, key: str) -> None:
        self.state.refused_keys.add(key)


class TestLedgerlyConformance(WriterConformance):
    @pytest.fixture
    async def harness(
        self, installed: None, http_session: aiohttp.ClientSession
    ) -> AsyncIterator[Harness]:
        from sscl_writer_ledgerly import standin

        state = standin.LedgerlyState()
        async with serve(standin.create_app(state)) as base:
            yield LedgerlyHarness(
                state,
                http_session,
                "/notebooks/calls/entries",
                unsupported={"token_refresh": "Ledgerly takes a fixed API key"},
                secrets=(standin.API_KEY,),
                base=base,
                api_key=standin.API_KEY,
                ledger=state,
            )


def test_the_plugin_is_found_and_configured_by_type(installed: None) -> None:
    source = registry.sources()["ledgerly"]
    assert source.distribution == "sscl-writer-ledgerly"
    settings = parse_config(
        {
            "ringcentral": RC,
            "writers": {"notes": {"type": "ledgerly", "url": "https://l.example", "api_key": "k1"}},
        }
    )
    writer = settings.account().writers[0]
    assert writer.type == "ledgerly"
    assert type(writer.options).__name__ == "LedgerlyOptions"
    assert "k1" in settings.secrets()


def _check_config(tmp_path: Path, extra_path: str | None) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text(
        "[ringcentral]\n"
        'client_id = "id"\nclient_secret = "s"\njwt = "j"\n'
        "[writers.notes]\n"
        'type = "ledgerly"\nurl = "https://api.ledgerly.example"\napi_key = "k1"\n'
        'notebook = "Calls 1"\ncolour = "red"\n'
    )
    config.chmod(0o600)
    env = dict(os.environ)
    paths = [p for p in (extra_path, env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["STATE_DIRECTORY"] = str(tmp_path / "state")
    return subprocess.run(
        [sys.executable, "-m", "sscl_daemon", "check-config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_check_config_names_the_plugins_bad_keys(tmp_path: Path) -> None:
    done = _check_config(tmp_path, str(THIRDPARTY))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "writers.notes.notebook: 'Calls 1' is not a notebook name" in done.stderr
    assert "writers.notes.colour: unknown key" in done.stderr
    assert "k1" not in done.stderr


def test_check_config_without_the_package_names_the_type(tmp_path: Path) -> None:
    done = _check_config(tmp_path, None)
    assert done.returncode == 2
    assert "writers.notes.type: 'ledgerly' is not a writer type; use one of" in done.stderr


def test_a_plugin_cannot_take_a_builtin_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "sscl_writer_imposter-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sscl-writer-imposter\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[sscl_daemon.writers]\nhubspot = sscl_writer_imposter:PLUGIN\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.rescan()
    try:
        assert registry.sources()["hubspot"].distribution == "sscl-daemon"
        assert registry.plugin("hubspot").label == "HubSpot"
    finally:
        monkeypatch.undo()
        registry.rescan()
