"""Logs made by App Connect or RingCentral's own CRM apps with their DEFAULT settings are
recognised, so the daemon never writes a second log beside them (issue 15 step 2).

Each record is modelled on the public code that writes it:

* Pipedrive -- App Connect's connector (ringcentral/rc-unified-crm-extension,
  ``src/connectors/pipedrive/index.ts`` ``createCallLog`` and ``packages/core/lib/
  callLogComposer.ts``): a v2 activity, type key with "call", ``done``, ``due_date`` /
  ``due_time`` (UTC, minutes), ``duration`` ``HH:MM``, subject ``"Inbound Call from <name>"``,
  the person as primary participant, and an HTML note whose default sections are summary,
  date/time, duration and result -- no session id (``addCallSessionId`` defaults to off).
* HubSpot -- RingCentral's HubSpot app (ringcentral/hubspot-embeddable-ringcentral-phone,
  ``src/funcs/log-sync.js``): a CALL engagement whose ``metadata.externalId`` (v3:
  ``hs_call_external_id``) is the RingCentral call's ``sessionId``, status COMPLETED, body
  ``[Inbound Call connected] CALL from <b>name</b>(<b>number</b>) to ...``.
* Salesforce -- no App Connect connector exists and RingCentral for Salesforce is closed
  source: a Task it writes is recognised when it carries the session id in ``CallObject``
  (the Open CTI field for the call's id) or names it in the description; the test pins that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from tests.crm.conftest import START, make_call

from sscl_daemon.calls.model import Direction
from sscl_daemon.config import (
    ContactSettings,
    HubSpotOptions,
    OAuthClientSettings,
    PipedriveOptions,
    SalesforceOptions,
    Secret,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm import hubspot, pipedrive, salesforce
from sscl_daemon.crm.base import AlreadyExisted, Created, WriteContext
from sscl_daemon.simulator.crm import hubspot as hs_standin
from sscl_daemon.simulator.crm import pipedrive as pd_standin
from sscl_daemon.simulator.crm import salesforce as sf_standin
from sscl_daemon.simulator.crm.common import serve

NUMBER = "+14155550123"
TOKEN = "pd-token-123456"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def app_connect_note(subject: str) -> str:
    """The HTML body App Connect composes with default settings (no session id line)."""
    return (
        f"<li><b>Summary</b>: {subject}</li>"
        "<li><b>Date/time</b>: 2026-11-24 04:30:00 AM</li>"
        "<li><b>Duration</b>: 00:02:17</li>"
        "<li><b>Result</b>: Call connected</li>"
    )


def app_connect_activity(person: int, subject: str, due: datetime) -> dict[str, object]:
    return {
        "owner_id": 1001,
        "subject": subject,
        "duration": "00:03",  # App Connect adds a minute to every duration
        "deal_id": "",
        "done": True,
        "due_date": due.strftime("%Y-%m-%d"),
        "due_time": due.strftime("%H:%M"),
        "participants": [{"person_id": person, "primary": True}],
        "type": "call",
    }


async def test_pipedrive_app_connect_default_activity_is_recognised(
    session: aiohttp.ClientSession,
) -> None:
    state = pd_standin.PipedriveState(clock=lambda: START + timedelta(minutes=3))
    state.add_user("admin@example.com", api_token=TOKEN)
    bob = state.add_person("Bob", [NUMBER])
    fields = app_connect_activity(bob, "Inbound Call from Bob", START)
    subject = str(fields.pop("subject"))
    theirs = state.add_activity(bob, app_connect_note(subject), subject, **fields)
    async with serve(pd_standin.create_app(state)) as base:
        options = PipedriveOptions(base_url=base, api_token=Secret(TOKEN))
        writer = pipedrive.PipedriveWriter(
            WriterSettings("pd", WriterType.PIPEDRIVE, options), session
        )
        assert await writer.write(make_call(), WriteContext()) == AlreadyExisted(
            f"activity:{theirs}"
        )
        assert state.call_logs == {}
        # The same person's outbound call a minute later is another call: logged.
        later = make_call(
            telephony_session_id="s-2002",
            session_id="9002",
            direction=Direction.OUTBOUND,
            start_time=START + timedelta(minutes=1),
        )
        assert isinstance(await writer.write(later, WriteContext()), Created)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"due_time": "11:30"}, "another time"),
        ({"done": False}, "a planned call, not a log"),
        ({"type": "meeting"}, "not a call"),
        ({"subject": "Outbound Call to Bob"}, "the other direction"),
    ],
)
def test_pipedrive_fingerprint_needs_every_part(change: dict[str, object], why: str) -> None:
    activity = {**app_connect_activity(1, "Inbound Call from Bob", START), **change}
    assert not pipedrive.app_connect_activity(make_call(), activity), why
    assert pipedrive.app_connect_activity(
        make_call(), app_connect_activity(1, "Inbound Call from Bob", START)
    )
    # The call-log record may round into the next minute.
    late = app_connect_activity(1, "Inbound Call from Bob", START + timedelta(minutes=1))
    assert pipedrive.app_connect_activity(make_call(), late)


async def test_hubspot_ringcentral_app_engagement_is_recognised(
    session: aiohttp.ClientSession,
) -> None:
    state = hs_standin.HubSpotState()
    stamp = START.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    theirs = state.add_call(
        {
            "hs_timestamp": stamp,
            "hs_call_external_id": "9001",  # the call's sessionId
            "hs_call_status": "COMPLETED",
            "hs_call_body": (
                "<div></div><p>[Inbound Call connected] CALL from <b>Bob</b>"
                "(<b>(415) 555-0123</b>) to <b>Alice Agent</b>(<b>(650) 555-0100</b>)</p>"
            ),
            "hs_call_from_number": "(415) 555-0123",
            "hs_call_to_number": "(650) 555-0100",
            "hs_call_duration": "137000",
        }
    )
    async with serve(hs_standin.create_app(state)) as base:
        options = HubSpotOptions(base_url=base, access_token=Secret(state.private_token or ""))
        writer = hubspot.HubSpotWriter(
            WriterSettings("hs", WriterType.HUBSPOT, options, contacts=ContactSettings()),
            session,
        )
        assert await writer.write(make_call(), WriteContext()) == AlreadyExisted(theirs)
    assert list(state.calls) == [theirs]


async def test_salesforce_task_with_the_session_in_call_object_is_recognised(
    session: aiohttp.ClientSession,
) -> None:
    state = sf_standin.SalesforceState(clock=lambda: (START + timedelta(minutes=3)).timestamp())
    theirs = state.add_task(
        Subject="Inbound call from Bob",
        TaskSubtype="Call",
        CallType="Inbound",
        CallObject="9001",
        CallDurationInSeconds=137,
        Status="Completed",
    )
    async with serve(sf_standin.create_app(state)) as base:
        options = SalesforceOptions(
            instance_url=base,
            login_url=base,
            oauth=OAuthClientSettings(
                state.client_id, Secret(state.client_secret), Secret(state.refresh_token)
            ),
        )
        writer = salesforce.SalesforceWriter(
            WriterSettings("sf", WriterType.SALESFORCE, options), session
        )
        assert await writer.write(make_call(), WriteContext()) == AlreadyExisted(theirs)
    assert list(state.tasks) == [theirs]
