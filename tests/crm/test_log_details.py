"""What a call log says (issue 15 step 1): voicemail as a missed call in every writer, the
number called on Pipedrive logs, times and CRM dates in a configured zone, and the contact
policies that read the CRM's record times (stand-ins on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CallResult, Direction
from sscl_daemon.config import (
    ConfigError,
    ContactSettings,
    HubSpotOptions,
    OAuthClientSettings,
    PipedriveOptions,
    SalesforceOptions,
    Secret,
    SeveralContactsPolicy,
    WriterSettings,
    WriterType,
    parse_config,
)
from sscl_daemon.crm import content, hubspot, pipedrive, salesforce
from sscl_daemon.crm.base import Created, WriteContext
from sscl_daemon.crm.contacts import Contact, choose, parse_time
from sscl_daemon.crm.templates import Style
from sscl_daemon.simulator.crm import hubspot as hs_standin
from sscl_daemon.simulator.crm import pipedrive as pd_standin
from sscl_daemon.simulator.crm import salesforce as sf_standin
from sscl_daemon.simulator.crm.common import serve

NEW_YORK = content.zone("America/New_York")
# 02:30 UTC on 3 March is 21:30 on 2 March in New York: the date a US user expects.
EVENING = datetime(2026, 3, 3, 2, 30, tzinfo=UTC)


# -- voicemail ---------------------------------------------------------------------------------


def test_voicemail_is_a_missed_call_with_a_voicemail_in_every_writer() -> None:
    call = make_call(
        result=CallResult.VOICEMAIL, answer_time=None, talk_ms=0, direction=Direction.INBOUND
    )
    assert content.result_words(call) == "missed, voicemail left"
    assert "Result: missed, voicemail left" in content.note_text(call).splitlines()
    props = hubspot.call_properties(call)
    assert props["hs_call_status"] == "NO_ANSWER"
    assert props["hs_call_disposition"] == hubspot.DISPOSITION_NO_ANSWER
    body = pipedrive.call_log_body(call, None, None)
    assert body["outcome"] == "no_answer"
    assert "missed, voicemail left" in str(body["note"])
    task = salesforce.task_fields(call, "Key__c")
    assert task["CallDisposition"] == "Missed, voicemail left"
    assert task["CallType"] == "Inbound"


# -- the number called -------------------------------------------------------------------------


def test_pipedrive_numbers_are_caller_and_number_called() -> None:
    inbound = make_call(own_number="+16505550100")
    body = pipedrive.call_log_body(inbound, None, None)
    assert body["from_phone_number"] == "+14155550123"
    assert body["to_phone_number"] == "+16505550100"
    outbound = make_call(direction=Direction.OUTBOUND, own_number="+16505550100")
    body = pipedrive.call_log_body(outbound, None, None)
    assert body["from_phone_number"] == "+16505550100"
    assert body["to_phone_number"] == "+14155550123"
    # Without the number (an old outbox row): the extension, never "unknown".
    assert pipedrive.call_log_body(make_call(), None, None)["to_phone_number"] == "101"


# -- time zones --------------------------------------------------------------------------------


def test_times_in_the_configured_zone() -> None:
    call = make_call(start_time=EVENING, end_time=EVENING.replace(minute=33))
    assert "Start: 2026-03-03T02:30:00.000Z" in content.note_text(call).splitlines()
    lines = content.note_text(call, tz=NEW_YORK).splitlines()
    assert "Start: 2026-03-02 21:30:00 EST (-05:00)" in lines
    assert salesforce.task_fields(call, "K__c")["ActivityDate"] == "2026-03-03"
    in_new_york = Style(tz=NEW_YORK)
    assert salesforce.task_fields(call, "K__c", style=in_new_york)["ActivityDate"] == "2026-03-02"
    # HubSpot's timestamp is an instant; Pipedrive's API takes UTC: both stay UTC.
    assert (
        hubspot.call_properties(call, style=in_new_york)["hs_timestamp"]
        == "2026-03-03T02:30:00.000Z"
    )
    body = pipedrive.call_log_body(call, None, None, in_new_york)
    assert body["start_time"] == "2026-03-03 02:30:00"
    assert "2026-03-02 21:30:00 EST" in str(body["note"])


def _config(calls: dict[str, object], writer: dict[str, object]) -> dict[str, object]:
    hs = {"type": "hubspot", "access_token": "pat-na1-xyz", **writer}
    return {
        "ringcentral": {"client_id": "c", "client_secret": "s", "jwt": "j"},
        "calls": calls,
        "writers": {"hs": hs},
    }


def _account(data: dict[str, object]) -> Any:
    """The one account of a single-account file (the settings' first account, however the
    configuration object shapes it)."""
    settings = parse_config(data, "t.toml")
    accounts = getattr(settings, "accounts", ())
    return accounts[0] if accounts else settings


def test_timezone_keys_inherit_override_and_name_a_bad_zone() -> None:
    account = _account(_config({"timezone": "Europe/Berlin"}, {}))
    assert account.calls.timezone == "Europe/Berlin"
    assert account.writers[0].contacts.timezone == "Europe/Berlin"
    account = _account(_config({"timezone": "Europe/Berlin"}, {"timezone": "America/Chicago"}))
    assert account.writers[0].contacts.timezone == "America/Chicago"
    assert _account(_config({}, {})).writers[0].contacts.timezone is None
    with pytest.raises(ConfigError) as info:
        parse_config(_config({"timezone": "Mars/Olympus"}, {"timezone": "EST5"}), "t.toml")
    text = "\n".join(str(i) for i in info.value.issues)
    assert "calls.timezone" in text
    assert "Mars/Olympus" in text
    assert "writers.hs.timezone" in text
    assert "EST5" in text


# -- several contacts --------------------------------------------------------------------------


def _at(day: int) -> datetime:
    return datetime(2026, 1, day, tzinfo=UTC)


def test_choice_by_record_times() -> None:
    a = Contact("a", created=_at(5), updated=_at(20))
    b = Contact("b", created=_at(1), updated=_at(10))
    c = Contact("c")  # a match without times never wins a time policy
    recent = ContactSettings(several_contacts=SeveralContactsPolicy.MOST_RECENTLY_UPDATED)
    oldest = ContactSettings(several_contacts=SeveralContactsPolicy.OLDEST)
    assert choose([c, b, a], recent, "+1").contacts == (a,)
    assert choose([c, a, b], oldest, "+1").contacts == (b,)
    assert parse_time("2026-01-02T03:04:05.000+0000") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("2026-01-02 03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("2026-01-02T03:04:05.123Z") is not None
    assert parse_time("yesterday") is None


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.mark.parametrize(
    ("policy", "winner"),
    [(SeveralContactsPolicy.MOST_RECENTLY_UPDATED, "new"), (SeveralContactsPolicy.OLDEST, "old")],
)
async def test_pipedrive_reads_person_times_for_a_time_policy(
    session: aiohttp.ClientSession, policy: SeveralContactsPolicy, winner: str
) -> None:
    clock = iter([_at(1), _at(1), _at(9), _at(9)])
    state = pd_standin.PipedriveState(clock=lambda: next(clock, _at(10)))
    state.add_user("admin@example.com", api_token="tok-123456")
    old = state.add_person("Old Bob", ["+1 415 555 0123"])
    new = state.add_person("New Bob", ["4155550123"])
    async with serve(pd_standin.create_app(state)) as base:
        settings = WriterSettings(
            "pd",
            WriterType.PIPEDRIVE,
            PipedriveOptions(base_url=base, api_token=Secret("tok-123456")),
            contacts=ContactSettings(several_contacts=policy),
        )
        result = await pipedrive.PipedriveWriter(settings, session).write(
            make_call(), WriteContext()
        )
    assert isinstance(result, Created)
    assert state.call_logs[result.record_id]["person_id"] == (new if winner == "new" else old)


async def test_hubspot_and_salesforce_choose_by_record_times(
    session: aiohttp.ClientSession,
) -> None:
    hs = hs_standin.HubSpotState()
    older = hs.add_contact("+14155550123", "Old", "Bob", lastmodifieddate="2026-01-09T00:00:00Z")
    newer = hs.add_contact("+14155550123", "New", "Bob", lastmodifieddate="2026-02-01T00:00:00Z")
    async with serve(hs_standin.create_app(hs)) as base:
        settings = WriterSettings(
            "hs",
            WriterType.HUBSPOT,
            HubSpotOptions(base_url=base, access_token=Secret(hs.private_token or "")),
            contacts=ContactSettings(several_contacts=SeveralContactsPolicy.MOST_RECENTLY_UPDATED),
        )
        result = await hubspot.HubSpotWriter(settings, session).write(make_call(), WriteContext())
    assert isinstance(result, Created)
    assert hs.calls[result.record_id].associations == [newer]
    assert older not in hs.calls[result.record_id].associations

    # The contact added first is the newer record here: the policy reads times, not order.
    times = iter([_at(9).timestamp()] * 2 + [_at(1).timestamp()] * 2)  # created, modified
    sf = sf_standin.SalesforceState(clock=lambda: next(times, datetime.now(UTC).timestamp()))
    sf.add_contact("(415) 555-0123", "New")
    oldest = sf.add_contact("+14155550123", "Old")
    async with serve(sf_standin.create_app(sf)) as base:
        options = SalesforceOptions(
            instance_url=base,
            login_url=base,
            oauth=OAuthClientSettings(
                sf.client_id, Secret(sf.client_secret), Secret(sf.refresh_token)
            ),
        )
        settings = WriterSettings(
            "sf",
            WriterType.SALESFORCE,
            options,
            contacts=ContactSettings(several_contacts=SeveralContactsPolicy.OLDEST),
        )
        result = await salesforce.SalesforceWriter(settings, session).write(
            make_call(), WriteContext()
        )
    assert isinstance(result, Created)
    assert sf.tasks[result.record_id]["WhoId"] == oldest
