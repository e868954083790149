"""The Clio writer against its stand-in, through the conformance kit, and its matter link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from sscl_daemon.calls.model import Direction
from sscl_daemon.config import ContactSettings, OAuthClientSettings, Secret, WriterSettings
from sscl_daemon.crm.base import AlreadyExisted, Created, RetryLater, WriteContext
from sscl_daemon.crm.clio import ClioOptions, ClioWriter, TimeEntries
from sscl_daemon.crm.conformance import Harness, Logged, WriterConformance, conformance_call
from sscl_daemon.simulator.crm import clio
from sscl_daemon.simulator.crm.common import serve


def _settings(base: str, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
    oauth = OAuthClientSettings(
        clio.CLIENT_ID, Secret(clio.CLIENT_SECRET), Secret(clio.REFRESH_TOKEN)
    )
    return WriterSettings(
        name, "clio", ClioOptions(oauth, region_url=base), timeout=timeout, contacts=contacts
    )


@dataclass
class ClioHarness(Harness):
    base: str = ""

    @property
    def clio(self) -> clio.ClioState:
        assert isinstance(self.state, clio.ClioState)
        return self.state

    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        return _settings(self.base, name, contacts, timeout)

    def logged(self, key: str) -> list[Logged]:
        found = []
        for record in self.clio.communications.values():
            if f"sscl-key: {key}" not in str(record.get("body")):
                continue
            parties = self.clio.parties(record)
            contacts = tuple(str(p["id"]) for p in parties if p["type"] == "Contact")
            users = [str(p["id"]) for p in parties if p["type"] == "User"]
            found.append(Logged(str(record["id"]), contacts, users[0] if users else None))
        return found

    def add_contact(self, name: str, e164: str) -> str:
        return str(self.clio.add_contact(name, e164))

    def add_user(self, email: str) -> str:
        return str(self.clio.add_user(email))

    def refuse(self, key: str) -> None:
        self.clio.refused_keys.add(key)

    def expire_tokens(self) -> None:
        self.clio.expire_tokens()

    def revoke_refresh_tokens(self) -> None:
        self.clio.refresh_tokens.clear()


class TestClioConformance(WriterConformance):
    @pytest.fixture
    async def harness(self, http_session: aiohttp.ClientSession) -> AsyncIterator[Harness]:
        state = clio.ClioState()
        async with serve(clio.create_app(state)) as base:
            yield ClioHarness(
                state,
                http_session,
                "/api/v4/communications.json",
                limit_headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4"},
                limit_delay=4.0,
                unsupported={"token_rotation": "Clio keeps the same refresh token"},
                secrets=(clio.CLIENT_SECRET, clio.REFRESH_TOKEN),
                base=base,
            )


async def test_outbound_call_goes_from_the_user_to_the_contact_on_its_only_open_matter(
    http_session: aiohttp.ClientSession,
) -> None:
    state = clio.ClioState()
    async with serve(clio.create_app(state)) as base:
        call = conformance_call(40, direction=Direction.OUTBOUND)
        assert call.external_number
        contact = state.add_contact("Dana Client", call.external_number)
        matter = state.add_matter(contact)
        state.add_matter(contact, status="closed")
        writer = ClioWriter(_settings(base, "c", ContactSettings(), 10.0), http_session)
        result = await writer.write(call, WriteContext())
        assert isinstance(result, Created)
        record = state.communications[int(result.record_id)]
        assert record["senders"] == [{"id": state.me, "type": "User"}]
        assert record["receivers"] == [{"id": contact, "type": "Contact"}]
        assert record["matter"] == {"id": matter}
        assert record["type"] == "PhoneCommunication"


async def test_time_entry_on_the_matter_once_across_a_retry(
    http_session: aiohttp.ClientSession,
) -> None:
    state = clio.ClioState()
    async with serve(clio.create_app(state)) as base:
        call = conformance_call(41)
        assert call.external_number
        contact = state.add_contact("Erin Client", call.external_number)
        matter = state.add_matter(contact)
        oauth = OAuthClientSettings(
            clio.CLIENT_ID, Secret(clio.CLIENT_SECRET), Secret(clio.REFRESH_TOKEN)
        )
        options = ClioOptions(oauth, region_url=base, time_entries=TimeEntries.NON_BILLABLE)
        writer = ClioWriter(WriterSettings("c", "clio", options), http_session)
        # The entry's create times out: the communication stands, the entry comes on retry.
        state.faults.fail(503, path="/api/v4/activities.json", method="POST")
        first = await writer.write(call, WriteContext())
        assert isinstance(first, RetryLater)
        assert len(state.communications) == 1
        assert state.activities == {}
        second = await writer.write(call, WriteContext(attempt=2))
        assert isinstance(second, AlreadyExisted)
        third = await writer.write(call, WriteContext(attempt=3, uncertain=True))
        assert third == second
        (entry,) = state.activities.values()
        assert entry["quantity"] == 125
        assert entry["matter"] == {"id": matter}
        assert entry["communication"] == {"id": int(second.record_id)}
        assert entry["non_billable"] is True
