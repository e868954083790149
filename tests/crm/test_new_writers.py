"""Zoho CRM and Dynamics 365 specifics the conformance kit does not look at: request shapes,
configuration through the plug-ins, requests per call."""

from __future__ import annotations

import aiohttp
import pytest
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CallResult, Direction
from sscl_daemon.config import (
    ConfigError,
    ContactSettings,
    OAuthClientSettings,
    Secret,
    WriterSettings,
    parse_config,
)
from sscl_daemon.crm import dynamics as dv
from sscl_daemon.crm import zoho as zc
from sscl_daemon.crm.base import AlreadyExisted, Created, WriteContext
from sscl_daemon.crm.contacts import Contact
from sscl_daemon.simulator.crm import dynamics as dv_sim
from sscl_daemon.simulator.crm.common import serve

RC = {"client_id": "id", "client_secret": "s", "jwt": "j"}


def test_zoho_outbound_call_and_lead() -> None:
    call = make_call(direction=Direction.OUTBOUND, talk_ms=3_725_000)
    record = zc.call_record(call, Contact("77", "Lee", "lead"), "42")
    assert record["Call_Type"] == "Outbound"
    assert record["Outgoing_Call_Status"] == "Completed"
    assert record["Call_Duration"] == "62:05"
    assert record["Call_Start_Time"] == "2026-11-24T09:30:00+00:00"
    assert record["What_Id"] == {"id": "77"}
    assert record["$se_module"] == "Leads"
    assert "Who_Id" not in record
    assert record["Owner"] == {"id": "42"}
    assert record[zc.DEFAULT_KEY_FIELD] == call.key


def test_zoho_unanswered_inbound_is_missed() -> None:
    call = make_call(result=CallResult.MISSED, answer_time=None, talk_ms=0)
    record = zc.call_record(call, None, None)
    assert record["Call_Type"] == "Missed"
    assert record["Call_Result"] == "No answer"
    assert "Outgoing_Call_Status" not in record


def test_dynamics_description_keeps_the_markers_within_2000_characters() -> None:
    call = make_call(recording_ids=tuple(f"rec-{n:04d}" for n in range(40)))
    text = dv.description(call, None)
    assert len(text) <= dv.DESCRIPTION_MAX
    assert text.endswith(f"sscl-key: {call.key}")


def test_dynamics_activity_id_is_stable_per_key() -> None:
    assert dv.activity_id("s-1:62001") == dv.activity_id("s-1:62001")
    assert dv.activity_id("s-1:62001") != dv.activity_id("s-1:62002")


async def test_dynamics_batch_is_one_request_and_a_repeat_needs_no_lookup(
    http_session: aiohttp.ClientSession,
) -> None:
    state = dv_sim.DynamicsState()
    async with serve(dv_sim.create_app(state)) as base:
        options = dv.DynamicsOptions(
            base, dv_sim.TENANT_ID, dv_sim.CLIENT_ID, Secret(dv_sim.CLIENT_SECRET), base
        )
        settings = WriterSettings(
            "d",
            "dynamics",
            options,
            contacts=ContactSettings(detect_client_logs=False, owner_by_email=False),
        )
        writer = dv.DynamicsWriter(settings, http_session)
        calls = [make_call(telephony_session_id=f"s-{n}", external_number=None) for n in range(3)]
        results = await writer.write_batch([(c, WriteContext()) for c in calls])
        assert [type(r) for r in results] == [Created] * 3
        assert state.count("POST", "/$batch") == 1
        row = state.phonecalls[dv.activity_id(calls[0].key)]
        assert (row["statecode"], row["statuscode"], row["directioncode"]) == (1, 4, False)
        again = await writer.write(calls[0], WriteContext(attempt=2, uncertain=True))
        assert again == AlreadyExisted(dv.activity_id(calls[0].key))
        assert state.count("POST", "/$batch") == 2
        assert state.count("GET") == 0


def test_plugin_keys_are_validated_with_their_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "ringcentral": RC,
                "writers": {
                    "z": {"type": "zoho", "key_field": "9 bad", "client_id": "c", "bogus": 1},
                    "d": {"type": "dynamics", "tenant_id": "t"},
                },
            }
        )
    found = [str(i) for i in caught.value.issues]
    assert any(
        i.startswith("writers.z.key_field: '9 bad' is not a Zoho field API name") for i in found
    )
    assert any(i.startswith("writers.z.client_secret: is required") for i in found)
    assert any(i.startswith("writers.z.bogus: unknown key") for i in found)
    assert any(i.startswith("writers.d.environment_url: is required") for i in found)


def test_plugin_secrets_are_redacted() -> None:
    settings = parse_config(
        {
            "ringcentral": RC,
            "writers": {
                "d": {
                    "type": "dynamics",
                    "environment_url": "https://org.crm.dynamics.com",
                    "tenant_id": "t",
                    "client_id": "c",
                    "client_secret": "dv-secret-value",
                }
            },
        }
    )
    assert "dv-secret-value" in settings.secrets()


async def test_zoho_looks_up_a_large_uncertain_batch_in_groups(
    http_session: aiohttp.ClientSession,
) -> None:
    from sscl_daemon.simulator.crm import zoho as zoho_sim

    state = zoho_sim.ZohoState(rate_limit=10**6)
    async with serve(zoho_sim.create_app(state)) as base:
        oauth = OAuthClientSettings(
            zoho_sim.CLIENT_ID, Secret(zoho_sim.CLIENT_SECRET), Secret(zoho_sim.REFRESH_TOKEN)
        )
        contacts = ContactSettings(detect_client_logs=False, owner_by_email=False)
        settings = WriterSettings(
            "z", "zoho", zc.ZohoOptions(oauth, accounts_url=base), contacts=contacts
        )
        writer = zc.ZohoWriter(settings, http_session)
        calls = [make_call(telephony_session_id=f"s-{n}", external_number=None) for n in range(80)]
        first = await writer.write_batch([(c, WriteContext()) for c in calls])
        assert all(isinstance(r, Created) for r in first)
        again = await writer.write_batch([(c, WriteContext(2, uncertain=True)) for c in calls])
        assert [r.record_id for r in again if isinstance(r, AlreadyExisted)] == [
            r.record_id for r in first if isinstance(r, Created)
        ]
        assert state.count("POST", "/coql") == 2
        assert len(state.calls) == 80


def test_notes_of_the_new_writers_use_the_writers_timezone() -> None:
    from zoneinfo import ZoneInfo

    from sscl_daemon.crm import bullhorn, clio

    call = make_call()
    tz = ZoneInfo("America/New_York")
    notes = [
        str(zc.call_record(call, None, None, tz=tz)["Description"]),
        str(dv.phonecall(call, None, None, tz)["description"]),
        str(clio.communication(call, None, 1, None, tz)["body"]),
        str(
            bullhorn.note(
                call,
                Contact("7", "Pat"),
                None,
                bullhorn.BullhornOptions(OAuthClientSettings("c", Secret("s"), Secret("r"))),
                tz,
            )["comments"]
        ),
    ]
    for text in notes:
        assert "EST (-05:00)" in text
