"""Deals and opportunities (issue 15 step 6): a writer's ``deals`` policy attaches the log to
the contact's open deal -- HubSpot deal association, Salesforce ``WhatId``, Pipedrive
``deal_id`` -- against the stand-ins."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest
from tests.crm.conftest import make_call

from sscl_daemon.config import (
    ConfigError,
    ContactSettings,
    DealsPolicy,
    HubSpotOptions,
    OAuthClientSettings,
    PipedriveOptions,
    SalesforceOptions,
    Secret,
    WriterSettings,
    WriterType,
    parse_config,
)
from sscl_daemon.crm import deals
from sscl_daemon.crm.base import Created, WriteContext
from sscl_daemon.crm.deals import Deal
from sscl_daemon.crm.hubspot import CALL_TO_DEAL, HubSpotWriter
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.crm.salesforce import SalesforceWriter
from sscl_daemon.simulator.crm import hubspot as hs_sim
from sscl_daemon.simulator.crm import pipedrive as pd_sim
from sscl_daemon.simulator.crm import salesforce as sf_sim
from sscl_daemon.simulator.crm.common import serve

NUMBER = "+14155550123"
ONE = DealsPolicy.IF_EXACTLY_ONE_OPEN
RECENT = DealsPolicy.MOST_RECENT_OPEN


def _at(day: int) -> datetime:
    return datetime(2026, 1, day, tzinfo=UTC)


def test_choose() -> None:
    old, new, closed = Deal("old", True, _at(1)), Deal("new", True, _at(9)), Deal("x", False)
    assert deals.choose([old, closed], DealsPolicy.NONE) is None
    assert deals.choose([old, closed], ONE) == old
    assert deals.choose([old, new], ONE) is None  # a person decides between two
    assert deals.choose([old, new, closed], RECENT) == new
    assert deals.choose([closed], RECENT) is None


def test_unknown_policy_is_a_configuration_error() -> None:
    data = {
        "ringcentral": {"client_id": "c", "client_secret": "s", "jwt": "j"},
        "writers": {"hs": {"type": "hubspot", "access_token": "pat-1", "deals": "sometimes"}},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, "t.toml")
    assert [i.path for i in info.value.issues] == ["writers.hs.deals"]


def _contacts(policy: DealsPolicy) -> ContactSettings:
    return ContactSettings(deals=policy)


@pytest.mark.parametrize(("policy", "pick"), [(ONE, None), (RECENT, "later")])
async def test_hubspot_associates_the_open_deal(policy: DealsPolicy, pick: str | None) -> None:
    state = hs_sim.HubSpotState()
    contact = state.add_contact(NUMBER, "Ann", "Lee")
    state.add_deal(contact, "won already", closed=True)
    early = state.add_deal(contact, "renewal", modified="2026-01-01T00:00:00.000Z")
    later = state.add_deal(contact, "upsell", modified="2026-02-01T00:00:00.000Z")
    async with serve(hs_sim.create_app(state)) as url, aiohttp.ClientSession() as session:
        opts = HubSpotOptions(url, Secret(hs_sim.PRIVATE_TOKEN))
        writer = HubSpotWriter(
            WriterSettings("hs", WriterType.HUBSPOT, opts, contacts=_contacts(policy)), session
        )
        # Two open deals: if-exactly-one-open leaves the choice to a person.
        result = await writer.write(make_call(), WriteContext())
    assert early in state.deals
    assert isinstance(result, Created)
    linked = state.calls[result.record_id].associations
    assert linked == ([contact, later] if pick else [contact])
    sent = [r.body for r in state.requests if r.path == "/crm/v3/objects/calls"]
    (body,) = sent
    assert isinstance(body, dict)
    types = [t["associationTypeId"] for a in body["associations"] for t in a["types"]]
    assert (CALL_TO_DEAL in types) is bool(pick)


async def test_salesforce_sets_whatid_to_the_only_open_opportunity() -> None:
    state = sf_sim.SalesforceState()
    state.add_user("integration@example.com")
    contact = state.add_contact(NUMBER, "Lee")
    state.add_opportunity(contact, "closed one", closed=True)
    open_one = state.add_opportunity(contact, "the open one")
    async with serve(sf_sim.create_app(state)) as url, aiohttp.ClientSession() as session:
        oauth = OAuthClientSettings(
            sf_sim.CLIENT_ID, Secret(sf_sim.CLIENT_SECRET), Secret(sf_sim.REFRESH_TOKEN)
        )
        opts = SalesforceOptions(instance_url=url, login_url=url, oauth=oauth)
        writer = SalesforceWriter(
            WriterSettings("sf", WriterType.SALESFORCE, opts, contacts=_contacts(ONE)), session
        )
        result = await writer.write(make_call(), WriteContext())
    assert isinstance(result, Created)
    assert state.tasks[result.record_id]["WhoId"] == contact
    assert state.tasks[result.record_id]["WhatId"] == open_one


async def test_pipedrive_sets_the_persons_most_recent_open_deal() -> None:
    # Each record takes the clock twice (add_time, update_time): person, newest, older, lost.
    times = iter([_at(1), _at(1), _at(9), _at(9), _at(2), _at(2), _at(3), _at(3)])
    state = pd_sim.PipedriveState(clock=lambda: next(times, _at(20)))
    state.add_user("admin@example.com", api_token="pd-tok-123")
    person = state.add_person("Bob", [NUMBER])
    newest = state.add_deal("newest", person)
    state.add_deal("older", person)
    state.add_deal("lost", person, status="lost")
    async with serve(pd_sim.create_app(state)) as url, aiohttp.ClientSession() as session:
        opts = PipedriveOptions(base_url=url, api_token=Secret("pd-tok-123"))
        writer = PipedriveWriter(
            WriterSettings("pd", WriterType.PIPEDRIVE, opts, contacts=_contacts(RECENT)), session
        )
        result = await writer.write(make_call(), WriteContext())
    assert isinstance(result, Created)
    assert state.call_logs[result.record_id]["deal_id"] == newest
