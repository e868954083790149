"""Zoho CRM, Dynamics 365, Clio and Bullhorn: a log another client wrote with its DEFAULT
settings is recognised, so no second log is written (issue 15 item 3), and a call the caller
left in the user's voicemail is written as a missed call (item 9).

Each seeded record is modelled on what its writer is known to write:

* Bullhorn -- App Connect's connector (ringcentral/rc-unified-crm-extension,
  ``src/connectors/bullhorn/index.ts`` ``createCallLog``): a Note with the composed HTML body,
  ``action`` the chosen note action ("pending note" when none), ``personReference`` with
  ``personSubtype``, ``dateAdded`` the call's start (ms), ``minutesSpent`` seconds / 60 and
  ``externalID`` the RingCentral call's ``sessionId``.
* Clio -- App Connect's connector (``src/connectors/clio/index.ts`` ``createCallLog``): a
  ``PhoneCommunication``, subject ``[Call] Inbound Call from <name> [<number>]``,
  ``received_at`` the call's start, the contact as sender of an inbound call, and a plain-text
  body of the default sections (summary, date/time, duration, result; no session id).
* Zoho -- App Connect's Zoho connector is RingClone's (closed source) and RingCentral's Zoho
  app is a PhoneBridge integration (closed source): what can be known is Zoho's own model of
  a telephony call (PhoneBridge's call notify: type, start time, caller number; a Calls record
  with ``CTI_Entry``), and that every connector ties the call to the contact (``Who_Id``).
* Dynamics -- no App Connect connector; RingCentral for Microsoft Dynamics is closed source:
  a telephony phone call as Dataverse models it (``directioncode``, ``actualstart``,
  ``phonenumber``, the regarding contact).
"""

from __future__ import annotations

from datetime import timedelta

import aiohttp
from tests.crm.conftest import START, make_call

from sscl_daemon.calls.model import CallResult, Direction
from sscl_daemon.config import ContactSettings, OAuthClientSettings, Secret, WriterSettings
from sscl_daemon.crm import bullhorn as bh
from sscl_daemon.crm import clio as cl
from sscl_daemon.crm import dynamics as dv
from sscl_daemon.crm import zoho as zc
from sscl_daemon.crm.base import AlreadyExisted, Created, WriteContext
from sscl_daemon.crm.batch import Pending
from sscl_daemon.crm.contacts import Contact
from sscl_daemon.crm.plugin_parts import caller_left_voicemail, reached_voicemail, talk_seconds
from sscl_daemon.simulator.crm import bullhorn as bh_sim
from sscl_daemon.simulator.crm import clio as cl_sim
from sscl_daemon.simulator.crm import dynamics as dv_sim
from sscl_daemon.simulator.crm import zoho as zc_sim
from sscl_daemon.simulator.crm.common import serve

NUMBER = "+14155550123"
# A voicemail: the mailbox "talked" with the caller for 40 s; the user never did.
VOICEMAIL = {"result": CallResult.VOICEMAIL, "answer_time": None, "talk_ms": 40_000}
# An outbound call the other side's mailbox answered: the rep spoke a message.
LEFT_MESSAGE = {
    "direction": Direction.OUTBOUND,
    "result": CallResult.VOICEMAIL,
    "talk_ms": 40_000,
}


def zoho_settings(base: str) -> WriterSettings:
    oauth = OAuthClientSettings(
        zc_sim.CLIENT_ID, Secret(zc_sim.CLIENT_SECRET), Secret(zc_sim.REFRESH_TOKEN)
    )
    contacts = ContactSettings(owner_by_email=False)
    return WriterSettings("z", "zoho", zc.ZohoOptions(oauth, accounts_url=base), contacts=contacts)  # type: ignore[arg-type]


# -- Zoho ------------------------------------------------------------------------------------


def zoho_client_call(state: zc_sim.ZohoState, **fields: object) -> str:
    rid = state.new_id()
    state.calls[rid] = {
        "id": rid,
        "Subject": "Incoming call",
        "Call_Type": "Inbound",
        "Call_Start_Time": "2026-11-24T09:30:04+00:00",
        "Call_Duration": "02:05",
        "CTI_Entry": True,
        **fields,
    }
    return rid


async def test_zoho_telephony_call_with_the_callers_number_is_recognised(
    http_session: aiohttp.ClientSession,
) -> None:
    state = zc_sim.ZohoState()
    theirs = zoho_client_call(state, Caller_ID="4155550123")  # as typed: national digits
    async with serve(zc_sim.create_app(state)) as base:
        writer = zc.ZohoWriter(zoho_settings(base), http_session)
        assert await writer.write(make_call(), WriteContext()) == AlreadyExisted(theirs)
        assert list(state.calls) == [theirs]
        # The same caller an hour later is another call: logged.
        later = make_call(telephony_session_id="s-2", start_time=START + timedelta(hours=1))
        assert isinstance(await writer.write(later, WriteContext()), Created)


async def test_zoho_connector_call_of_the_matched_contact_is_recognised_once(
    http_session: aiohttp.ClientSession,
) -> None:
    state = zc_sim.ZohoState()
    contact = state.add_contact("Bob", NUMBER)
    # A connector's log: no telephony fields, only the contact; the call type says missed.
    theirs = zoho_client_call(state, Call_Type="Missed", Who_Id={"id": contact})
    first = make_call(**VOICEMAIL)
    second = make_call(telephony_session_id="s-2", session_id="9002", **VOICEMAIL)
    async with serve(zc_sim.create_app(state)) as base:
        writer = zc.ZohoWriter(zoho_settings(base), http_session)
        results = await writer.write_batch([(first, WriteContext()), (second, WriteContext())])
    # Two calls of that minute from one caller, one client log: it settles one call only.
    assert results[0] == AlreadyExisted(theirs)
    assert isinstance(results[1], Created)
    ours = state.calls[results[1].record_id]
    assert (ours["Call_Type"], ours["Call_Result"], ours["Call_Duration"]) == (
        "Missed",
        "Voicemail",
        "00:00",
    )


def zoho_pending(**record: object) -> tuple[Pending, dict[str, object]]:
    call = make_call()
    pending = Pending(call, WriteContext(), payload={"Who_Id": {"id": "7"}})
    base: dict[str, object] = {
        "Call_Type": "Inbound",
        "Call_Start_Time": "2026-11-24T09:30:59+00:00",
        "Who_Id": {"id": "7"},
    }
    return pending, base | record


def test_zoho_fingerprint_needs_direction_minute_and_party() -> None:
    pending, record = zoho_pending()
    assert zc.client_log_matches(pending, record)
    for change, why in (
        ({"Call_Type": "Outbound"}, "the other direction"),
        ({"Call_Start_Time": "2026-11-24T09:33:00+00:00"}, "another minute"),
        ({"Who_Id": {"id": "8"}}, "another contact and no number"),
        ({"Who_Id": None, "Caller_ID": "+14155550999"}, "another caller"),
    ):
        assert not zc.client_log_matches(pending, record | change), why


def test_zoho_voicemail_is_a_missed_call_and_outbound_voicemail_the_reps_outcome() -> None:
    inbound = zc.call_record(make_call(**VOICEMAIL), None, None)
    assert (inbound["Call_Type"], inbound["Call_Result"]) == ("Missed", "Voicemail")
    assert inbound["Caller_ID"] == NUMBER
    out = make_call(**LEFT_MESSAGE)
    outbound = zc.call_record(out, None, None)
    assert (outbound["Call_Type"], outbound["Outgoing_Call_Status"]) == ("Outbound", "Completed")
    assert outbound["Dialled_Number"] == NUMBER
    assert caller_left_voicemail(make_call(**VOICEMAIL))
    assert not reached_voicemail(make_call(**VOICEMAIL))
    assert reached_voicemail(out)
    assert talk_seconds(out) == 40
    # Even with the answer time a record may give the mailbox, a voicemail is a missed call.
    assert zc.call_record(make_call(result=CallResult.VOICEMAIL), None, None)["Call_Type"] == (
        "Missed"
    )


# -- Dynamics --------------------------------------------------------------------------------


async def test_dynamics_telephony_phone_call_is_recognised(
    http_session: aiohttp.ClientSession,
) -> None:
    state = dv_sim.DynamicsState()
    theirs = "0f8fad5b-d9cb-469f-a165-70867728950e"
    state.phonecalls[theirs] = {
        "activityid": theirs,
        "subject": "Incoming call from (415) 555-0123",
        "phonenumber": "(415) 555-0123",
        "directioncode": False,
        "actualstart": "2026-11-24T09:30:02Z",
        "createdon": "2026-11-24T09:32:30Z",
        "statecode": 1,
        "statuscode": 4,
    }
    async with serve(dv_sim.create_app(state)) as base:
        options = dv.DynamicsOptions(
            base, dv_sim.TENANT_ID, dv_sim.CLIENT_ID, Secret(dv_sim.CLIENT_SECRET), base
        )
        settings = WriterSettings(
            "d", "dynamics", options, contacts=ContactSettings(owner_by_email=False)
        )
        writer = dv.DynamicsWriter(settings, http_session)
        assert await writer.write(make_call(), WriteContext()) == AlreadyExisted(theirs)
        outbound = make_call(telephony_session_id="s-2", direction=Direction.OUTBOUND)
        assert isinstance(await writer.write(outbound, WriteContext()), Created)
    assert len(state.phonecalls) == 2


def test_dynamics_fingerprint_by_the_regarding_contact() -> None:
    pending = Pending(
        make_call(),
        WriteContext(),
        payload={"regardingobjectid_contact@odata.bind": "/contacts(c-1)"},
    )
    row: dict[str, object] = {
        "directioncode": False,
        "actualstart": "2026-11-24T09:31:00Z",
        "_regardingobjectid_value": "c-1",
    }
    assert dv.client_log_matches(pending, row)
    assert not dv.client_log_matches(pending, row | {"_regardingobjectid_value": "c-2"})
    assert not dv.client_log_matches(pending, row | {"directioncode": True})
    assert not dv.client_log_matches(pending, row | {"actualstart": None})


def test_dynamics_voicemail_is_a_missed_call_not_a_left_voicemail() -> None:
    contact = Contact("c-1", "Bob")
    inbound = dv.phonecall(make_call(**VOICEMAIL), contact, None)
    assert (inbound["leftvoicemail"], inbound["actualdurationminutes"]) == (False, 0)
    assert dv.close_body(make_call(**VOICEMAIL))["statuscode"] == dv.STATUS_RECEIVED
    outbound = dv.phonecall(make_call(**LEFT_MESSAGE), contact, None)
    assert (outbound["leftvoicemail"], outbound["directioncode"]) == (True, True)


# -- Clio ------------------------------------------------------------------------------------


def clio_settings(base: str, **options: object) -> WriterSettings:
    oauth = OAuthClientSettings(
        cl_sim.CLIENT_ID, Secret(cl_sim.CLIENT_SECRET), Secret(cl_sim.REFRESH_TOKEN)
    )
    contacts = ContactSettings(owner_by_email=False)
    return WriterSettings(
        "c",
        "clio",
        cl.ClioOptions(oauth, region_url=base, **options),
        contacts=contacts,  # type: ignore[arg-type]
    )


def app_connect_communication(
    state: cl_sim.ClioState, contact: int, subject: str, received_at: str
) -> int:
    cid = state.new_id()
    state.communications[cid] = {
        "id": cid,
        "type": "PhoneCommunication",
        "subject": subject,
        "body": (
            f"- Summary: {subject}\n- Date/Time: 2026-11-24 09:30:00 AM\n"
            "- Duration: 00:02:17\n- Result: Call connected\n"
        ),
        "received_at": received_at,
        "senders": [{"id": contact, "type": "Contact"}],
        "receivers": [{"id": state.me, "type": "User"}],
    }
    return cid


async def test_clio_app_connect_default_communication_is_recognised(
    http_session: aiohttp.ClientSession,
) -> None:
    state = cl_sim.ClioState()
    bob = state.add_contact("Bob", NUMBER)
    theirs = app_connect_communication(
        state, bob, f"[Call] Inbound Call from Bob [{NUMBER}]", "2026-11-24T09:30:00.000Z"
    )
    async with serve(cl_sim.create_app(state)) as base:
        writer = cl.ClioWriter(clio_settings(base), http_session)
        assert await writer.write(make_call(), WriteContext()) == AlreadyExisted(str(theirs))
        assert len(state.communications) == 1
        # An outbound call in the same minute is not that log.
        out = make_call(telephony_session_id="s-2", direction=Direction.OUTBOUND)
        assert isinstance(await writer.write(out, WriteContext()), Created)
    assert len(state.communications) == 2


def test_clio_fingerprint_needs_subject_minute_and_without_contact_the_number() -> None:
    call = make_call()
    record = {
        "subject": f"[Call] Inbound Call from Bob [{NUMBER}]",
        "received_at": "2026-11-24T09:31:00.000Z",
    }
    assert cl.app_connect_communication(call, record, True)
    assert cl.app_connect_communication(call, record, False)  # the subject's number
    other = record | {"subject": "[Call] Inbound Call from Bob [+14155550999]"}
    assert not cl.app_connect_communication(call, other, False)
    assert cl.app_connect_communication(call, other, True)  # listed as the contact's
    for change in (
        {"subject": "Custom subject"},
        {"subject": f"[Call] Outbound Call to Bob [{NUMBER}]"},
        {"received_at": "2026-11-24T10:30:00.000Z"},
    ):
        assert not cl.app_connect_communication(call, record | change, True), change


async def test_clio_voicemail_is_not_billed(http_session: aiohttp.ClientSession) -> None:
    state = cl_sim.ClioState()
    bob = state.add_contact("Bob", NUMBER)
    state.add_matter(bob)
    async with serve(cl_sim.create_app(state)) as base:
        settings = clio_settings(base, time_entries=cl.TimeEntries.BILLABLE)
        writer = cl.ClioWriter(settings, http_session)
        result = await writer.write(make_call(**VOICEMAIL), WriteContext())
    assert isinstance(result, Created)
    record = state.communications[int(result.record_id)]
    assert record["senders"] == [{"id": bob, "type": "Contact"}]
    assert "Result: missed, voicemail left" in str(record["body"])
    assert state.activities == {}


# -- Bullhorn --------------------------------------------------------------------------------


def bullhorn_options(**overrides: object) -> bh.BullhornOptions:
    oauth = OAuthClientSettings(
        bh_sim.CLIENT_ID, Secret(bh_sim.CLIENT_SECRET), Secret(bh_sim.REFRESH_TOKEN)
    )
    return bh.BullhornOptions(oauth, **overrides)  # type: ignore[arg-type]


async def test_bullhorn_app_connect_default_note_is_recognised(
    http_session: aiohttp.ClientSession,
) -> None:
    state = bh_sim.BullhornState()
    call = make_call()
    person = state.add_person("ClientContact", "Bob", NUMBER)
    state.notes[9001] = {
        "id": 9001,
        "comments": (
            "<li><b>Summary</b>: Inbound Call from Bob</li>"
            "<li><b>Date/time</b>: 2026-11-24 09:30:00 AM</li>"
            "<li><b>Duration</b>: 00:02:17</li><li><b>Result</b>: Call connected</li>"
        ),
        "personReference": {"id": person, "personSubtype": "ClientContact"},
        "action": "pending note",
        "dateAdded": int(START.timestamp() * 1000),
        "externalID": call.session_id,  # the call log's sessionId
        "minutesSpent": 137 / 60,
        "isDeleted": False,
    }
    async with serve(bh_sim.create_app(state)) as base:
        options = bullhorn_options(auth_url=base, login_url=base)
        settings = WriterSettings("b", "bullhorn", options, contacts=ContactSettings())  # type: ignore[arg-type]
        writer = bh.BullhornWriter(settings, http_session)
        try:
            assert await writer.write(call, WriteContext()) == AlreadyExisted("9001")
        finally:
            await writer.close()
    assert list(state.notes) == [9001]


def test_bullhorn_voicemail_note_is_a_missed_call() -> None:
    person = Contact("5", "Bob", "ClientContact")
    note = bh.note(make_call(**VOICEMAIL), person, None, bullhorn_options())
    assert (note["action"], note["minutesSpent"]) == ("Inbound Call", 0)
    missed = bullhorn_options(action_missed="Missed Call")
    assert bh.note(make_call(**VOICEMAIL), person, None, missed)["action"] == "Missed Call"
    assert bh.note(make_call(), person, None, missed)["action"] == "Inbound Call"
    out = bh.note(make_call(**LEFT_MESSAGE), person, None, missed)
    assert (out["action"], out["minutesSpent"]) == ("Outbound Call", 1)
