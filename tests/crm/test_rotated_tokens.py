"""Rotated OAuth refresh tokens kept in Postgres, against the Pipedrive stand-in.

The stand-in's token endpoint rotates the refresh token at every refresh and revokes the
old one at once (``invalid_grant`` afterwards), like Pipedrive. A "restart" is a new writer
built from the same configuration; a "standby on another machine" is a writer built on a
second Store opened on the same database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import asyncpg
import pytest
import structlog
from tests.crm.conftest import make_call

from sscl_daemon.config import (
    OAuthClientSettings,
    PipedriveOptions,
    Secret,
    StoreSettings,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm.base import Created, PermanentFailure, WriteContext, Writer
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.crm.wiring import keep_rotated_tokens
from sscl_daemon.simulator.crm import pipedrive as standin
from sscl_daemon.simulator.crm.common import serve
from sscl_daemon.store import Store
from sscl_daemon.store.credentials import CredentialVault

ACCOUNT = "acc-1"
CONFIGURED = "pd-configured-refresh-0001"
TOKEN_PATH = "/oauth/token"


@dataclass
class Rig:
    state: standin.PipedriveState
    base: str
    session: aiohttp.ClientSession
    store: Store
    dsn: str
    user: int

    def settings(self, refresh_token: str = CONFIGURED) -> WriterSettings:
        oauth = OAuthClientSettings(
            self.state.client_id, Secret(self.state.client_secret), Secret(refresh_token)
        )
        options = PipedriveOptions(
            base_url="https://api.pipedrive.invalid",
            oauth=oauth,
            token_url=f"{self.base}{TOKEN_PATH}",
        )
        return WriterSettings("pd", WriterType.PIPEDRIVE, options, timeout=5.0)

    def writer(self, store: Store | None = None, refresh_token: str = CONFIGURED) -> Writer:
        """A writer as the daemon builds it: its rotated tokens go to ``store``."""
        on = store or self.store
        return build_writer(
            self.settings(refresh_token),
            self.session,
            lambda name: CredentialVault(on, ACCOUNT, name),
        )

    def refresh_tokens_sent(self) -> list[str]:
        forms = [parse_qs(r.raw.decode()) for r in self.state.requests if r.path == TOKEN_PATH]
        return [form["refresh_token"][0] for form in forms]

    def valid_refresh_token(self) -> str:
        (token,) = self.state.refresh_tokens
        return token

    async def stored(self) -> dict[str, str]:
        """The credentials table as it is (read directly, not through the API under test)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch("SELECT account, name, value FROM credentials")
        finally:
            await conn.close()
        return {r["name"]: r["value"] for r in rows if r["account"] == ACCOUNT}


@pytest.fixture
async def rig(http_session: aiohttp.ClientSession, store: Store, pg_dsn: str) -> AsyncIterator[Rig]:
    state = standin.PipedriveState()
    user = state.add_user("admin@example.com", "Admin", api_token="pd-api-token")
    state.refresh_tokens[CONFIGURED] = user
    async with serve(standin.create_app(state)) as base:
        yield Rig(state, base, http_session, store, pg_dsn, user)


async def write(writer: Writer, n: int) -> object:
    return await writer.write(make_call(telephony_session_id=f"s-{n}"), WriteContext())


async def test_a_restarted_writer_uses_the_stored_rotated_token(rig: Rig) -> None:
    with structlog.testing.capture_logs() as logs:
        assert isinstance(await write(rig.writer(), 1), Created)
    # The stand-in rotated the configured token (now revoked); Postgres has the new one.
    rotated = rig.valid_refresh_token()
    assert rotated != CONFIGURED
    ((name, value),) = (await rig.stored()).items()
    assert name.startswith("crm:pd:refresh_token:")
    assert value == rotated

    # Restart: the configuration still names the revoked token; the stored one is used.
    with structlog.testing.capture_logs() as more:
        assert isinstance(await write(rig.writer(), 2), Created)
    assert rig.refresh_tokens_sent() == [CONFIGURED, rotated]
    assert (await rig.stored())[name] == rig.valid_refresh_token()
    assert len(rig.state.call_logs) == 2
    # No warning: nothing was refused. And no token in any log line.
    assert [e for e in logs + more if e["log_level"] in ("warning", "error")] == []
    shown = repr(logs + more)
    assert CONFIGURED not in shown
    assert rotated not in shown


async def test_a_standby_on_another_machine_resumes_with_the_stored_token(
    rig: Rig, pg_dsn: str, tmp_path: Path
) -> None:
    assert isinstance(await write(rig.writer(), 1), Created)
    rotated = rig.valid_refresh_token()
    # Another process with its own state directory, sharing only the database.
    other = await Store.open(StoreSettings(dsn=pg_dsn, pool_max_size=2), tmp_path / "standby")
    try:
        assert isinstance(await write(rig.writer(other), 2), Created)
    finally:
        await other.close()
    assert rig.refresh_tokens_sent() == [CONFIGURED, rotated]


async def test_the_configured_token_revoked_and_none_stored_is_a_clear_error(rig: Rig) -> None:
    rig.state.refresh_tokens.clear()  # revoked (e.g. rotated by a run before this version)
    result = await write(rig.writer(), 1)
    assert isinstance(result, PermanentFailure)
    assert result.reason == (
        f"Pipedrive credentials rejected: token endpoint {rig.base}{TOKEN_PATH} refused the"
        " configured refresh_token (invalid_grant: revoked or expired) and no rotated refresh"
        " token is stored in Postgres for it; authorise the app again and put the new"
        " refresh_token in the writer's configuration"
    )
    assert CONFIGURED not in result.reason
    assert await rig.stored() == {}


async def test_a_refused_stored_token_falls_back_to_the_configured_one(rig: Rig) -> None:
    assert isinstance(await write(rig.writer(), 1), Created)
    (name,) = await rig.stored()
    # The stored token is dead (revoked at the CRM) while the configured one works again
    # (the operator authorised the app anew without changing the configuration).
    await rig.store.save_credential(ACCOUNT, name, "pd-revoked-elsewhere")
    rig.state.refresh_tokens.clear()
    rig.state.refresh_tokens[CONFIGURED] = rig.user
    with structlog.testing.capture_logs() as logs:
        assert isinstance(await write(rig.writer(), 2), Created)
    assert rig.refresh_tokens_sent()[-2:] == ["pd-revoked-elsewhere", CONFIGURED]
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["reason"]) for e in warnings] == [
        ("crm.oauth.stored_token_refused", "invalid_grant")
    ]
    assert "pd-revoked-elsewhere" not in repr(logs)
    assert (await rig.stored())[name] == rig.valid_refresh_token()


async def test_both_refused_names_both(rig: Rig) -> None:
    assert isinstance(await write(rig.writer(), 1), Created)
    rig.state.refresh_tokens.clear()
    rig.state.access_tokens.clear()
    result = await write(rig.writer(), 2)
    assert isinstance(result, PermanentFailure)
    assert (
        "refused the refresh token stored in Postgres and the configured refresh_token"
        in result.reason
    )


async def test_a_token_rotated_by_another_writer_of_the_same_vault_is_picked_up(
    rig: Rig,
) -> None:
    # A live reload builds a new writer next to the old one: both share the stored token.
    old, new = rig.writer(), rig.writer()
    assert isinstance(await write(old, 1), Created)
    assert isinstance(await write(new, 2), Created)  # rotates what old rotated
    rig.state.access_tokens.clear()  # old's access token dies: it must refresh again
    assert isinstance(await write(old, 3), Created)
    sent = rig.refresh_tokens_sent()
    # old tried its own (already rotated by new) token, then re-read the vault.
    assert sent[2] == sent[1]
    assert len(sent) == 4
    assert list((await rig.stored()).values()) == [rig.valid_refresh_token()]


async def test_a_new_configured_token_is_not_shadowed_by_an_old_stored_one(rig: Rig) -> None:
    assert isinstance(await write(rig.writer(), 1), Created)
    # The operator connects the writer anew (another refresh token in the configuration).
    rig.state.refresh_tokens["pd-new-configured"] = rig.user
    assert isinstance(await write(rig.writer(refresh_token="pd-new-configured"), 2), Created)
    assert rig.refresh_tokens_sent()[-1] == "pd-new-configured"
    assert len(await rig.stored()) == 2  # one entry per configuration it grew from


async def test_a_writer_without_oauth_gets_no_vault(rig: Rig) -> None:
    options = PipedriveOptions(base_url=rig.base, api_token=Secret("pd-api-token"))
    writer = build_writer(WriterSettings("pd", WriterType.PIPEDRIVE, options), rig.session)
    vaults: list[str] = []

    def vault(name: str) -> CredentialVault:
        vaults.append(name)
        return CredentialVault(rig.store, ACCOUNT, name)

    assert not keep_rotated_tokens(writer, "pd", vault)
    assert keep_rotated_tokens(rig.writer(), "pd", vault)
    assert len(vaults) == 1
