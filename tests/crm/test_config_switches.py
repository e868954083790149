"""The writers' configuration switches: ``detect_client_logs`` and HubSpot's ``key_property``.

Parsed from TOML like every other key, then honoured by the writers against their stand-ins:
client-log detection off saves its request and (the documented trade-off) no longer
recognises a log the user's own client made; a renamed key property is used everywhere our
key is written or read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from tests.crm.conftest import START, make_call

from sscl_daemon.config import (
    ConfigError,
    ContactSettings,
    HubSpotOptions,
    OAuthClientSettings,
    PipedriveOptions,
    SalesforceOptions,
    Secret,
    WriterSettings,
    WriterType,
    parse_config,
)
from sscl_daemon.crm.base import AlreadyExisted, Created, PermanentFailure, RetryLater, WriteContext
from sscl_daemon.crm.hubspot import HubSpotWriter
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.crm.salesforce import SalesforceWriter
from sscl_daemon.simulator.crm import hubspot as hs_sim
from sscl_daemon.simulator.crm import pipedrive as pd_sim
from sscl_daemon.simulator.crm import salesforce as sf_sim
from sscl_daemon.simulator.crm.common import serve

RC = {"client_id": "rc-id", "client_secret": "rc-secret", "jwt": "rc-jwt"}
FIRST = WriteContext()
UNCERTAIN = WriteContext(attempt=2, uncertain=True)
OFF = ContactSettings(detect_client_logs=False)


def hubspot_table(**extra: object) -> dict[str, object]:
    return {"type": "hubspot", "access_token": "pat-1", **extra}


def parse_writer(table: dict[str, object]) -> WriterSettings:
    (writer,) = parse_config({"ringcentral": RC, "writers": {"w": table}}).account().writers
    return writer


# -- parsing ---------------------------------------------------------------------------------


def test_defaults_detect_client_logs_and_use_sscl_call_key() -> None:
    writer = parse_writer(hubspot_table())
    assert writer.contacts.detect_client_logs is True
    assert isinstance(writer.options, HubSpotOptions)
    assert writer.options.key_property == "sscl_call_key"


@pytest.mark.parametrize("kind", ["hubspot", "pipedrive", "salesforce"])
def test_detect_client_logs_can_be_switched_off_for_every_crm_writer(kind: str) -> None:
    tables: dict[str, dict[str, object]] = {
        "hubspot": hubspot_table(),
        "pipedrive": {"type": "pipedrive", "api_token": "pd-1"},
        "salesforce": {
            "type": "salesforce",
            "instance_url": "https://x.my.salesforce.com",
            "client_id": "id",
            "client_secret": "s",
            "refresh_token": "r",
        },
    }
    writer = parse_writer({**tables[kind], "detect_client_logs": False})
    assert writer.contacts.detect_client_logs is False


def test_key_property_is_read_and_bad_values_name_key_and_fix() -> None:
    writer = parse_writer(hubspot_table(key_property="rc_call_key_2"))
    assert isinstance(writer.options, HubSpotOptions)
    assert writer.options.key_property == "rc_call_key_2"
    for bad in ("SSCL_Call_Key", "2key", "call-key", ""):
        with pytest.raises(ConfigError) as caught:
            parse_writer(hubspot_table(key_property=bad))
        (issue,) = caught.value.issues
        assert issue.path == "writers.w.key_property"
        assert "lowercase letters" in issue.message


def test_switches_reject_wrong_types_and_foreign_writers() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_writer(hubspot_table(detect_client_logs="no"))
    assert [i.path for i in caught.value.issues] == ["writers.w.detect_client_logs"]
    with pytest.raises(ConfigError) as caught:
        parse_writer({"type": "pipedrive", "api_token": "pd-1", "key_property": "x"})
    assert [i.path for i in caught.value.issues] == ["writers.w.key_property"]


# -- HubSpot ---------------------------------------------------------------------------------


@pytest.fixture
async def portal(
    http_session: aiohttp.ClientSession,
) -> AsyncIterator[tuple[hs_sim.HubSpotState, str]]:
    state = hs_sim.HubSpotState(key_unique=True)  # a portal whose key property is unique
    async with serve(hs_sim.create_app(state)) as url:
        yield state, url


def hubspot_writer(
    url: str,
    session: aiohttp.ClientSession,
    contacts: ContactSettings,
    key: str = "sscl_call_key",
    timeout: float = 30.0,
) -> HubSpotWriter:
    opts = HubSpotOptions(url, Secret(hs_sim.PRIVATE_TOKEN), key_property=key)
    settings = WriterSettings("hs", WriterType.HUBSPOT, opts, timeout=timeout, contacts=contacts)
    return HubSpotWriter(settings, session)


async def test_hubspot_without_detection_skips_the_search_and_logs_client_calls_again(
    portal: tuple[hs_sim.HubSpotState, str], http_session: aiohttp.ClientSession
) -> None:
    state, url = portal
    stamp = (START + timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    client = state.add_call({"hs_timestamp": stamp, "hs_call_external_id": "s-1001"})

    with_detection = await hubspot_writer(url, http_session, ContactSettings()).write(
        make_call(), FIRST
    )
    searches = state.count("POST", "/crm/v3/objects/calls/search")
    without = await hubspot_writer(url, http_session, OFF).write(make_call(), FIRST)

    assert with_detection == AlreadyExisted(client)
    assert isinstance(without, Created)  # the trade-off: the client's log is not looked for
    assert state.count("POST", "/crm/v3/objects/calls/search") == searches == 1


async def test_hubspot_custom_key_property_is_written_and_read_back(
    portal: tuple[hs_sim.HubSpotState, str], http_session: aiohttp.ClientSession
) -> None:
    state, url = portal
    state.key_name = "rc_call_key"
    writer = hubspot_writer(url, http_session, OFF, key="rc_call_key")
    state.faults.stall(after=True, path="/crm/v3/objects/calls", method="POST", exact=True)
    impatient = hubspot_writer(url, http_session, OFF, key="rc_call_key", timeout=0.3)

    lost = await impatient.write(make_call(), FIRST)
    assert isinstance(lost, RetryLater)
    (stored,) = state.calls.values()
    assert stored.properties["rc_call_key"] == "s-1001:62001"
    assert "sscl_call_key" not in stored.properties

    assert await writer.write(make_call(), UNCERTAIN) == AlreadyExisted(stored.id)
    read = [r for r in state.requests if r.path.endswith("/calls/batch/read")][-1]
    assert isinstance(read.body, dict)
    assert read.body["idProperty"] == "rc_call_key"
    # A repeat without the uncertain flag meets the unique value and is read back as well.
    assert await writer.write(make_call(), FIRST) == AlreadyExisted(stored.id)
    assert len(state.calls) == 1


async def test_hubspot_key_property_missing_in_the_portal_is_a_clear_failure(
    portal: tuple[hs_sim.HubSpotState, str], http_session: aiohttp.ClientSession
) -> None:
    _, url = portal
    result = await hubspot_writer(url, http_session, OFF, key="rc_call_key").write(
        make_call(), FIRST
    )
    assert isinstance(result, PermanentFailure)
    assert 'Property "rc_call_key" does not exist' in result.reason


# -- Salesforce ------------------------------------------------------------------------------


async def test_salesforce_without_detection_queries_only_after_an_uncertain_attempt(
    http_session: aiohttp.ClientSession,
) -> None:
    state = sf_sim.SalesforceState(clock=lambda: (START + timedelta(minutes=3)).timestamp())
    state.add_user("integration@example.com")
    client = state.add_task(Subject="Call", TaskSubtype="Call", CallObject="9001")
    async with serve(sf_sim.create_app(state)) as url:
        oauth = OAuthClientSettings(
            sf_sim.CLIENT_ID, Secret(sf_sim.CLIENT_SECRET), Secret(sf_sim.REFRESH_TOKEN)
        )
        opts = SalesforceOptions("https://unused.invalid", oauth, url)

        def writer(contacts: ContactSettings) -> SalesforceWriter:
            settings = WriterSettings("sf", WriterType.SALESFORCE, opts, contacts=contacts)
            return SalesforceWriter(settings, http_session)

        found = await writer(ContactSettings(owner_by_email=False)).write(make_call(), FIRST)
        queries = state.count("GET", "/query")
        off = writer(ContactSettings(owner_by_email=False, detect_client_logs=False))
        created = await off.write(make_call(), FIRST)
        assert state.count("GET", "/query") == queries == 1  # no query on a first attempt
        again = await off.write(make_call(), UNCERTAIN)
        keyed = [r.query["q"] for r in state.requests if r.path.endswith("/query")][-1]

    assert found == AlreadyExisted(client)
    assert isinstance(created, Created)  # the client's Task is not looked for
    assert again == AlreadyExisted(created.record_id)
    assert "CallObject IN" not in keyed
    assert "SSCL_Call_Key__c IN ('s-1001:62001')" in keyed
    assert len(state.tasks) == 2


# -- Pipedrive -------------------------------------------------------------------------------


async def test_pipedrive_without_detection_does_not_read_activities(
    http_session: aiohttp.ClientSession,
) -> None:
    state = pd_sim.PipedriveState(clock=lambda: datetime(2026, 11, 24, 9, 33, tzinfo=UTC))
    state.add_user("admin@example.com", "Admin", api_token="pd-token")
    person = state.add_person("Bob", ["+14155550123"])
    activity = state.add_activity(person, "<p>Inbound Call</p><p>Session Id: 9001</p>")
    async with serve(pd_sim.create_app(state)) as url:
        options = PipedriveOptions(base_url=url, api_token=Secret("pd-token"))

        def writer(contacts: ContactSettings) -> PipedriveWriter:
            return PipedriveWriter(
                WriterSettings("pd", WriterType.PIPEDRIVE, options, contacts=contacts),
                http_session,
            )

        found = await writer(ContactSettings()).write(make_call(), FIRST)
        created = await writer(OFF).write(make_call(), FIRST)

    assert found == AlreadyExisted(f"activity:{activity}")
    assert isinstance(created, Created)
    assert state.count("GET", "/activities") == 1
    assert state.call_logs[created.record_id]["person_id"] == person
