"""The Dynamics 365 writer against its Dataverse stand-in, through the conformance kit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from sscl_daemon.config import ContactSettings, Secret, WriterSettings
from sscl_daemon.crm.conformance import Harness, Logged, WriterConformance
from sscl_daemon.crm.dynamics import DynamicsOptions, activity_id
from sscl_daemon.simulator.crm import dynamics
from sscl_daemon.simulator.crm.common import serve


@dataclass
class DynamicsHarness(Harness):
    base: str = ""

    @property
    def dv(self) -> dynamics.DynamicsState:
        assert isinstance(self.state, dynamics.DynamicsState)
        return self.state

    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        options = DynamicsOptions(
            environment_url=self.base,
            tenant_id=dynamics.TENANT_ID,
            client_id=dynamics.CLIENT_ID,
            client_secret=Secret(dynamics.CLIENT_SECRET),
            authority_url=self.base,
        )
        return WriterSettings(name, "dynamics", options, timeout=timeout, contacts=contacts)

    def logged(self, key: str) -> list[Logged]:
        row = self.dv.phonecalls.get(activity_id(key))
        if row is None:
            return []
        assert row["statecode"] == 1, "a logged phone call is completed"
        contacts = tuple(
            str(row[k])
            for k in ("regardingobjectid_contact@odata.bind", "regardingobjectid_lead@odata.bind")
            if k in row
        )
        owner = row.get("ownerid@odata.bind")
        return [Logged(str(row["activityid"]), contacts, str(owner) if owner else None)]

    def add_contact(self, name: str, e164: str) -> str:
        return self.dv.add_contact(name, e164)

    def add_user(self, email: str) -> str:
        return self.dv.add_user(email)

    def refuse(self, key: str) -> None:
        self.dv.refused_keys.add(key)

    def expire_tokens(self) -> None:
        self.dv.expire_tokens()

    def revoke_refresh_tokens(self) -> None:
        self.dv.client_secret = "a-new-secret-the-writer-does-not-have"


class TestDynamicsConformance(WriterConformance):
    @pytest.fixture
    async def harness(self, http_session: aiohttp.ClientSession) -> AsyncIterator[Harness]:
        state = dynamics.DynamicsState()
        async with serve(dynamics.create_app(state)) as base:
            yield DynamicsHarness(
                state,
                http_session,
                "/api/data/v9.2/$batch",
                unsupported={
                    "token_rotation": "client credentials: there is no refresh token to rotate"
                },
                secrets=(dynamics.CLIENT_SECRET,),
                base=base,
            )
