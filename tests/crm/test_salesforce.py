"""Salesforce writer: whole flows against the Salesforce stand-in, edge cases with aioresponses."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from tests.crm.conftest import START, make_call

from sscl_daemon.calls.model import CallResult, Direction
from sscl_daemon.config import (
    ContactSettings,
    NoContactPolicy,
    OAuthClientSettings,
    SalesforceOptions,
    Secret,
    SeveralContactsPolicy,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm import content, salesforce
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    PermanentFailure,
    RetryLater,
    Skipped,
    WriteContext,
)
from sscl_daemon.crm.salesforce import SalesforceWriter
from sscl_daemon.simulator.crm import salesforce as sim
from sscl_daemon.simulator.crm.common import serve

NUMBER = "+14155550123"
FIRST = WriteContext()
UNCERTAIN = WriteContext(attempt=2, uncertain=True)
TASK_PATH = "/services/data/v61.0/sobjects/Task"
KEY = sim.EXTERNAL_ID_FIELD


def oauth(refresh: str = sim.REFRESH_TOKEN) -> OAuthClientSettings:
    return OAuthClientSettings(sim.CLIENT_ID, Secret(sim.CLIENT_SECRET), Secret(refresh))


@dataclass
class Org:
    state: sim.SalesforceState
    url: str
    session: aiohttp.ClientSession
    api_user: str

    def writer(
        self,
        *,
        contacts: ContactSettings | None = None,
        refresh: str = sim.REFRESH_TOKEN,
        field: str = KEY,
        **kw: Any,
    ) -> SalesforceWriter:
        # instance_url is taken from the token answer; the configured one is never contacted.
        opts = SalesforceOptions(
            "https://configured.invalid", oauth(refresh), self.url, "v61.0", field
        )
        settings = WriterSettings(
            "salesforce", WriterType.SALESFORCE, opts, contacts=contacts or ContactSettings(), **kw
        )
        return SalesforceWriter(settings, self.session)

    def tasks(self) -> list[dict[str, object]]:
        return list(self.state.tasks.values())

    def sent(self, path: str = TASK_PATH) -> list[object]:
        return [r.body for r in self.state.requests if r.path == path and r.method == "POST"]


@pytest.fixture
async def org(http_session: aiohttp.ClientSession) -> AsyncIterator[Org]:
    # The org's clock stands just after the calls, as when logging follows the call end.
    state = sim.SalesforceState(clock=lambda: (START + timedelta(minutes=3)).timestamp())
    api_user = state.add_user("integration@example.com")
    async with serve(sim.create_app(state)) as url:
        yield Org(state, url, http_session, api_user)


TASK_TYPES = {
    "Subject": str,
    "Description": str,
    "TaskSubtype": str,
    "Status": str,
    "Priority": str,
    "ActivityDate": str,
    "CallType": str,
    "CallDurationInSeconds": int,
    "CallDisposition": str,
    "CallObject": str,
    "WhoId": str,
    "OwnerId": str,
    KEY: str,
}


def assert_task_body(body: Mapping[str, object]) -> None:
    """A Task insert in Salesforce's field names and JSON types, nothing else."""
    fields = {k: v for k, v in body.items() if k != "attributes"}
    assert set(fields) <= set(TASK_TYPES), set(fields) - set(TASK_TYPES)
    for name, value in fields.items():
        assert type(value) is TASK_TYPES[name], (name, value)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(fields["ActivityDate"]))
    assert len(str(fields["Subject"])) <= 255


# -- create and content ----------------------------------------------------------------------


async def test_create_fills_the_task_call_fields(org: Org) -> None:
    contact = org.state.add_contact("(415) 555-0123", "Lee", "Ann")
    alice = org.state.add_user("alice@example.com")
    call = make_call(recording_ids=("rec-9",), hold_ms=4000, transferred_to="Bob (ext. 102)")

    result = await org.writer().write(call, FIRST)

    assert isinstance(result, Created)
    task = org.state.tasks[result.record_id]
    assert task["Subject"] == f"Inbound call from Ann Lee ({NUMBER})"
    assert task["TaskSubtype"] == "Call"
    assert task["Status"] == "Completed"
    assert task["Priority"] == "Normal"
    assert task["ActivityDate"] == "2026-11-24"
    assert task["CallType"] == "Inbound"
    assert task["CallDurationInSeconds"] == 125  # seconds of talk
    assert task["CallDisposition"] == "Answered"
    assert task["CallObject"] == "s-1001"
    assert task["WhoId"] == contact
    assert task["OwnerId"] == alice
    assert task[KEY] == "s-1001:62001"
    description = str(task["Description"])
    for line in (
        "Queue time: 00:00:04",
        "Ring time: 00:00:12",
        "Hold time: 00:00:04",
        "Transferred to: Bob (ext. 102)",
        # A link a RingCentral user opens (recordings = "link"): the raw URL needs a token.
        "Recording: "
        + content.player_link(
            "https://media.ringcentral.com/restapi/v1.0/account/37439510/recording/rec-9/content"
        ),
        "sscl-key: s-1001:62001",
    ):
        assert line in description.splitlines()
    (body,) = org.sent()
    assert isinstance(body, dict)
    assert_task_body(body)


async def test_token_refresh_flow_and_instance_url_from_the_token_answer(org: Org) -> None:
    assert isinstance(await org.writer().write(make_call(), FIRST), Created)
    token = next(r for r in org.state.requests if r.path == "/services/oauth2/token")
    form = parse_qs(token.raw.decode())
    assert form == {
        "grant_type": ["refresh_token"],
        "refresh_token": [sim.REFRESH_TOKEN],
        "client_id": [sim.CLIENT_ID],
        "client_secret": [sim.CLIENT_SECRET],
    }
    assert all(
        r.headers.get("Authorization", "").startswith("Bearer 00Dsscl!")
        for r in org.state.requests
        if r.path.startswith("/services/data/")
    )


@pytest.mark.parametrize(
    ("result", "direction", "call_type", "disposition"),
    [
        (CallResult.MISSED, Direction.INBOUND, "Inbound", "No answer"),
        (CallResult.VOICEMAIL, Direction.INBOUND, "Inbound", "Missed, voicemail left"),
        (CallResult.BUSY, Direction.OUTBOUND, "Outbound", "Busy"),
        (CallResult.ABANDONED, Direction.INBOUND, "Inbound", "Abandoned before answer"),
        (CallResult.ANSWERED, Direction.INTERNAL, "Internal", "Answered"),
    ],
)
def test_outcomes_and_directions_map_to_task_values(
    result: CallResult, direction: Direction, call_type: str, disposition: str
) -> None:
    call = make_call(result=result, direction=direction)
    fields = salesforce.task_fields(call, KEY)
    assert fields["CallType"] == call_type
    assert fields["CallDisposition"] == disposition
    assert "WhoId" not in fields
    assert "OwnerId" not in fields


def test_soql_literals_are_escaped() -> None:
    call = make_call(telephony_session_id="s-'x\\", session_id=None)
    query = salesforce.dedupe_query([call], KEY)
    assert "'s-\\'x\\\\:62001'" in query
    assert "CreatedDate >= 2026-11-24T09:25:00Z" in query


# -- exactly once ----------------------------------------------------------------------------


async def test_repeat_is_found_by_the_query_and_not_sent_again(org: Org) -> None:
    writer = org.writer()
    first = await writer.write(make_call(), FIRST)
    again = await writer.write(make_call(), FIRST)
    assert isinstance(first, Created)
    assert again == AlreadyExisted(first.record_id)
    assert len(org.sent()) == 1
    assert len(org.tasks()) == 1


async def test_answer_lost_after_send_is_found_on_the_uncertain_retry(org: Org) -> None:
    org.state.faults.stall(after=True, path=TASK_PATH, method="POST", exact=True)
    writer = org.writer(timeout=0.3)

    lost = await writer.write(make_call(), FIRST)
    assert isinstance(lost, RetryLater)
    assert "timed out" in lost.reason
    assert len(org.tasks()) == 1

    retry = await writer.write(make_call(), UNCERTAIN)
    assert retry == AlreadyExisted(str(org.tasks()[0]["Id"]))
    assert len(org.tasks()) == 1


async def test_task_logged_by_the_users_client_is_recognised(org: Org) -> None:
    by_call_object = org.state.add_task(Subject="Call", TaskSubtype="Call", CallObject="9001")
    by_description = org.state.add_task(
        Subject="Call", TaskSubtype="Call", Description="Call log\nSession Id: s-2002\nDuration 1m"
    )
    writer = org.writer()
    assert await writer.write(make_call(), FIRST) == AlreadyExisted(by_call_object)
    second = make_call(telephony_session_id="s-2002", session_id="9002")
    assert await writer.write(second, FIRST) == AlreadyExisted(by_description)
    assert len(org.tasks()) == 2


async def test_our_task_for_another_user_of_the_session_is_not_a_match(org: Org) -> None:
    writer = org.writer()
    first = await writer.write(make_call(), FIRST)
    other = await writer.write(make_call(extension_id="62002", extension_number="102"), FIRST)
    assert isinstance(first, Created)
    assert isinstance(other, Created)
    assert len(org.tasks()) == 2


# -- contacts and owners ---------------------------------------------------------------------


async def test_no_contact_logs_without_who(org: Org) -> None:
    result = await org.writer().write(make_call(), FIRST)
    assert isinstance(result, Created)
    assert "WhoId" not in org.state.tasks[result.record_id]


async def test_no_contact_skip_and_create_policies(org: Org) -> None:
    skip = org.writer(contacts=ContactSettings(no_contact=NoContactPolicy.SKIP))
    skipped = await skip.write(make_call(), FIRST)
    assert skipped == Skipped(f"no contact matches {NUMBER} (contacts.no_contact = skip)")
    assert org.tasks() == []

    create = org.writer(contacts=ContactSettings(no_contact=NoContactPolicy.CREATE))
    result = await create.write(make_call(external_name="Zed Zane"), FIRST)
    assert isinstance(result, Created)
    (made,) = org.state.contacts.values()
    assert made["LastName"] == "Zed Zane"
    assert made["Phone"] == NUMBER
    assert org.state.tasks[result.record_id]["WhoId"] == made["Id"]


async def test_a_skipped_call_keeps_its_own_answer_in_a_batch(org: Org) -> None:
    skip = org.writer(contacts=ContactSettings(no_contact=NoContactPolicy.SKIP))
    # The call without a contact is skipped; the other one in the same batch is logged.
    known = org.state.add_contact("415-555-0124", "Lee")
    other = make_call(telephony_session_id="s-9", external_number="+14155550124")
    results = await skip.write_batch(
        [(make_call(telephony_session_id="s-8"), FIRST), (other, FIRST)]
    )
    assert isinstance(results[0], Skipped)
    assert isinstance(results[1], Created)
    assert org.state.tasks[results[1].record_id]["WhoId"] == known


async def test_contact_search_is_cached_per_number(org: Org) -> None:
    contact = org.state.add_contact("415-555-0123", "Lee")
    writer = org.writer()
    for n in range(3):
        result = await writer.write(make_call(telephony_session_id=f"s-{n}"), FIRST)
        assert isinstance(result, Created)
        assert org.state.tasks[result.record_id]["WhoId"] == contact
    assert org.state.count("GET", "/search") == 1


@pytest.mark.parametrize(
    ("policy", "who"),
    [
        (SeveralContactsPolicy.ALL, "first"),  # a Task holds one WhoId: the first match
        (SeveralContactsPolicy.FIRST, "first"),
        (SeveralContactsPolicy.UNASSOCIATED, None),
        (SeveralContactsPolicy.SKIP, "skip"),
    ],
)
async def test_several_contacts_follow_the_policy(
    org: Org, policy: SeveralContactsPolicy, who: str | None
) -> None:
    first = org.state.add_contact(NUMBER, "Lee", "Ann")
    org.state.add_contact("4155550123", "Lee", "Ben")
    result = await org.writer(contacts=ContactSettings(several_contacts=policy)).write(
        make_call(), FIRST
    )
    if who == "skip":
        assert isinstance(result, Skipped)
        assert "2 contacts match" in result.reason
        assert org.tasks() == []
        return
    assert isinstance(result, Created)
    assert org.state.tasks[result.record_id].get("WhoId") == (first if who else None)


async def test_owner_mapping_by_table_and_by_email(org: Org) -> None:
    bob = org.state.add_user("bob@example.com")
    carol = org.state.add_user("carol@example.com")
    alice = org.state.add_user("ALICE@example.com")
    writer = org.writer(contacts=ContactSettings(owners={"101": bob, "102": "carol@example.com"}))
    by_id = await writer.write(make_call(), FIRST)
    by_table_mail = await writer.write(
        make_call(extension_id="62002", extension_number="102"), FIRST
    )
    by_user_mail = await writer.write(
        make_call(extension_id="62003", extension_number="103"), FIRST
    )
    unmapped = await writer.write(
        make_call(extension_id="62004", extension_number="104", user_email="x@example.com"), FIRST
    )
    owners = [
        org.state.tasks[r.record_id]["OwnerId"]
        for r in (by_id, by_table_mail, by_user_mail, unmapped)
        if isinstance(r, Created)
    ]
    assert owners == [bob, carol, alice, org.api_user]  # unmapped: the API user owns it
    assert "OwnerId" not in org.sent()[-1]  # type: ignore[operator]
    assert org.state.count("GET", "/query") == 5  # 4 dedupe queries + one user list


# -- auth ------------------------------------------------------------------------------------


async def test_expired_session_is_refreshed_once(org: Org) -> None:
    writer = org.writer()
    assert isinstance(await writer.write(make_call(), FIRST), Created)
    org.state.expire_sessions()
    result = await writer.write(make_call(telephony_session_id="s-2"), FIRST)
    assert isinstance(result, Created)
    assert org.state.token_requests == 2


async def test_refused_refresh_token_is_permanent_and_secret_free(org: Org) -> None:
    result = await org.writer(refresh="revoked-refresh").write(make_call(), FIRST)
    assert isinstance(result, PermanentFailure)
    assert "credentials rejected" in result.reason
    assert "invalid_grant" in result.reason
    assert "revoked-refresh" not in result.reason
    assert sim.CLIENT_SECRET not in result.reason
    assert org.tasks() == []


# -- validation, limits, outages -------------------------------------------------------------


async def test_missing_external_id_field_is_permanent_with_salesforces_reason(org: Org) -> None:
    result = await org.writer(field="Missing_Key__c").write(make_call(), FIRST)
    assert isinstance(result, PermanentFailure)
    assert "HTTP 400" in result.reason
    assert "No such column 'Missing_Key__c' on sobject of type Task" in result.reason


async def test_invalid_reference_is_permanent_with_salesforces_reason(org: Org) -> None:
    writer = org.writer(contacts=ContactSettings(owners={"101": "005notauser0000AAA"}))
    result = await writer.write(make_call(), FIRST)
    assert isinstance(result, PermanentFailure)
    assert "INVALID_CROSS_REFERENCE_KEY" in result.reason
    assert "OwnerId" in result.reason


async def test_used_up_allowance_holds_back_then_403_request_limit_exceeded(org: Org) -> None:
    org.state.daily_limit = 1
    held = await org.writer().write(make_call(), FIRST)  # api-usage=1/1 on the first answer
    assert isinstance(held, RetryLater)
    assert "window closed" in held.reason
    assert org.state.api_usage == 1

    refused = await org.writer().write(make_call(), FIRST)  # a fresh limiter sends anyway
    assert isinstance(refused, RetryLater)
    assert "REQUEST_LIMIT_EXCEEDED" in refused.reason
    assert refused.delay == 3600.0  # Sforce-Limit-Info says the 24 h allowance is used up
    assert org.tasks() == []


@pytest.mark.parametrize(("headers", "delay"), [({"Retry-After": "5"}, 5.0), ({}, 10.0)])
async def test_429_with_and_without_retry_after(
    org: Org, headers: dict[str, str], delay: float
) -> None:
    org.state.faults.fail(429, path="/query", headers=headers, body=[{"message": "slow down"}])
    result = await org.writer().write(make_call(), FIRST)
    assert isinstance(result, RetryLater)
    assert result.delay == delay
    assert org.tasks() == []


async def test_server_error_and_timeout_retry(org: Org) -> None:
    org.state.faults.fail(503, path=TASK_PATH, method="POST")
    unavailable = await org.writer().write(make_call(), FIRST)
    assert isinstance(unavailable, RetryLater)
    assert "HTTP 503" in unavailable.reason

    org.state.faults.stall(after=False, path=TASK_PATH, method="POST", exact=True)
    timed_out = await org.writer(timeout=0.3).write(make_call(), FIRST)
    assert isinstance(timed_out, RetryLater)
    assert "timed out" in timed_out.reason
    assert org.tasks() == []


# -- batches ---------------------------------------------------------------------------------


async def test_batch_uses_composite_collections_of_200(org: Org) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(10)]
    contacts = [org.state.add_contact(number, f"C{n}") for n, number in enumerate(numbers)]
    calls = [
        make_call(telephony_session_id=f"s-{n}", external_number=numbers[n % 10])
        for n in range(450)
    ]
    results = await org.writer().write_batch([(c, FIRST) for c in calls])

    for n, (call, result) in enumerate(zip(calls, results, strict=True)):
        assert isinstance(result, Created)
        assert org.state.tasks[result.record_id][KEY] == call.key
        assert org.state.tasks[result.record_id]["WhoId"] == contacts[n % 10]
    bodies = org.sent("/services/data/v61.0/composite/sobjects")
    assert [len(b["records"]) for b in bodies] == [200, 200, 50]  # type: ignore[index]
    for body in bodies:
        assert body["allOrNone"] is False  # type: ignore[index]
        for record in body["records"]:  # type: ignore[index]
            assert record["attributes"] == {"type": "Task"}
            assert_task_body(record)
    assert org.state.count("GET", "/search") == 10
    assert org.state.count("GET", "/query") == 4  # 3 dedupe queries + one user list


async def test_batch_reports_each_record_on_its_own(org: Org) -> None:
    writer = org.writer(contacts=ContactSettings(owners={"199": "005notauser0000AAA"}))
    done = await writer.write(make_call(telephony_session_id="s-0"), FIRST)
    assert isinstance(done, Created)
    results = await writer.write_batch(
        [
            (make_call(telephony_session_id="s-0"), UNCERTAIN),
            (make_call(telephony_session_id="s-1"), FIRST),
            (make_call(telephony_session_id="s-2", extension_number="199"), FIRST),
            (make_call(telephony_session_id="s-3"), FIRST),
        ]
    )
    assert results[0] == AlreadyExisted(done.record_id)
    assert isinstance(results[1], Created)
    assert isinstance(results[2], PermanentFailure)
    assert "INVALID_CROSS_REFERENCE_KEY" in results[2].reason
    assert isinstance(results[3], Created)
    assert sorted(str(t[KEY]) for t in org.tasks()) == ["s-0:62001", "s-1:62001", "s-3:62001"]


# -- aioresponses: Salesforce's answers as documented ----------------------------------------

LOGIN = "https://login.salesforce.com"
INSTANCE = "https://acme.my.salesforce.com"
API = f"{INSTANCE}/services/data/v61.0"
EMPTY = {"totalSize": 0, "done": True, "records": []}


def _mocked(session: aiohttp.ClientSession) -> SalesforceWriter:
    opts = SalesforceOptions(INSTANCE, oauth(), LOGIN)
    return SalesforceWriter(WriterSettings("sf", WriterType.SALESFORCE, opts), session)


def _token(mock: aioresponses, times: int = 1) -> None:
    for _ in range(times):
        mock.post(
            f"{LOGIN}/services/oauth2/token",
            payload={"access_token": "00Dx!tok", "instance_url": INSTANCE, "token_type": "Bearer"},
        )


def _empty_org(mock: aioresponses) -> None:
    """A token, then nothing found by any query or search."""
    _token(mock)
    mock.get(re.compile(rf"{API}/query\?.*"), payload=EMPTY, repeat=True)
    mock.get(re.compile(rf"{API}/search\?.*"), payload={"searchRecords": []})


async def test_duplicate_value_on_create_is_already_existed(
    http_session: aiohttp.ClientSession,
) -> None:
    with aioresponses() as mock:
        _empty_org(mock)
        mock.post(
            f"{API}/sobjects/Task",
            status=400,
            payload=[
                {
                    "message": f"duplicate value found: {KEY} duplicates value on record with id: 00T5e00000AbCdE",
                    "errorCode": "DUPLICATE_VALUE",
                    "fields": [],
                }
            ],
        )
        result = await _mocked(http_session).write(make_call(), FIRST)
    assert result == AlreadyExisted("00T5e00000AbCdE")


async def test_composite_duplicate_item_is_already_existed(
    http_session: aiohttp.ClientSession,
) -> None:
    with aioresponses() as mock:
        _empty_org(mock)
        mock.post(
            f"{API}/composite/sobjects",
            payload=[
                {"id": "00T000000000001AAA", "success": True, "errors": []},
                {
                    "success": False,
                    "errors": [
                        {
                            "statusCode": "DUPLICATE_VALUE",
                            "message": "duplicate value found: SSCL_Call_Key__c duplicates value on record with id: 00T000000000777AAA",
                            "fields": [],
                        }
                    ],
                },
            ],
        )
        results = await _mocked(http_session).write_batch(
            [(make_call(telephony_session_id=f"s-{n}"), FIRST) for n in range(2)]
        )
    assert results == [Created("00T000000000001AAA"), AlreadyExisted("00T000000000777AAA")]


@pytest.mark.parametrize(
    ("usage", "delay"), [("api-usage=15000/15000", 3600.0), ("api-usage=120/15000", 60.0)]
)
async def test_request_limit_exceeded_delay_follows_sforce_limit_info(
    http_session: aiohttp.ClientSession, usage: str, delay: float
) -> None:
    with aioresponses() as mock:
        _token(mock)
        mock.get(
            re.compile(rf"{API}/query\?.*"),
            status=403,
            headers={"Sforce-Limit-Info": usage},
            payload=[
                {
                    "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                    "errorCode": "REQUEST_LIMIT_EXCEEDED",
                }
            ],
        )
        writer = _mocked(http_session)
        result = await writer.write(make_call(), FIRST)
    assert result == RetryLater(
        "Salesforce API limit reached (REQUEST_LIMIT_EXCEEDED):"
        " ConcurrentPerOrgLongTxn Limit exceeded.; REQUEST_LIMIT_EXCEEDED",
        delay,
    )
    assert writer.http.limiter.blocked_for() > delay - 1


async def test_other_403_is_a_permanent_refusal(http_session: aiohttp.ClientSession) -> None:
    with aioresponses() as mock:
        _token(mock)
        mock.get(
            re.compile(rf"{API}/query\?.*"),
            status=403,
            payload=[
                {
                    "message": "The REST API is not enabled for this Organization.",
                    "errorCode": "API_DISABLED_FOR_ORG",
                }
            ],
        )
        result = await _mocked(http_session).write(make_call(), FIRST)
    assert isinstance(result, PermanentFailure)
    assert "refused access (HTTP 403)" in result.reason
    assert "API_DISABLED_FOR_ORG" in result.reason


async def test_invalid_session_after_refresh_is_permanent(
    http_session: aiohttp.ClientSession,
) -> None:
    invalid = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    with aioresponses() as mock:
        _token(mock, times=2)
        mock.get(re.compile(rf"{API}/query\?.*"), status=401, payload=invalid, repeat=True)
        result = await _mocked(http_session).write(make_call(), FIRST)
    assert isinstance(result, PermanentFailure)
    assert "credentials rejected (HTTP 401)" in result.reason
    assert "INVALID_SESSION_ID" in result.reason
    assert "00Dx!tok" not in result.reason


def test_dedupe_queries_fit_a_get_url_and_cover_every_call() -> None:
    calls = [make_call(telephony_session_id=f"s-long-session-id-{n:05d}") for n in range(200)]
    queries = salesforce.dedupe_queries(calls, KEY)
    assert len(queries) > 1
    assert all(len(quote(q)) <= salesforce.QUERY_URL_BUDGET for q in queries)
    joined = " ".join(queries)
    assert all(f"'{c.key}'" in joined for c in calls)


async def test_stand_in_mounted_under_a_prefix(http_session: aiohttp.ClientSession) -> None:
    state = sim.SalesforceState(clock=lambda: (START + timedelta(minutes=3)).timestamp())
    root = web.Application()
    root.add_subapp("/salesforce", sim.create_app(state))
    async with serve(root) as base:
        opts = SalesforceOptions("https://unused.invalid", oauth(), f"{base}/salesforce")
        writer = SalesforceWriter(WriterSettings("sf", WriterType.SALESFORCE, opts), http_session)
        assert isinstance(await writer.write(make_call(), FIRST), Created)
    assert len(state.tasks) == 1
    assert all(r.path.startswith("/salesforce/") for r in state.requests)
