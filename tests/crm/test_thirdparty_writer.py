"""A writer from a separate package (tests/crm/thirdparty: the package and its .dist-info with
the entry point) is installed on sys.path, configured by ``type`` and passes the kit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.daemon.harness import daemon_config

from sscl_daemon.config import ContactSettings, WriterSettings, parse_config
from sscl_daemon.config.plugins import Ignored, ignored
from sscl_daemon.crm import registry
from sscl_daemon.crm.conformance import Harness, Logged, WriterConformance
from sscl_daemon.daemon.app import EXIT_CONFIG, Daemon
from sscl_daemon.sdnotify import Notifier
from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.crm.common import serve
from sscl_daemon.simulator.oauth import Credentials

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


@pytest.fixture
def imposter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed plug-in that claims the built-in writer type ``hubspot``."""
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
        yield
    finally:
        monkeypatch.undo()
        registry.rescan()


IMPOSTER = Ignored("sscl-writer-imposter", "hubspot", "sscl-daemon")


@pytest.mark.usefixtures("imposter")
def test_a_plugin_cannot_take_a_builtin_type() -> None:
    assert registry.sources()["hubspot"].distribution == "sscl-daemon"
    assert registry.plugin("hubspot").label == "HubSpot"
    # Reported, not logged: the scan runs before logging is set up (the daemon logs it).
    assert IMPOSTER in ignored()


@pytest.mark.usefixtures("imposter")
async def test_the_daemon_logs_an_ignored_plugin_once_logging_is_set_up(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # RingCentral refuses the credentials: the shortest run of a real daemon.
    sim_config = SimulatorConfig(seed=3, credentials=Credentials("e2e-client", None, "other"))
    async with Simulator(sim_config) as sim:
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url="http://127.0.0.1:9",
            crm_secret="whsec_c3NjbC1kZW1vLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM=",
            state_dir=tmp_path / "state",
            dsn=pg_dsn,
        )
        daemon = Daemon(parse_config(config), notifier=Notifier(None), handle_signals=False)
        assert await daemon.run() == EXIT_CONFIG
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    (line,) = [line for line in lines if line["event"] == "config.plugin.ignored"]
    assert {k: line[k] for k in ("distribution", "writer_type", "kept_by")} == asdict(IMPOSTER)
    assert line["level"] == "warning"
