"""The RingCentral refresh token in Postgres: a standby on another machine resumes the session.

Against the simulated platform, whose refresh tokens are single use (a used one is revoked),
and a real Postgres. A "standby" is an authenticator on a second Store opened on the same
database with its own state directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import structlog
from tests.ringcentral.harness import client_settings, simulator

from sscl_daemon.config import StoreSettings
from sscl_daemon.ringcentral.auth import Authenticator, KeptSession
from sscl_daemon.ringcentral.retry import RetryPolicy
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.store import Store
from sscl_daemon.store.credentials import CredentialVault, credential_name

ACCOUNT = "acc-1"
NAME = credential_name("ringcentral:refresh_token", "sim-client", "sim-jwt")


@dataclass
class Platform:
    sim: Simulator
    http: aiohttp.ClientSession


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    async with simulator() as sim, aiohttp.ClientSession() as http:
        yield Platform(sim, http)


async def start(platform: Platform, kept: KeptSession) -> Authenticator:
    """What the daemon does at an account's start (daemon/accounts.py)."""
    auth = Authenticator(
        platform.http,
        client_settings(platform.sim),
        retry=RetryPolicy(max_attempts=3, initial=0.01, maximum=0.05),
        refresh_token=await kept.refresh_token(),
        on_tokens=kept.keep,
    )
    await auth.access_token()
    return auth


async def test_a_standby_on_another_machine_resumes_the_session(
    platform: Platform, store: Store, pg_dsn: str, tmp_path: Path
) -> None:
    active = await start(platform, KeptSession(CredentialVault(store, ACCOUNT, NAME)))
    assert (active.logins, active.refreshes) == (1, 0)
    first_stored = await store.load_credential(ACCOUNT, NAME)
    assert first_stored
    # The active instance refreshes (rotating the token) before it goes away.
    await active.invalidate(await active.access_token())
    assert active.refreshes == 1
    latest = await store.load_credential(ACCOUNT, NAME)
    assert latest not in (None, first_stored)

    other = await Store.open(StoreSettings(dsn=pg_dsn, pool_max_size=2), tmp_path / "standby")
    try:
        legacy = tmp_path / "standby" / "ringcentral-refresh-token"  # not there: another disk
        standby = await start(
            platform, KeptSession(CredentialVault(other, ACCOUNT, NAME), legacy_file=legacy)
        )
        # Same OAuth session, so the stored WebSocket recovery token still applies.
        assert (standby.logins, standby.refreshes) == (0, 1)
        assert standby.session_id == active.session_id
        assert await other.load_credential(ACCOUNT, NAME) not in (None, latest)
    finally:
        await other.close()


async def test_an_upgrade_reads_the_old_state_file_once_then_removes_it(
    platform: Platform, store: Store, tmp_path: Path
) -> None:
    # A daemon of an earlier version kept its session in the state directory.
    scratch = KeptSession(CredentialVault(store, "scratch", NAME))
    earlier = await start(platform, scratch)
    legacy = tmp_path / "ringcentral-refresh-token"
    legacy.write_text(str(await store.load_credential("scratch", NAME)))

    upgraded = await start(
        platform, KeptSession(CredentialVault(store, ACCOUNT, NAME), legacy_file=legacy)
    )
    assert (upgraded.logins, upgraded.refreshes) == (0, 1)
    assert upgraded.session_id == earlier.session_id
    assert await store.load_credential(ACCOUNT, NAME)
    assert not legacy.exists()  # no stale copy of a secret left on disk


class DownVault:
    async def load(self) -> str | None:
        raise ConnectionRefusedError("store down")

    async def save(self, value: str) -> None:
        raise ConnectionRefusedError("store down")


async def test_a_store_outage_costs_the_session_not_the_account(
    platform: Platform,
) -> None:
    with structlog.testing.capture_logs() as logs:
        auth = await start(platform, KeptSession(DownVault()))
    assert auth.logins == 1  # a new session by JWT login, and the account runs
    events = [(e["log_level"], e["event"], e.get("error")) for e in logs]
    assert ("warning", "ringcentral.stored_session.unreadable", "ConnectionRefusedError") in events
    assert ("warning", "ringcentral.session.store_failed", "ConnectionRefusedError") in events
