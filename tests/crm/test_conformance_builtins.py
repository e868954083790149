"""HubSpot, Salesforce, Pipedrive and the signed webhook through the conformance kit, each
against its stand-in (the points a writer cannot meet are declared with the reason)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from sscl_daemon.config import (
    ContactSettings,
    HubSpotOptions,
    OAuthClientSettings,
    PipedriveOptions,
    SalesforceOptions,
    Secret,
    WebhookOptions,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm.conformance import Harness, Logged, WriterConformance
from sscl_daemon.simulator.crm import hubspot, pipedrive, salesforce, webhook
from sscl_daemon.simulator.crm.common import serve

NO_ROTATION = "the CRM keeps the same refresh token"
PD_REFRESH = "pd-refresh-1"


@dataclass
class HubSpotHarness(Harness):
    base: str = ""

    @property
    def hs(self) -> hubspot.HubSpotState:
        assert isinstance(self.state, hubspot.HubSpotState)
        return self.state

    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        oauth = OAuthClientSettings(
            hubspot.CLIENT_ID, Secret(hubspot.CLIENT_SECRET), Secret(hubspot.REFRESH_TOKEN)
        )
        options = HubSpotOptions(base_url=self.base, oauth=oauth)
        return WriterSettings(name, WriterType.HUBSPOT, options, timeout=timeout, contacts=contacts)

    def logged(self, key: str) -> list[Logged]:
        found = [c for c in self.hs.calls.values() if c.properties.get(self.hs.key_name) == key]
        return [
            Logged(c.id, tuple(c.associations), c.properties.get("hubspot_owner_id")) for c in found
        ]

    def add_contact(self, name: str, e164: str) -> str:
        return self.hs.add_contact(e164, firstname=name)

    def add_user(self, email: str) -> str:
        return self.hs.add_owner(email)

    def refuse(self, key: str) -> None:
        self.hs.refused_keys.add(key)

    def expire_tokens(self) -> None:
        self.hs.access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        self.hs.refresh_token = "revoked-by-the-portal-admin"


class TestHubSpotConformance(WriterConformance):
    @pytest.fixture
    async def harness(self, http_session: aiohttp.ClientSession) -> AsyncIterator[Harness]:
        state = hubspot.HubSpotState()
        async with serve(hubspot.create_app(state)) as base:
            yield HubSpotHarness(
                state,
                http_session,
                "/crm/v3/objects/calls",
                limit_headers={
                    "X-HubSpot-RateLimit-Remaining": "0",
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                },
                limit_delay=10.0,
                unsupported={"token_rotation": NO_ROTATION},
                secrets=(hubspot.CLIENT_SECRET, hubspot.REFRESH_TOKEN),
                base=base,
            )


@dataclass
class SalesforceHarness(Harness):
    base: str = ""

    @property
    def sf(self) -> salesforce.SalesforceState:
        assert isinstance(self.state, salesforce.SalesforceState)
        return self.state

    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        oauth = OAuthClientSettings(
            salesforce.CLIENT_ID,
            Secret(salesforce.CLIENT_SECRET),
            Secret(salesforce.REFRESH_TOKEN),
        )
        options = SalesforceOptions(instance_url=self.base, oauth=oauth, login_url=self.base)
        return WriterSettings(
            name, WriterType.SALESFORCE, options, timeout=timeout, contacts=contacts
        )

    def logged(self, key: str) -> list[Logged]:
        found = [t for t in self.sf.tasks.values() if t.get(self.sf.external_id_field) == key]
        return [
            Logged(
                str(t["Id"]),
                (str(t["WhoId"]),) if t.get("WhoId") else (),
                str(t["OwnerId"]) if t.get("OwnerId") else None,
            )
            for t in found
        ]

    def add_contact(self, name: str, e164: str) -> str:
        return self.sf.add_contact(e164, name)

    def add_user(self, email: str) -> str:
        return self.sf.add_user(email)

    def refuse(self, key: str) -> None:
        self.sf.refused_keys.add(key)

    def expire_tokens(self) -> None:
        self.sf.expire_sessions()

    def revoke_refresh_tokens(self) -> None:
        self.sf.refresh_token = "revoked-by-the-org-admin"


class TestSalesforceConformance(WriterConformance):
    @pytest.fixture
    async def harness(self, http_session: aiohttp.ClientSession) -> AsyncIterator[Harness]:
        state = salesforce.SalesforceState()
        async with serve(salesforce.create_app(state)) as base:
            yield SalesforceHarness(
                state,
                http_session,
                "/services/data/v61.0/sobjects/Task",
                limit_headers={"Sforce-Limit-Info": "api-usage=10/100000"},
                unsupported={"token_rotation": NO_ROTATION},
                secrets=(salesforce.CLIENT_SECRET, salesforce.REFRESH_TOKEN),
                base=base,
            )


@dataclass
class PipedriveHarness(Harness):
    base: str = ""

    @property
    def pd(self) -> pipedrive.PipedriveState:
        assert isinstance(self.state, pipedrive.PipedriveState)
        return self.state

    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        oauth = OAuthClientSettings(
            self.pd.client_id, Secret(self.pd.client_secret), Secret(PD_REFRESH)
        )
        options = PipedriveOptions(
            base_url="https://unused.invalid", oauth=oauth, token_url=f"{self.base}/oauth/token"
        )
        return WriterSettings(
            name, WriterType.PIPEDRIVE, options, timeout=timeout, contacts=contacts
        )

    def logged(self, key: str) -> list[Logged]:
        found = [c for c in self.pd.call_logs.values() if f"sscl-key: {key}" in str(c.get("note"))]
        return [
            Logged(
                str(c["id"]),
                (str(c["person_id"]),) if c.get("person_id") else (),
                str(c["user_id"]) if c.get("user_id") is not None else None,
            )
            for c in found
        ]

    def add_contact(self, name: str, e164: str) -> str:
        return str(self.pd.add_person(name, [e164]))

    def add_user(self, email: str) -> str:
        return str(self.pd.add_user(email))

    def refuse(self, key: str) -> None:
        self.pd.refused_keys.add(key)

    def expire_tokens(self) -> None:
        self.pd.access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        self.pd.refresh_tokens.clear()

    def current_refresh_token(self) -> str | None:
        return next(iter(self.pd.refresh_tokens), None)


class TestPipedriveConformance(WriterConformance):
    @pytest.fixture
    async def harness(self, http_session: aiohttp.ClientSession) -> AsyncIterator[Harness]:
        state = pipedrive.PipedriveState()
        state.refresh_tokens[PD_REFRESH] = state.add_user("admin@example.com")
        async with serve(pipedrive.create_app(state)) as base:
            yield PipedriveHarness(
                state,
                http_session,
                "/api/v1/callLogs",
                limit_headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"},
                limit_delay=2.0,
                secrets=(state.client_secret, PD_REFRESH),
                base=base,
            )


@dataclass
class WebhookHarness(Harness):
    base: str = ""

    @property
    def hook(self) -> webhook.WebhookReceiverState:
        assert isinstance(self.state, webhook.WebhookReceiverState)
        return self.state

    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        options = WebhookOptions(f"{self.base}/calls", Secret(self.hook.secret))
        return WriterSettings(name, WriterType.WEBHOOK, options, timeout=timeout, batch_size=100)

    def logged(self, key: str) -> list[Logged]:
        found = self.hook.deliveries.get(key)
        return [Logged(found.id)] if found is not None else []

    def refuse(self, key: str) -> None:
        self.hook.refused_keys.add(key)


class TestWebhookConformance(WriterConformance):
    @pytest.fixture
    async def harness(self, http_session: aiohttp.ClientSession) -> AsyncIterator[Harness]:
        state = webhook.WebhookReceiverState()
        async with serve(webhook.create_app(state)) as base:
            yield WebhookHarness(
                state,
                http_session,
                "/calls",
                limit_headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "3"},
                limit_delay=3.0,
                unsupported={
                    "token_refresh": "deliveries are signed with a shared secret, no token",
                    "contacts": "the receiver matches contacts itself",
                    "owners": "the receiver maps owners itself (the call names the user)",
                },
                secrets=(state.secret,),
                base=base,
            )
