"""An unhealable failure (RingCentral refuses the credentials) stops the daemon, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.daemon.harness import daemon_config

from sscl_daemon.config import parse_config
from sscl_daemon.daemon.app import EXIT_CONFIG, Daemon
from sscl_daemon.sdnotify import Notifier
from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.oauth import Credentials


async def test_rejected_credentials_stop_the_daemon_with_a_clear_message(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jwt = "the-real-jwt-assertion-0123456789"
    sim_config = SimulatorConfig(seed=2, credentials=Credentials("e2e-client", None, jwt))
    async with Simulator(sim_config) as sim:
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url="http://127.0.0.1:9",
            crm_secret="whsec_c3NjbC1kZW1vLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM=",
            state_dir=tmp_path / "state",
            dsn=pg_dsn,
        )
        settings = parse_config(config)
        assert settings.account().ringcentral.jwt.reveal() != jwt
        daemon = Daemon(settings, notifier=Notifier(None), handle_signals=False)
        assert await daemon.run() == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "RingCentral refused the credentials" in err
    assert "ringcentral.jwt" in err
    assert "e2e-jwt-assertion" not in err  # the configured (wrong) JWT is a secret too
