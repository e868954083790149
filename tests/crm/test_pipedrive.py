"""Pipedrive writer: whole flows against the stand-in (loopback), edge cases with aioresponses."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CallResult, Direction
from sscl_daemon.config import (
    ContactSettings,
    NoContactPolicy,
    OAuthClientSettings,
    PipedriveOptions,
    RecordingsMode,
    Secret,
    SeveralContactsPolicy,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm import content
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    PermanentFailure,
    RetryLater,
    Skipped,
    WriteContext,
)
from sscl_daemon.crm.pipedrive import PipedriveWriter, call_log_body
from sscl_daemon.crm.pipedrive_enrich import LOG_ACTIVITY
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.simulator.crm import pipedrive as standin
from sscl_daemon.simulator.crm.common import serve

TOKEN = "pd-api-token-123"
NUMBER = "+14155550123"


@dataclass
class Rig:
    state: standin.PipedriveState
    base: str
    session: aiohttp.ClientSession
    admin: int
    alice: int

    def settings(self, **contacts: Any) -> WriterSettings:
        options = PipedriveOptions(base_url=self.base, api_token=Secret(TOKEN))
        return WriterSettings(
            "pd", WriterType.PIPEDRIVE, options, timeout=5.0, contacts=ContactSettings(**contacts)
        )

    def writer(self, timeout: float = 5.0, **contacts: Any) -> PipedriveWriter:
        return PipedriveWriter(replace(self.settings(**contacts), timeout=timeout), self.session)

    def only_log(self) -> dict[str, object]:
        (log,) = self.state.call_logs.values()
        return log


@pytest.fixture
async def rig(http_session: aiohttp.ClientSession) -> AsyncIterator[Rig]:
    state = standin.PipedriveState(clock=lambda: datetime(2026, 11, 24, 9, 33, tzinfo=UTC))
    admin = state.add_user("admin@example.com", "Admin", api_token=TOKEN)
    alice = state.add_user("alice@example.com", "Alice")
    async with serve(standin.create_app(state)) as base:
        yield Rig(state, base, http_session, admin, alice)


async def test_create_with_contact_and_owner_by_email(rig: Rig) -> None:
    pid = rig.state.add_person("Bob Buyer", ["(415) 555-0123"], org_id=77)
    call = make_call(recording_ids=("rec-1",))
    result = await rig.writer().write(call, WriteContext())
    log = rig.only_log()
    assert result == Created(str(log["id"]))
    assert log["person_id"] == pid
    assert log["org_id"] == 77
    assert log["user_id"] == rig.alice
    assert log["outcome"] == "connected"
    assert log["duration"] == "125"
    assert log["subject"] == "Inbound call from Bob Buyer (+14155550123)"
    assert log["start_time"] == "2026-11-24 09:30:00"
    assert log["end_time"] == "2026-11-24 09:32:17"
    assert log["from_phone_number"] == NUMBER
    assert log["to_phone_number"] == "101"
    note = str(log["note"])
    assert "sscl-key: s-1001:62001" in note
    # A link a RingCentral user opens in a browser (recordings = "link", the default).
    assert content.player_link(content.recording_urls(call)[0]) in html.unescape(note)
    # The exact body sent, field by field (the stand-in refuses unknown fields).
    sent = next(
        r.body for r in rig.state.requests if r.method == "POST" and r.path.endswith("/callLogs")
    )
    assert sent == {
        "subject": "Inbound call from Bob Buyer (+14155550123)",
        "duration": "125",
        "outcome": "connected",
        "to_phone_number": "101",
        "from_phone_number": NUMBER,
        "start_time": "2026-11-24 09:30:00",
        "end_time": "2026-11-24 09:32:17",
        "note": content.note_html(call, "Bob Buyer", recordings=RecordingsMode.LINK),
        "user_id": rig.alice,
        "person_id": pid,
        "org_id": 77,
    }
    assert {r.headers.get("x-api-token") for r in rig.state.requests} == {TOKEN}
    assert all("api_token" not in r.query for r in rig.state.requests)


@pytest.mark.parametrize(
    ("result", "direction", "outcome"),
    [
        (CallResult.MISSED, Direction.INBOUND, "no_answer"),
        (CallResult.VOICEMAIL, Direction.INBOUND, "no_answer"),
        (CallResult.BUSY, Direction.OUTBOUND, "busy"),
        (CallResult.REJECTED, Direction.OUTBOUND, "no_answer"),
        (CallResult.TRANSFERRED, Direction.INBOUND, "connected"),
        (CallResult.ABANDONED, Direction.INBOUND, "no_answer"),
    ],
)
def test_outcome_and_direction_mapping(
    result: CallResult, direction: Direction, outcome: str
) -> None:
    call = make_call(result=result, direction=direction, talk_ms=0)
    body = call_log_body(call, None, None)
    assert body["outcome"] == outcome
    if direction is Direction.OUTBOUND:
        assert (body["from_phone_number"], body["to_phone_number"]) == ("101", NUMBER)
    assert "person_id" not in body
    assert "user_id" not in body


def log_activity(log: dict[str, object]) -> AlreadyExisted:
    """A retry's answer for our ``log`` assigned to Alice: ``GET /v1/callLogs`` lists only the
    token user's (the admin's) logs, so the log is known by its activity."""
    return AlreadyExisted(f"{LOG_ACTIVITY}{log['activity_id']}", ours=True)


async def test_idempotent_repeat(rig: Rig) -> None:
    writer = rig.writer()
    call = make_call()
    first = await writer.write(call, WriteContext())
    assert isinstance(first, Created)
    assert await writer.write(call, WriteContext(attempt=2)) == log_activity(rig.only_log())
    assert len(rig.state.call_logs) == 1


async def test_crash_after_send_no_duplicate(rig: Rig) -> None:
    rig.state.faults.stall(after=True, path="/callLogs", method="POST")
    call = make_call()
    lost = await rig.writer(timeout=0.3).write(call, WriteContext())
    assert isinstance(lost, RetryLater)
    assert len(rig.state.call_logs) == 1  # it did reach Pipedrive
    again = await rig.writer().write(call, WriteContext(attempt=2, uncertain=True))
    assert again == log_activity(rig.only_log())
    assert len(rig.state.call_logs) == 1


async def test_scan_pages_through_call_logs(rig: Rig) -> None:
    """A retry finding our key in an activity names the log by its id from the token user's
    call logs (no owner mapped: the log is the admin's), paging to it."""
    writer = rig.writer(owner_by_email=False)
    call = make_call()
    first = await writer.write(call, WriteContext())
    assert rig.only_log()["user_id"] == rig.admin
    for i in range(60):  # newer logs of the same user push ours to the second page
        rig.state.call_logs[f"newer-{i}"] = {
            "id": f"newer-{i}",
            "note": "other call",
            "user_id": rig.admin,
        }
    assert await writer.write(call, WriteContext(attempt=2, uncertain=True)) == AlreadyExisted(
        first.record_id  # type: ignore[union-attr]
    )
    pages = [
        r.query["start"]
        for r in rig.state.requests
        if r.method == "GET" and r.path.endswith("/callLogs")
    ]
    assert pages == ["0", "50"]


async def test_client_made_activity_is_recognised(rig: Rig) -> None:
    pid = rig.state.add_person("Bob", [NUMBER])
    aid = rig.state.add_activity(pid, "<p>Inbound Call from Bob</p><p>- Session Id: 9001</p>")
    result = await rig.writer().write(make_call(), WriteContext())
    assert result == AlreadyExisted(f"activity:{aid}")
    assert rig.state.call_logs == {}
    # Our own log of another user in the same session is not a client log.
    other = rig.state.add_person("Carol", ["+14155550999"])
    rig.state.add_activity(other, content.note_text(make_call(extension_id="62002")))
    created = await rig.writer().write(make_call(external_number="+14155550999"), WriteContext())
    assert isinstance(created, Created)


async def test_contact_not_found_policies(rig: Rig) -> None:
    unassociated = await rig.writer().write(make_call(), WriteContext())
    assert isinstance(unassociated, Created)
    assert "person_id" not in rig.state.call_logs[unassociated.record_id] or (
        rig.state.call_logs[unassociated.record_id]["person_id"] is None
    )

    skipped = await rig.writer(no_contact=NoContactPolicy.SKIP).write(
        make_call(telephony_session_id="s-2"), WriteContext()
    )
    assert skipped == Skipped("no contact matches +14155550123 (contacts.no_contact = skip)")
    assert rig.state.count("POST", "/api/v1/callLogs") == 1  # only the unassociated one

    writer = rig.writer(no_contact=NoContactPolicy.CREATE)
    created = await writer.write(
        make_call(telephony_session_id="s-3", external_name="New Lead"), WriteContext()
    )
    assert isinstance(created, Created)
    (person,) = rig.state.persons.values()
    assert person["name"] == "New Lead"
    assert person["phones"] == [{"value": NUMBER, "primary": True, "label": "work"}]
    assert rig.state.call_logs[created.record_id]["person_id"] == person["id"]
    # The new person is cached: the next call from the number neither searches nor creates.
    searches = rig.state.count("GET", "/persons/search")
    await writer.write(make_call(telephony_session_id="s-4"), WriteContext())
    assert rig.state.count("GET", "/persons/search") == searches
    assert len(rig.state.persons) == 1


@pytest.mark.parametrize(
    ("policy", "expect"),
    [
        (SeveralContactsPolicy.ALL, "first"),
        (SeveralContactsPolicy.FIRST, "first"),
        (SeveralContactsPolicy.UNASSOCIATED, None),
        (SeveralContactsPolicy.SKIP, "skip"),
    ],
)
async def test_several_contacts(
    rig: Rig, policy: SeveralContactsPolicy, expect: str | None
) -> None:
    first = rig.state.add_person("Bob One", ["+1 415 555 0123"])
    rig.state.add_person("Bob Two", ["4155550123"])
    rig.state.add_person("Not Bob", ["+1 415 555 0124"])  # a near miss the search returns
    result = await rig.writer(several_contacts=policy).write(make_call(), WriteContext())
    if expect == "skip":
        assert isinstance(result, Skipped)
        assert "2 contacts match" in result.reason
        assert rig.state.call_logs == {}
        return
    assert isinstance(result, Created)
    person = rig.state.call_logs[result.record_id]["person_id"]
    assert person == (first if expect == "first" else None)


async def test_owner_table_and_bad_owner(rig: Rig) -> None:
    writer = rig.writer(owners={"101": str(rig.admin)})
    result = await writer.write(make_call(), WriteContext())
    assert isinstance(result, Created)
    assert rig.state.call_logs[result.record_id]["user_id"] == rig.admin
    assert rig.state.count("GET", "/users") == 0  # the table answers without the user list
    by_mail = rig.writer(owners={"101": "alice@example.com"})
    result = await by_mail.write(make_call(telephony_session_id="s-2"), WriteContext())
    assert rig.state.call_logs[result.record_id]["user_id"] == rig.alice  # type: ignore[union-attr]
    bad = await rig.writer(owners={"101": "Alice"}).write(
        make_call(telephony_session_id="s-3"), WriteContext()
    )
    assert isinstance(bad, PermanentFailure)
    assert "contacts.owners" in bad.reason
    unknown = await rig.writer(owner_by_email=True).write(
        make_call(telephony_session_id="s-4", user_email="ghost@example.com"), WriteContext()
    )
    assert isinstance(unknown, Created)
    assert rig.state.call_logs[unknown.record_id]["user_id"] == rig.admin  # the token's user


async def test_wrong_api_token(rig: Rig) -> None:
    options = PipedriveOptions(base_url=rig.base, api_token=Secret("wrong-token-456"))
    writer = PipedriveWriter(WriterSettings("pd", WriterType.PIPEDRIVE, options), rig.session)
    result = await writer.write(make_call(), WriteContext())
    assert isinstance(result, PermanentFailure)
    assert result.reason.startswith(
        "Pipedrive credentials rejected (HTTP 401): unauthorized access"
    )
    assert "wrong-token-456" not in result.reason
    assert "wrong-token-456" not in repr(writer)


async def test_oauth_refresh_on_401_then_permanent(rig: Rig) -> None:
    rig.state.refresh_tokens["refresh-1"] = rig.admin
    oauth = OAuthClientSettings(
        rig.state.client_id, Secret(rig.state.client_secret), Secret("refresh-1")
    )
    options = PipedriveOptions(
        base_url="https://api.pipedrive.invalid", oauth=oauth, token_url=f"{rig.base}/oauth/token"
    )
    writer = build_writer(WriterSettings("pd", WriterType.PIPEDRIVE, options), rig.session)
    assert isinstance(await writer.write(make_call(), WriteContext()), Created)  # via api_domain
    rig.state.access_tokens.clear()  # revoked: 401, refresh, retry
    assert isinstance(
        await writer.write(make_call(telephony_session_id="s-2"), WriteContext()), Created
    )
    assert len(rig.state.call_logs) == 2
    rig.state.access_tokens.clear()
    rig.state.refresh_tokens.clear()  # and now the refresh token is gone too
    failed = await writer.write(make_call(telephony_session_id="s-3"), WriteContext())
    assert isinstance(failed, PermanentFailure)
    assert "credentials rejected" in failed.reason
    assert "invalid_grant" in failed.reason


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}, 2.0),
        ({}, 10.0),
    ],
)
async def test_429(rig: Rig, headers: dict[str, str], delay: float) -> None:
    rig.state.faults.fail(
        429,
        path="/callLogs",
        method="POST",
        headers=headers,
        body={"success": False, "error": "Rate limit has been exceeded"},
    )
    result = await rig.writer().write(make_call(), WriteContext())
    assert result == RetryLater(
        "Pipedrive rate limit (HTTP 429): Rate limit has been exceeded", delay
    )


async def test_rate_limit_headers_pause_the_writer(rig: Rig) -> None:
    # users + search use the 2-request window up; the third request (the create) would be a 429
    # if the writer did not hold it back until x-ratelimit-reset.
    rig.state.rate_limit = 2
    writer = rig.writer()
    assert isinstance(await writer.write(make_call(), WriteContext()), Created)
    assert rig.state.count() == 3
    assert len(rig.state.call_logs) == 1


async def test_5xx_and_timeout(rig: Rig) -> None:
    rig.state.faults.fail(
        502, path="/callLogs", method="POST", body={"success": False, "error": "Bad gateway"}
    )
    assert await rig.writer().write(make_call(), WriteContext()) == RetryLater(
        "Pipedrive unavailable (HTTP 502): Bad gateway", None
    )
    rig.state.faults.stall(after=False, path="/persons/search")
    timed_out = await rig.writer(timeout=0.3).write(make_call(), WriteContext())
    assert isinstance(timed_out, RetryLater)
    assert "timed out" in timed_out.reason
    assert rig.state.call_logs == {}


async def test_validation_errors_kept(http_session: aiohttp.ClientSession) -> None:
    options = PipedriveOptions(base_url="https://api.pipedrive.com", api_token=Secret(TOKEN))
    writer = PipedriveWriter(
        WriterSettings(
            "pd", WriterType.PIPEDRIVE, options, contacts=ContactSettings(owner_by_email=False)
        ),
        http_session,
    )
    call = make_call(external_number=None, direction=Direction.INTERNAL, internal_number="102")
    url = "https://api.pipedrive.com/api/v1/callLogs"
    with aioresponses() as m:
        m.post(
            url,
            status=400,
            payload={
                "success": False,
                "error": "outcome is invalid",
                "error_info": "Please check developers.pipedrive.com",
            },
        )
        m.post(url, status=422, payload={"success": False, "error": "Unprocessable entity"})
        bad = await writer.write(call, WriteContext())
        assert bad == PermanentFailure(
            "Pipedrive rejected the request (HTTP 400): outcome is invalid; Please check developers.pipedrive.com"
        )
        assert await writer.write(call, WriteContext()) == PermanentFailure(
            "Pipedrive rejected the request (HTTP 422): Unprocessable entity"
        )


async def test_standin_enforces_call_log_schema(rig: Rig) -> None:
    url = f"{rig.base}/v1/callLogs"
    good = {
        "to_phone_number": "+1",
        "outcome": "connected",
        "start_time": "2026-11-24 09:30:00",
        "end_time": "2026-11-24 09:31:00",
    }
    cases = {
        "outcome must be one of": dict(good, outcome="answered"),
        "end_time is required": {k: v for k, v in good.items() if k != "end_time"},
        "start_time must be in format": dict(good, start_time="2026-11-24T09:30:00Z"),
        "duration must be a string": dict(good, duration=125),
        "Unknown field(s): direction": dict(good, direction="in"),
        "Only one of deal_id and lead_id": dict(good, deal_id=1, lead_id="x"),
        "Person 5 not found": dict(good, person_id=5),
    }
    for message, body in cases.items():
        async with rig.session.post(url, params={"api_token": TOKEN}, json=body) as resp:
            answer = await resp.json()
            assert resp.status == 400, message
            assert message in answer["error"]
            assert answer["success"] is False
    async with rig.session.post(url, json=good) as resp:
        assert resp.status == 401
    async with rig.session.post(url, params={"api_token": TOKEN}, json=good) as resp:
        assert resp.status == 200
        assert resp.headers["x-ratelimit-limit"] == "80"
