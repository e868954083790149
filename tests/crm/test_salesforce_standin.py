"""The Salesforce stand-in refuses what Salesforce refuses, with Salesforce's error lists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sscl_daemon.simulator.crm import salesforce as sim
from sscl_daemon.simulator.crm.common import serve

API = "/services/data/v61.0"
FORM = {
    "grant_type": "refresh_token",
    "client_id": sim.CLIENT_ID,
    "client_secret": sim.CLIENT_SECRET,
    "refresh_token": sim.REFRESH_TOKEN,
}


@pytest.fixture
async def org(
    http_session: aiohttp.ClientSession,
) -> AsyncIterator[tuple[sim.SalesforceState, Any]]:
    state = sim.SalesforceState()
    state.add_user("api@example.com")
    async with serve(sim.create_app(state)) as url:
        async with http_session.post(f"{url}/services/oauth2/token", data=FORM) as resp:
            grant = await resp.json()
        assert grant["instance_url"] == url
        assert "expires_in" not in grant
        auth = {"Authorization": f"Bearer {grant['access_token']}"}

        async def call(
            method: str, path: str, body: object = None, params: dict[str, str] | None = None
        ) -> tuple[int, Any, dict[str, str]]:
            async with http_session.request(
                method, f"{url}{API}{path}", json=body, params=params, headers=auth
            ) as resp:
                return resp.status, await resp.json(content_type=None), dict(resp.headers)

        yield state, call


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"CallType": "Incoming"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"CallDurationInSeconds": "125"}, "JSON_PARSER_ERROR"),
        ({"ActivityDate": "24/11/2026"}, "JSON_PARSER_ERROR"),
        ({"CallObject": "x" * 256}, "STRING_TOO_LONG"),
        ({"WhoId": "003000000000999AAA"}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"Call_Notes__c": "x"}, "INVALID_FIELD"),
        ({"Id": "00T000000000001AAA"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ],
)
async def test_task_validation_errors(
    org: tuple[sim.SalesforceState, Any], fields: dict[str, object], code: str
) -> None:
    state, call = org
    status, body, headers = await call("POST", "/sobjects/Task", {"Subject": "Call", **fields})
    assert status == 400
    assert body[0]["errorCode"] == code
    assert body[0]["message"]
    assert headers["Sforce-Limit-Info"].startswith("api-usage=")
    assert state.tasks == {}


async def test_contact_needs_a_last_name_and_keys_are_unique(
    org: tuple[sim.SalesforceState, Any],
) -> None:
    _state, call = org
    status, body, _ = await call("POST", "/sobjects/Contact", {"Phone": "+14155550123"})
    assert status == 400
    assert body[0] == {
        "message": "Required fields are missing: [LastName]",
        "errorCode": "REQUIRED_FIELD_MISSING",
        "fields": ["LastName"],
    }
    task = {"Subject": "Call", sim.EXTERNAL_ID_FIELD: "k-1"}
    status, first, _ = await call("POST", "/sobjects/Task", task)
    assert status == 201
    assert first["success"] is True
    status, body, _ = await call("POST", "/sobjects/Task", task)
    assert status == 400
    assert body[0]["errorCode"] == "DUPLICATE_VALUE"
    assert body[0]["message"].endswith(f"on record with id: {first['id']}")


async def test_composite_all_or_none_rolls_back(org: tuple[sim.SalesforceState, Any]) -> None:
    state, call = org
    records = [
        {"attributes": {"type": "Task"}, "Subject": "ok"},
        {"attributes": {"type": "Task"}, "CallType": "Sideways"},
    ]
    status, body, _ = await call(
        "POST", "/composite/sobjects", {"allOrNone": True, "records": records}
    )
    assert status == 200
    assert [r["success"] for r in body] == [False, False]
    assert body[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert state.tasks == {}
    status, body, _ = await call(
        "POST", "/composite/sobjects", {"allOrNone": False, "records": records}
    )
    assert [r["success"] for r in body] == [True, False]
    assert len(state.tasks) == 1
    too_many = {"records": [records[0]] * 201}
    assert (await call("POST", "/composite/sobjects", too_many))[0] == 400


async def test_soql_subset_and_filter_rules(org: tuple[sim.SalesforceState, Any]) -> None:
    state, call = org
    state.add_task(Subject="a", CallObject="s-1", TaskSubtype="Call")
    state.add_task(Subject="b", CallObject="s-2", TaskSubtype="Task")
    q = "SELECT Id, Subject FROM Task WHERE (CallObject IN ('s-1', 's-2') AND TaskSubtype = 'Call') OR Subject = 'zzz'"
    status, body, _ = await call("GET", "/query", params={"q": q})
    assert status == 200
    assert [r["Subject"] for r in body["records"]] == ["a"]
    assert body["done"] is True
    status, body, _ = await call(
        "GET", "/query", params={"q": "SELECT Id FROM Task WHERE Description = 'x'"}
    )
    assert status == 400
    assert body[0]["errorCode"] == "INVALID_FIELD"
    status, body, _ = await call("GET", "/query", params={"q": "SELECT Id FROM Task WHERE"})
    assert status == 400
    assert body[0]["errorCode"] == "MALFORMED_QUERY"


async def test_sosl_phone_search_ignores_formatting(org: tuple[sim.SalesforceState, Any]) -> None:
    state, call = org
    ann = state.add_contact("(415) 555-0123", "Lee", "Ann")
    state.add_contact("+44 20 7946 0000", "Other")
    q = "FIND {14155550123 OR 4155550123} IN PHONE FIELDS RETURNING Contact(Id, Name, OwnerId)"
    status, body, _ = await call("GET", "/search", params={"q": q})
    assert status == 200
    assert [r["Id"] for r in body["searchRecords"]] == [ann]
    assert body["searchRecords"][0]["Name"] == "Ann Lee"


async def test_sessions_and_daily_allowance(org: tuple[sim.SalesforceState, Any]) -> None:
    state, call = org
    state.daily_limit = state.api_usage + 1
    status, _, headers = await call("GET", "/query", params={"q": "SELECT Id FROM User"})
    assert status == 200
    assert headers["Sforce-Limit-Info"] == f"api-usage={state.api_usage}/{state.daily_limit}"
    status, body, _ = await call("GET", "/query", params={"q": "SELECT Id FROM User"})
    assert status == 403
    assert body[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    state.expire_sessions()
    status, body, _ = await call("GET", "/query", params={"q": "SELECT Id FROM User"})
    assert status == 401
    assert body == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
