"""The Zoho CRM writer against its stand-in, through the conformance kit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from sscl_daemon.config import ContactSettings, OAuthClientSettings, Secret, WriterSettings
from sscl_daemon.crm.conformance import Harness, Logged, WriterConformance
from sscl_daemon.crm.zoho import ZohoOptions
from sscl_daemon.simulator.crm import zoho
from sscl_daemon.simulator.crm.common import serve


@dataclass
class ZohoHarness(Harness):
    base: str = ""

    @property
    def zoho(self) -> zoho.ZohoState:
        assert isinstance(self.state, zoho.ZohoState)
        return self.state

    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        oauth = OAuthClientSettings(
            zoho.CLIENT_ID, Secret(zoho.CLIENT_SECRET), Secret(zoho.REFRESH_TOKEN)
        )
        options = ZohoOptions(oauth, accounts_url=self.base)
        return WriterSettings(name, "zoho", options, timeout=timeout, contacts=contacts)  # type: ignore[arg-type]

    def logged(self, key: str) -> list[Logged]:
        found = []
        for call in self.zoho.calls_with_key(key):
            refs = [call.get("Who_Id"), call.get("What_Id")]
            contacts = tuple(str(r["id"]) for r in refs if isinstance(r, dict))
            owner = call.get("Owner")
            found.append(
                Logged(
                    str(call["id"]), contacts, str(owner["id"]) if isinstance(owner, dict) else None
                )
            )
        return found

    def add_contact(self, name: str, e164: str) -> str:
        return self.zoho.add_contact(name, e164)

    def add_user(self, email: str) -> str:
        return self.zoho.add_user(email)

    def refuse(self, key: str) -> None:
        self.zoho.refused_keys.add(key)

    def expire_tokens(self) -> None:
        self.zoho.expire_tokens()

    def revoke_refresh_tokens(self) -> None:
        self.zoho.refresh_tokens.clear()


class TestZohoConformance(WriterConformance):
    @pytest.fixture
    async def harness(self, http_session: aiohttp.ClientSession) -> AsyncIterator[Harness]:
        state = zoho.ZohoState()
        async with serve(zoho.create_app(state)) as base:
            yield ZohoHarness(
                state,
                http_session,
                "/crm/v7/Calls",
                unsupported={"token_rotation": "Zoho refresh tokens do not rotate"},
                secrets=(zoho.CLIENT_SECRET, zoho.REFRESH_TOKEN),
                base=base,
            )
