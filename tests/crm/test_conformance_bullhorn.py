"""The Bullhorn writer against its stand-in, through the conformance kit, and its Note."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from sscl_daemon.calls.model import Direction
from sscl_daemon.config import (
    ContactSettings,
    NoContactPolicy,
    OAuthClientSettings,
    Secret,
    WriterSettings,
)
from sscl_daemon.crm.base import AlreadyExisted, Created, PermanentFailure, Skipped, WriteContext
from sscl_daemon.crm.bullhorn import BullhornOptions, BullhornWriter
from sscl_daemon.crm.conformance import Harness, Logged, WriterConformance, conformance_call
from sscl_daemon.simulator.crm import bullhorn
from sscl_daemon.simulator.crm.common import serve


def _settings(base: str, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
    oauth = OAuthClientSettings(
        bullhorn.CLIENT_ID, Secret(bullhorn.CLIENT_SECRET), Secret(bullhorn.REFRESH_TOKEN)
    )
    options = BullhornOptions(oauth, auth_url=base, login_url=base)
    return WriterSettings(name, "bullhorn", options, timeout=timeout, contacts=contacts)


@dataclass
class BullhornHarness(Harness):
    base: str = ""

    @property
    def bh(self) -> bullhorn.BullhornState:
        assert isinstance(self.state, bullhorn.BullhornState)
        return self.state

    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        return _settings(self.base, name, contacts, timeout)

    def logged(self, key: str) -> list[Logged]:
        found = []
        for row in self.bh.notes.values():
            if row.get("externalID") != key:
                continue
            person = row["personReference"]
            who = row["commentingPerson"]
            assert isinstance(person, dict)
            assert isinstance(who, dict)
            owner = str(who["id"]) if who["id"] != self.bh.api_user else None
            found.append(Logged(str(row["id"]), (str(person["id"]),), owner))
        return found

    def add_contact(self, name: str, e164: str) -> str:
        return str(self.bh.add_person("ClientContact", name, e164))

    def add_user(self, email: str) -> str:
        return str(self.bh.add_user(email))

    def refuse(self, key: str) -> None:
        self.bh.refused_keys.add(key)

    def expire_tokens(self) -> None:
        self.bh.expire_sessions()

    def revoke_refresh_tokens(self) -> None:
        self.bh.refresh_tokens.clear()

    def current_refresh_token(self) -> str | None:
        return self.bh.current_refresh_token()


class TestBullhornConformance(WriterConformance):
    @pytest.fixture
    async def harness(self, http_session: aiohttp.ClientSession) -> AsyncIterator[Harness]:
        state = bullhorn.BullhornState()
        async with serve(bullhorn.create_app(state)) as base:
            yield BullhornHarness(
                state,
                http_session,
                f"/rest-services/{bullhorn.CORP}/entity/Note",
                create_method="PUT",
                limit_headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "1"},
                limit_delay=1.0,
                unsupported={
                    "unassociated": "a Bullhorn Note must name a person (personReference is not"
                    " nullable): such calls are parked with a reason naming the fix"
                },
                secrets=(bullhorn.CLIENT_SECRET, bullhorn.REFRESH_TOKEN),
                baseline=ContactSettings(no_contact=NoContactPolicy.CREATE),
                base=base,
            )


async def test_note_fields_and_no_person(http_session: aiohttp.ClientSession) -> None:
    state = bullhorn.BullhornState()
    async with serve(bullhorn.create_app(state)) as base:
        writer = BullhornWriter(_settings(base, "b", ContactSettings(), 10.0), http_session)
        call = conformance_call(50, direction=Direction.OUTBOUND, talk_ms=61_000)
        assert call.external_number
        candidate = state.add_person("Candidate", "Casey Candidate", call.external_number)
        result = await writer.write(call, WriteContext())
        assert isinstance(result, Created)
        row = state.notes[int(result.record_id)]
        assert row["personReference"] == {"id": candidate}
        assert row["action"] == "Outbound Call"
        assert row["minutesSpent"] == 2
        assert row["externalID"] == call.key
        lonely = await writer.write(conformance_call(51), WriteContext())
        assert isinstance(lonely, PermanentFailure)
        assert 'no_contact = "create"' in lonely.reason
        await writer.close()


async def test_an_internal_call_is_skipped(http_session: aiohttp.ClientSession) -> None:
    state = bullhorn.BullhornState()
    async with serve(bullhorn.create_app(state)) as base:
        writer = BullhornWriter(_settings(base, "b", ContactSettings(), 10.0), http_session)
        call = conformance_call(
            52, direction=Direction.INTERNAL, external_number=None, internal_number="102"
        )
        result = await writer.write(call, WriteContext())
        assert isinstance(result, Skipped)
        assert "internal call" in result.reason
        await writer.close()


async def test_a_note_app_connect_made_for_the_call_counts_as_logged(
    http_session: aiohttp.ClientSession,
) -> None:
    state = bullhorn.BullhornState()
    async with serve(bullhorn.create_app(state)) as base:
        call = conformance_call(53)
        assert call.external_number
        person = state.add_person("ClientContact", "Pat", call.external_number)
        state.notes[9001] = {
            "id": 9001,
            "comments": "Call logged by App Connect",
            "personReference": {"id": person},
            "commentingPerson": {"id": state.api_user},
            "externalID": call.session_id,
            "isDeleted": False,
        }
        writer = BullhornWriter(_settings(base, "b", ContactSettings(), 10.0), http_session)
        assert await writer.write(call, WriteContext()) == AlreadyExisted("9001")
        assert len(state.notes) == 1
        await writer.close()
