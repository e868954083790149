"""The HubSpot stand-in refuses what HubSpot refuses, with HubSpot's error bodies and headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sscl_daemon.simulator.crm import hubspot as sim
from sscl_daemon.simulator.crm.common import serve

AUTH = {"Authorization": f"Bearer {sim.PRIVATE_TOKEN}"}
VALID = {"hs_timestamp": "2026-11-24T09:30:00.000Z", "hs_call_direction": "INBOUND"}


@pytest.fixture
async def hub(http_session: aiohttp.ClientSession) -> AsyncIterator[tuple[sim.HubSpotState, Any]]:
    state = sim.HubSpotState()
    async with serve(sim.create_app(state)) as url:

        async def call(
            method: str, path: str, body: object = None, headers: dict[str, str] | None = None
        ) -> tuple[int, Any, dict[str, str]]:
            async with http_session.request(
                method, f"{url}{path}", json=body, headers=AUTH if headers is None else headers
            ) as resp:
                return resp.status, await resp.json(content_type=None), dict(resp.headers)

        yield state, call


@pytest.mark.parametrize(
    ("properties", "fragment"),
    [
        ({"hs_call_direction": "INBOUND"}, "hs_timestamp is required"),
        ({**VALID, "hs_call_duration": 125}, "Cannot deserialize"),
        ({**VALID, "hs_call_direction": "IN"}, "'IN' was not one of the allowed options"),
        ({**VALID, "hs_call_status": "DONE"}, "'DONE' was not one of the allowed options"),
        ({**VALID, "hs_call_disposition": "connected"}, "was not one of the allowed options"),
        ({**VALID, "hs_call_duration": "2m"}, "'2m' is not a valid number"),
        ({**VALID, "hs_call_recording_url": "http://x/y.mp3"}, "https"),
        ({**VALID, "call_notes": "x"}, 'Property "call_notes" does not exist'),
    ],
)
async def test_create_validation_errors(
    hub: tuple[sim.HubSpotState, Any], properties: dict[str, object], fragment: str
) -> None:
    state, call = hub
    status, body, _ = await call("POST", "/crm/v3/objects/calls", {"properties": properties})
    assert status == 400
    assert body["status"] == "error"
    assert body["category"] == "VALIDATION_ERROR"
    assert fragment in body["message"]
    assert body["correlationId"]
    assert state.calls == {}


async def test_associations_must_name_a_contact_with_type_194(
    hub: tuple[sim.HubSpotState, Any],
) -> None:
    state, call = hub
    contact = state.add_contact("+14155550123")
    good = {"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                              "associationTypeId": 194}]}  # fmt: skip
    wrong_type = {**good, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                     "associationTypeId": 182}]}  # fmt: skip
    missing = {**good, "to": {"id": "1"}}
    for assoc in (wrong_type, missing):
        status, _, _ = await call(
            "POST", "/crm/v3/objects/calls", {"properties": VALID, "associations": [assoc]}
        )
        assert status == 400
    status, body, _ = await call(
        "POST", "/crm/v3/objects/calls", {"properties": VALID, "associations": [good]}
    )
    assert status == 201
    assert state.calls[body["id"]].associations == [contact]


async def test_unique_key_property_and_batch_rules(hub: tuple[sim.HubSpotState, Any]) -> None:
    state, call = hub
    state.key_unique = True  # a portal that allowed a unique call property
    keyed = {**VALID, "sscl_call_key": "s-1:1"}
    assert (await call("POST", "/crm/v3/objects/calls", {"properties": keyed}))[0] == 201
    status, body, _ = await call("POST", "/crm/v3/objects/calls", {"properties": keyed})
    assert status == 400
    assert "INVALID_UNIQUE_VALUE" in body["message"]

    too_many = {"inputs": [{"properties": VALID, "associations": []}] * 101}
    assert (await call("POST", "/crm/v3/objects/calls/batch/create", too_many))[0] == 400
    no_assoc = {"inputs": [{"properties": VALID}]}
    assert (await call("POST", "/crm/v3/objects/calls/batch/create", no_assoc))[0] == 400
    assert len(state.calls) == 1

    status, body, _ = await call(
        "GET", "/crm/v3/objects/calls/s-1:1?idProperty=hs_call_title", None
    )
    assert status == 400
    assert "not a unique value property" in body["message"]
    status, body, _ = await call("GET", "/crm/v3/objects/calls/s-1:1?idProperty=sscl_call_key")
    assert status == 200
    assert body["properties"]["sscl_call_key"] == "s-1:1"
    status, body, _ = await call("GET", "/crm/v3/properties/calls/sscl_call_key")
    assert status == 200
    assert body["hasUniqueValue"] is True


async def test_calls_key_property_is_plain_by_default(hub: tuple[sim.HubSpotState, Any]) -> None:
    """HubSpot does not document unique-value properties for calls: repeats are accepted and
    the key cannot be an idProperty; the definition says so."""
    state, call = hub
    keyed = {**VALID, "sscl_call_key": "s-1:1"}
    for _ in range(2):
        assert (await call("POST", "/crm/v3/objects/calls", {"properties": keyed}))[0] == 201
    assert len(state.calls) == 2
    status, body, _ = await call("GET", "/crm/v3/properties/calls/sscl_call_key")
    assert status == 200
    assert body["hasUniqueValue"] is False
    status, _, _ = await call("GET", "/crm/v3/objects/calls/s-1:1?idProperty=sscl_call_key")
    assert status == 400
    state.key_property = False
    status, body, _ = await call("GET", "/crm/v3/properties/calls/sscl_call_key")
    assert status == 404
    assert body["category"] == "OBJECT_NOT_FOUND"


async def test_auth_and_rate_limit_headers(hub: tuple[sim.HubSpotState, Any]) -> None:
    state, call = hub
    status, body, _ = await call("GET", "/crm/v3/owners", headers={})
    assert status == 401
    assert body["category"] == "INVALID_AUTHENTICATION"

    state.burst = 2
    seen = [await call("GET", "/crm/v3/owners") for _ in range(3)]
    assert [s for s, _, _ in seen] == [200, 200, 429]
    assert seen[0][2]["X-HubSpot-RateLimit-Max"] == "2"
    assert seen[0][2]["X-HubSpot-RateLimit-Remaining"] == "1"
    assert seen[1][2]["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert seen[2][1]["errorType"] == "RATE_LIMIT"
    assert seen[2][1]["policyName"] == "TEN_SECONDLY_ROLLING"
    status, _, headers = await call("POST", "/crm/v3/objects/calls/search", {"filterGroups": []})
    assert status == 200  # search has its own limit and sends no rate-limit headers
    assert "X-HubSpot-RateLimit-Remaining" not in headers


async def test_oauth_tokens_expire(http_session: aiohttp.ClientSession) -> None:
    now = [1_000.0]
    state = sim.HubSpotState(private_token=None, token_ttl=1800, clock=lambda: now[0])
    async with serve(sim.create_app(state)) as url:
        form = {"grant_type": "refresh_token", "client_id": sim.CLIENT_ID,
                "client_secret": sim.CLIENT_SECRET, "refresh_token": sim.REFRESH_TOKEN}  # fmt: skip
        async with http_session.post(f"{url}/oauth/v1/token", data=form) as resp:
            grant = await resp.json()
        assert grant["expires_in"] == 1800
        headers = {"Authorization": f"Bearer {grant['access_token']}"}
        async with http_session.get(f"{url}/crm/v3/owners", headers=headers) as resp:
            assert resp.status == 200
        now[0] += 1800
        async with http_session.get(f"{url}/crm/v3/owners", headers=headers) as resp:
            assert resp.status == 401
            assert (await resp.json())["category"] == "EXPIRED_AUTHENTICATION"
        async with http_session.post(
            f"{url}/oauth/v1/token", data={**form, "refresh_token": "nope"}
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["status"] == "BAD_REFRESH_TOKEN"
