"""HubSpot writer: whole flows against the HubSpot stand-in over loopback, edge cases with aioresponses."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from tests.crm.conftest import START, make_call

from sscl_daemon.calls.model import CallResult, Direction
from sscl_daemon.config import (
    ContactSettings,
    HubSpotOptions,
    NoContactPolicy,
    OAuthClientSettings,
    Secret,
    SeveralContactsPolicy,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm import content, hubspot
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    PermanentFailure,
    RetryLater,
    Skipped,
    WriteContext,
)
from sscl_daemon.crm.hubspot import HubSpotWriter, KeyMode
from sscl_daemon.simulator.crm import hubspot as sim
from sscl_daemon.simulator.crm.common import serve

NUMBER = "+14155550123"
FIRST = WriteContext()
RETRY = WriteContext(attempt=2)
UNCERTAIN = WriteContext(attempt=2, uncertain=True)


@dataclass
class Portal:
    state: sim.HubSpotState
    url: str
    session: aiohttp.ClientSession
    mode: KeyMode

    def writer(
        self, *, contacts: ContactSettings | None = None, token: str | None = None, **kw: Any
    ) -> HubSpotWriter:
        opts = HubSpotOptions(self.url, Secret(token or sim.PRIVATE_TOKEN))
        settings = WriterSettings(
            "hubspot", WriterType.HUBSPOT, opts, contacts=contacts or ContactSettings(), **kw
        )
        return HubSpotWriter(settings, self.session)

    def oauth_writer(self, refresh_token: str = sim.REFRESH_TOKEN) -> HubSpotWriter:
        oauth = OAuthClientSettings(sim.CLIENT_ID, Secret(sim.CLIENT_SECRET), Secret(refresh_token))
        opts = HubSpotOptions(self.url, None, oauth)
        return HubSpotWriter(WriterSettings("hubspot", WriterType.HUBSPOT, opts), self.session)

    def created(self) -> list[sim.HsObject]:
        return list(self.state.calls.values())


@pytest.fixture(params=list(KeyMode))
async def portal(
    http_session: aiohttp.ClientSession, request: pytest.FixtureRequest
) -> AsyncIterator[Portal]:
    """A stand-in portal whose key property is unique (a portal that allows it) or a plain
    property (HubSpot's documented calls): every test runs in both key modes."""
    mode: KeyMode = request.param
    state = sim.HubSpotState(key_unique=mode is KeyMode.UNIQUE)
    async with serve(sim.create_app(state)) as url:
        yield Portal(state, url, http_session, mode)


def assert_create_body(body: Mapping[str, object]) -> None:
    """``SimplePublicObjectInputForCreate`` of the published calls spec, field by field."""
    assert set(body) <= {"properties", "associations", "objectWriteTraceId"}
    props = body["properties"]
    assert isinstance(props, dict)
    assert all(isinstance(v, str) for v in props.values()), props
    assert set(props) <= sim.CALL_PROPERTIES | {hubspot.KEY_PROPERTY}
    assert isinstance(body["associations"], list)
    for assoc in body["associations"]:
        assert set(assoc) == {"to", "types"}
        assert set(assoc["to"]) == {"id"}
        assert isinstance(assoc["to"]["id"], str)
        assert assoc["types"] == [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}
        ]


# -- create, content, request bodies ---------------------------------------------------------


async def test_create_maps_every_property_in_hubspot_terms(portal: Portal) -> None:
    contact = portal.state.add_contact(NUMBER, "Ann", "Lee")
    owner = portal.state.add_owner("alice@example.com")
    call = make_call(recording_ids=("rec-1",), hold_ms=3000, transferred_to="Bob (ext. 102)")

    result = await portal.writer().write(call, FIRST)

    assert isinstance(result, Created)
    record = portal.state.calls[result.record_id]
    props = record.properties
    assert props["hs_timestamp"] == "2026-11-24T09:30:00.000Z"
    assert props["hs_call_title"] == f"Inbound call from Ann Lee ({NUMBER})"
    assert props["hs_call_direction"] == "INBOUND"
    assert props["hs_call_disposition"] == hubspot.DISPOSITION_CONNECTED
    assert props["hs_call_status"] == "COMPLETED"
    assert props["hs_call_duration"] == "125000"  # milliseconds of talk, not ring or hold
    assert props["hs_call_from_number"] == NUMBER
    assert "hs_call_to_number" not in props
    # HubSpot plays only audio it can fetch: the recording is a link a RingCentral user
    # opens (recordings = "link", the default), never RingCentral's token-only URL.
    assert "hs_call_recording_url" not in props
    assert content.player_link(
        "https://media.ringcentral.com/restapi/v1.0/account/37439510/recording/rec-1/content"
    ) in html.unescape(props["hs_call_body"])
    assert props["hubspot_owner_id"] == owner
    assert props["hs_call_external_id"] == "s-1001"
    assert props[hubspot.KEY_PROPERTY] == "s-1001:62001"
    body = props["hs_call_body"]
    for line in ("Queue time: 00:00:04", "Ring time: 00:00:12", "Hold time: 00:00:03"):
        assert f"<p>{line}</p>" in body
    assert "Transferred to: Bob (ext. 102)" in body
    assert "sscl-key: s-1001:62001" in body
    assert record.associations == [contact]
    sent = [r.body for r in portal.state.requests if r.path == "/crm/v3/objects/calls"]
    assert len(sent) == 1
    assert isinstance(sent[0], dict)
    assert_create_body(sent[0])


@pytest.mark.parametrize(
    ("result", "direction", "disposition", "status"),
    [
        (CallResult.MISSED, Direction.INBOUND, hubspot.DISPOSITION_NO_ANSWER, "NO_ANSWER"),
        (CallResult.VOICEMAIL, Direction.INBOUND, hubspot.DISPOSITION_NO_ANSWER, "NO_ANSWER"),
        (CallResult.BUSY, Direction.OUTBOUND, hubspot.DISPOSITION_BUSY, "BUSY"),
        (CallResult.REJECTED, Direction.OUTBOUND, hubspot.DISPOSITION_NO_ANSWER, "NO_ANSWER"),
    ],
)
def test_outcomes_map_to_hubspot_dispositions(
    result: CallResult, direction: Direction, disposition: str, status: str
) -> None:
    call = make_call(result=result, direction=direction, answer_time=None, talk_ms=0)
    props = hubspot.call_properties(call)
    assert props["hs_call_disposition"] == disposition
    assert props["hs_call_status"] == status
    assert props["hs_call_duration"] == "0"
    if direction is Direction.OUTBOUND:
        assert props["hs_call_to_number"] == NUMBER
        assert "hs_call_from_number" not in props


def test_internal_call_has_no_hubspot_direction() -> None:
    call = make_call(direction=Direction.INTERNAL, external_number=None, internal_number="102")
    props = hubspot.call_properties(call)
    assert "hs_call_direction" not in props
    assert props["hs_call_title"] == "Internal call with 102"


# -- exactly once ----------------------------------------------------------------------------


async def test_repeat_answers_already_existed_without_a_second_record(portal: Portal) -> None:
    writer = portal.writer()
    first = await writer.write(make_call(), FIRST)
    again = await writer.write(make_call(), RETRY)
    assert isinstance(first, Created)
    assert again == AlreadyExisted(first.record_id)
    assert len(portal.created()) == 1
    assert writer.key_mode is portal.mode
    assert portal.state.count("GET", "/crm/v3/properties/calls/sscl_call_key") == 1


async def test_unique_key_refusal_is_read_back_even_on_a_first_attempt(
    http_session: aiohttp.ClientSession,
) -> None:
    state = sim.HubSpotState(key_unique=True)
    async with serve(sim.create_app(state)) as url:
        portal = Portal(state, url, http_session, KeyMode.UNIQUE)
        writer = portal.writer()
        first = await writer.write(make_call(), FIRST)
        again = await writer.write(make_call(), FIRST)
    assert isinstance(first, Created)
    assert again == AlreadyExisted(first.record_id)
    assert len(portal.created()) == 1


@pytest.mark.parametrize(
    ("status", "body", "conflict"),
    [
        (409, {"status": "error", "message": "exists", "category": "CONFLICT"}, True),
        (
            400,
            {
                "category": "VALIDATION_ERROR",
                "errors": [{"message": "x", "context": {"propertyName": ["sscl_call_key"]}}],
            },
            True,
        ),
        (
            400,
            {
                "category": "VALIDATION_ERROR",
                "errors": [{"message": "x", "context": {"propertyName": ["hs_call_body"]}}],
            },
            False,
        ),
        (400, {"category": "VALIDATION_ERROR", "message": "sscl_call_key must be unique"}, False),
        (
            400,
            {"category": "VALIDATION_ERROR", "errors": [{"message": "sscl_call_key: in use"}]},
            True,
        ),
    ],
)
def test_duplicate_is_recognised_by_the_documented_error_shape(
    status: int, body: dict[str, object], conflict: bool
) -> None:
    assert hubspot.is_key_conflict(status, body, "sscl_call_key") is conflict


async def test_answer_lost_after_send_is_found_on_the_uncertain_retry(portal: Portal) -> None:
    portal.state.faults.stall(after=True, path="/crm/v3/objects/calls", method="POST", exact=True)
    writer = portal.writer(timeout=0.3)

    lost = await writer.write(make_call(), FIRST)
    assert isinstance(lost, RetryLater)
    assert "timed out" in lost.reason
    assert len(portal.created()) == 1  # HubSpot stored it; we never heard

    retry = await writer.write(make_call(), UNCERTAIN)
    assert retry == AlreadyExisted(portal.created()[0].id)
    assert len(portal.created()) == 1
    if portal.mode is KeyMode.UNIQUE:
        reads = [r for r in portal.state.requests if r.path.endswith("/calls/batch/read")]
        assert reads[-1].body == {
            "idProperty": "sscl_call_key",
            "inputs": [{"id": "s-1001:62001"}],
            "properties": ["sscl_call_key"],
            "propertiesWithHistory": [],
        }
    else:
        searches = [r.body for r in portal.state.requests if r.path.endswith("/calls/search")]
        assert hubspot.key_search(["s-1001:62001"]) in searches


async def test_uncertain_retry_does_not_depend_on_the_search_index(
    http_session: aiohttp.ClientSession,
) -> None:
    state = sim.HubSpotState(key_unique=True)
    async with serve(sim.create_app(state)) as url:
        await _uncertain_retry_without_search(Portal(state, url, http_session, KeyMode.UNIQUE))


async def _uncertain_retry_without_search(portal: Portal) -> None:
    portal.state.index_delay = 3600.0  # nothing we create shows up in search for an hour
    portal.state.faults.stall(after=True, path="/crm/v3/objects/calls", method="POST", exact=True)
    writer = portal.writer(timeout=0.3)
    assert isinstance(await writer.write(make_call(), FIRST), RetryLater)
    async with portal.session.post(
        f"{portal.url}/crm/v3/objects/calls/search",
        json={"filterGroups": [], "limit": 10},
        headers={"Authorization": f"Bearer {sim.PRIVATE_TOKEN}"},
    ) as search:
        assert (await search.json())["total"] == 0
    retry = await writer.write(make_call(), UNCERTAIN)
    assert retry == AlreadyExisted(portal.created()[0].id)
    assert len(portal.created()) == 1


@pytest.mark.parametrize(
    "client_props",
    [
        {"hs_call_body": "Inbound call<br>Session Id: 9001<br>Duration: 2:05"},
        {"hs_call_external_id": "s-1001", "hs_call_body": "logged by the phone app"},
    ],
    ids=["session-id-in-body", "external-id"],
)
async def test_call_logged_by_the_users_client_is_recognised(
    portal: Portal, client_props: dict[str, str]
) -> None:
    stamp = (START + timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    client = portal.state.add_call({"hs_timestamp": stamp, **client_props})

    result = await portal.writer().write(make_call(), FIRST)

    assert result == AlreadyExisted(client)
    assert len(portal.created()) == 1


async def test_our_log_for_another_user_of_the_session_is_not_a_match(portal: Portal) -> None:
    writer = portal.writer()
    first = await writer.write(make_call(extension_id="62001"), FIRST)
    second = await writer.write(make_call(extension_id="62002", extension_number="102"), FIRST)
    assert isinstance(first, Created)
    assert isinstance(second, Created)
    assert first.record_id != second.record_id


# -- contacts and owners ---------------------------------------------------------------------


async def test_contact_not_found_logs_unassociated(portal: Portal) -> None:
    result = await portal.writer().write(make_call(), FIRST)
    assert isinstance(result, Created)
    assert portal.state.calls[result.record_id].associations == []


async def test_contact_not_found_skip_policy_skips_the_call(portal: Portal) -> None:
    writer = portal.writer(contacts=ContactSettings(no_contact=NoContactPolicy.SKIP))
    result = await writer.write(make_call(), FIRST)
    assert result == Skipped(f"no contact matches {NUMBER} (contacts.no_contact = skip)")
    assert portal.created() == []
    # In a batch the skipped call keeps its own answer; the others are still logged.
    contact = portal.state.add_contact("(415) 555-0124", "Ann", "Lee")
    other = make_call(telephony_session_id="s-9", external_number="+14155550124")
    results = await writer.write_batch(
        [(make_call(telephony_session_id="s-8"), FIRST), (other, FIRST)]
    )
    assert isinstance(results[0], Skipped)
    assert isinstance(results[1], Created)
    assert portal.state.calls[results[1].record_id].associations == [contact]


async def test_contact_not_found_create_policy_creates_and_associates(portal: Portal) -> None:
    writer = portal.writer(contacts=ContactSettings(no_contact=NoContactPolicy.CREATE))
    result = await writer.write(make_call(external_name="Zed Zane"), FIRST)
    assert isinstance(result, Created)
    (made,) = portal.state.contacts.values()
    assert made.properties == {"phone": NUMBER, "firstname": "Zed Zane"}
    assert portal.state.calls[result.record_id].associations == [made.id]


async def test_contact_found_by_normalised_number_is_cached(portal: Portal) -> None:
    contact = portal.state.add_contact("(415) 555-0123", "Ann", "Lee")
    writer = portal.writer()
    for n in range(3):
        result = await writer.write(make_call(telephony_session_id=f"s-{n}"), FIRST)
        assert isinstance(result, Created)
        assert portal.state.calls[result.record_id].associations == [contact]
    assert portal.state.count("POST", "/contacts/search") == 1


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (SeveralContactsPolicy.ALL, 2),
        (SeveralContactsPolicy.FIRST, 1),
        (SeveralContactsPolicy.UNASSOCIATED, 0),
        (SeveralContactsPolicy.SKIP, None),
    ],
)
async def test_several_contacts_follow_the_policy(
    portal: Portal, policy: SeveralContactsPolicy, expected: int | None
) -> None:
    portal.state.add_contact(NUMBER, "Ann", "Lee")
    portal.state.add_contact(NUMBER, "Ben", "Lee")
    writer = portal.writer(contacts=ContactSettings(several_contacts=policy))
    result = await writer.write(make_call(), FIRST)
    if expected is None:
        assert isinstance(result, Skipped)
        assert "2 contacts match" in result.reason
        assert portal.created() == []
        return
    assert isinstance(result, Created)
    assert len(portal.state.calls[result.record_id].associations) == expected


async def test_owner_from_table_by_id_and_by_email(portal: Portal) -> None:
    bob = portal.state.add_owner("bob@example.com")
    carol = portal.state.add_owner("carol@example.com")
    owners = {"101": bob, "102": "carol@example.com"}
    writer = portal.writer(contacts=ContactSettings(owners=owners))
    by_id = await writer.write(make_call(), FIRST)
    by_mail = await writer.write(
        make_call(extension_id="62002", extension_number="102", user_email="x@example.com"), FIRST
    )
    assert isinstance(by_id, Created)
    assert isinstance(by_mail, Created)
    assert portal.state.calls[by_id.record_id].properties["hubspot_owner_id"] == bob
    assert portal.state.calls[by_mail.record_id].properties["hubspot_owner_id"] == carol


async def test_owner_by_user_email_else_none(portal: Portal) -> None:
    alice = portal.state.add_owner("Alice@Example.com")
    writer = portal.writer()
    mapped = await writer.write(make_call(), FIRST)
    unmapped = await writer.write(
        make_call(extension_id="62009", user_email="nobody@example.com"), FIRST
    )
    assert isinstance(mapped, Created)
    assert isinstance(unmapped, Created)
    assert portal.state.calls[mapped.record_id].properties["hubspot_owner_id"] == alice
    assert "hubspot_owner_id" not in portal.state.calls[unmapped.record_id].properties


# -- auth ------------------------------------------------------------------------------------


async def test_rejected_private_app_token_is_permanent_and_secret_free(portal: Portal) -> None:
    result = await portal.writer(token="pat-wrong-token").write(make_call(), FIRST)
    assert isinstance(result, PermanentFailure)
    assert "credentials rejected (HTTP 401)" in result.reason
    assert "pat-wrong-token" not in result.reason


async def test_expired_oauth_token_is_refreshed_once(portal: Portal) -> None:
    writer = portal.oauth_writer()
    assert isinstance(await writer.write(make_call(), FIRST), Created)
    portal.state.access_tokens = {t: 0.0 for t in portal.state.access_tokens}  # all expired

    result = await writer.write(make_call(telephony_session_id="s-2"), FIRST)

    assert isinstance(result, Created)
    assert portal.state.token_requests == 2
    token_form = next(r.raw for r in portal.state.requests if r.path == "/oauth/v1/token")
    assert b"grant_type=refresh_token" in token_form


async def test_refused_refresh_token_is_permanent_with_a_clear_reason(portal: Portal) -> None:
    result = await portal.oauth_writer("stale-refresh").write(make_call(), FIRST)
    assert isinstance(result, PermanentFailure)
    assert "credentials rejected" in result.reason
    assert "refresh_token" in result.reason
    assert "stale-refresh" not in result.reason
    assert sim.CLIENT_SECRET not in result.reason


# -- validation, rate limits, outages --------------------------------------------------------


async def test_missing_setup_is_a_permanent_failure_keeping_hubspots_reason(portal: Portal) -> None:
    portal.state.key_property = False
    result = await portal.writer().write(make_call(), FIRST)
    assert isinstance(result, PermanentFailure)
    assert 'Property "sscl_call_key" does not exist' in result.reason
    assert "HTTP 404" in result.reason
    assert "docs/crm-setup.md" in result.reason
    assert portal.created() == []


async def test_exhausted_window_holds_requests_back_then_429_names_the_window(
    portal: Portal,
) -> None:
    portal.state.burst = 1
    first = portal.writer()
    held = await first.write(make_call(), FIRST)  # the owners list answers Remaining: 0
    assert isinstance(held, RetryLater)
    assert "window closed" in held.reason
    assert held.delay is not None
    assert 9.0 < held.delay <= 10.0  # X-HubSpot-RateLimit-Interval-Milliseconds
    # Only the key property's definition was read; the budget ended there.
    assert portal.state.count("POST", "/crm/v3/objects/calls") == 0

    refused = await portal.writer().write(make_call(), FIRST)  # a fresh limiter sends anyway
    assert isinstance(refused, RetryLater)
    assert refused.delay == 10.0
    assert "ten_secondly_rolling" in refused.reason
    assert portal.created() == []


async def test_429_with_retry_after(portal: Portal) -> None:
    portal.state.faults.fail(
        429,
        path="/crm/v3/objects/calls/search",
        headers={"Retry-After": "7"},
        body={
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "policyName": "SECONDLY",
        },
    )
    result = await portal.writer().write(make_call(), FIRST)
    assert isinstance(result, RetryLater)
    assert result.delay == 7.0
    assert portal.created() == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_retry(portal: Portal, status: int) -> None:
    portal.state.faults.fail(status, path="/crm/v3/objects/calls", method="POST")
    result = await portal.writer().write(make_call(), FIRST)
    assert isinstance(result, RetryLater)
    assert f"HTTP {status}" in result.reason


async def test_timeout_before_hubspot_saw_it_retries_then_creates(portal: Portal) -> None:
    portal.state.faults.stall(after=False, path="/crm/v3/objects/calls", method="POST", exact=True)
    writer = portal.writer(timeout=0.3)
    lost = await writer.write(make_call(), FIRST)
    assert isinstance(lost, RetryLater)
    assert portal.created() == []
    if portal.mode is KeyMode.SEARCH:
        # Not found by search: the index may lag, so wait index_settle before creating.
        now = [1000.0]
        writer._clock = lambda: now[0]
        held = await writer.write(make_call(), UNCERTAIN)
        assert isinstance(held, RetryLater)
        assert held.uncertain
        assert held.delay == pytest.approx(hubspot.INDEX_SETTLE)
        now[0] += hubspot.INDEX_SETTLE
    assert isinstance(await writer.write(make_call(), UNCERTAIN), Created)
    assert len(portal.created()) == 1


# -- batches ---------------------------------------------------------------------------------


async def test_batch_creates_in_chunks_of_100_and_maps_results_by_key(portal: Portal) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(10)]
    for n, number in enumerate(numbers):
        portal.state.add_contact(number, f"C{n}", "Test")
    calls = [
        make_call(telephony_session_id=f"s-{n}", external_number=numbers[n % 10])
        for n in range(150)
    ]
    results = await portal.writer().write_batch([(c, FIRST) for c in calls])

    assert all(isinstance(r, Created) for r in results)
    for call, result in zip(calls, results, strict=True):
        assert isinstance(result, Created)
        assert portal.state.calls[result.record_id].properties["sscl_call_key"] == call.key
    creates = [r for r in portal.state.requests if r.path.endswith("/batch/create")]
    assert [len(r.body["inputs"]) for r in creates] == [100, 50]  # type: ignore[index]
    for request in creates:
        for item in request.body["inputs"]:  # type: ignore[index]
            assert_create_body(item)
    assert portal.state.count("POST", "/contacts/search") == 10
    assert portal.state.count("POST", "/calls/search") == 2


async def test_batch_settles_existing_and_invalid_items_one_by_one(portal: Portal) -> None:
    writer = portal.writer(contacts=ContactSettings(owners={"199": "999999"}))
    done = await writer.write(make_call(telephony_session_id="s-0"), FIRST)
    assert isinstance(done, Created)
    items = [
        (make_call(telephony_session_id="s-0"), UNCERTAIN),
        (make_call(telephony_session_id="s-1"), FIRST),
        (make_call(telephony_session_id="s-2", extension_number="199"), FIRST),
        (make_call(telephony_session_id="s-3"), FIRST),
    ]
    results = await writer.write_batch(items)

    assert results[0] == AlreadyExisted(done.record_id)
    assert isinstance(results[1], Created)
    assert isinstance(results[3], Created)
    assert isinstance(results[2], PermanentFailure)
    assert "not a valid owner id" in results[2].reason
    assert sorted(c.properties["sscl_call_key"] for c in portal.created()) == [
        "s-0:62001",
        "s-1:62001",
        "s-3:62001",
    ]


# -- aioresponses: HubSpot's answers as documented -------------------------------------------

BASE = "https://api.hubapi.com"


def _mocked_writer(session: aiohttp.ClientSession) -> HubSpotWriter:
    settings = WriterSettings(
        "hubspot", WriterType.HUBSPOT, HubSpotOptions(BASE, Secret("pat-secret-123"))
    )
    return HubSpotWriter(settings, session)


SEARCH_EMPTY = {"total": 0, "results": []}


def _key_property(mock: aioresponses) -> None:
    """The key property's definition: a unique one."""
    mock.get(
        f"{BASE}/crm/v3/properties/calls/sscl_call_key",
        payload={"name": "sscl_call_key", "type": "string", "hasUniqueValue": True},
        repeat=True,
    )


def _empty_lookups(mock: aioresponses) -> None:
    """No client logs, no contacts, no owners: the writer goes straight to the create."""
    _key_property(mock)
    mock.post(f"{BASE}/crm/v3/objects/calls/search", payload=SEARCH_EMPTY)
    mock.post(f"{BASE}/crm/v3/objects/contacts/search", payload=SEARCH_EMPTY)
    mock.get(re.compile(rf"{BASE}/crm/v3/owners.*"), payload={"results": []})


async def test_documented_429_body_with_http_date_retry_after(
    http_session: aiohttp.ClientSession,
) -> None:
    with aioresponses() as mock:
        _empty_lookups(mock)
        mock.post(
            f"{BASE}/crm/v3/objects/calls",
            status=429,
            headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
            payload={
                "status": "error",
                "message": "You have reached your daily limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
                "policyName": "DAILY",
            },
        )
        result = await _mocked_writer(http_session).write(make_call(), FIRST)
    assert isinstance(result, RetryLater)
    assert result.delay == 0.0  # a date in the past: go as soon as the dispatcher likes
    assert "daily limit" in result.reason


async def test_connection_refused_retries_and_validation_error_keeps_message(
    http_session: aiohttp.ClientSession,
) -> None:
    writer = _mocked_writer(http_session)
    with aioresponses() as mock:
        _key_property(mock)
        mock.post(
            f"{BASE}/crm/v3/objects/calls/search",
            exception=aiohttp.ClientConnectionError("refused"),
        )
        down = await writer.write(make_call(), FIRST)
    assert isinstance(down, RetryLater)
    assert "connection failed" in down.reason

    with aioresponses() as mock:
        _empty_lookups(mock)
        mock.post(
            f"{BASE}/crm/v3/objects/calls",
            status=400,
            payload={
                "status": "error",
                "message": "Property values were not valid: hs_call_disposition",
                "correlationId": "a43683b0-5717-4ceb-80b4-104d02915d8c",
                "category": "VALIDATION_ERROR",
            },
        )
        refused = await writer.write(make_call(), FIRST)
    assert isinstance(refused, PermanentFailure)
    assert "Property values were not valid: hs_call_disposition" in refused.reason
    assert "pat-secret-123" not in refused.reason


async def test_writer_repr_hides_the_token_and_bad_options_are_named(
    http_session: aiohttp.ClientSession,
) -> None:
    with pytest.raises(ValueError, match="access_token"):
        HubSpotWriter(
            WriterSettings("hubspot", WriterType.HUBSPOT, HubSpotOptions(BASE, None)), http_session
        )
    settings = WriterSettings("hs", WriterType.HUBSPOT, HubSpotOptions(BASE, Secret("pat-x-1")))
    writer = HubSpotWriter(settings, http_session)
    assert "pat-x-1" not in repr(writer)
    assert "pat-x-1" not in repr(writer.http.auth)


async def test_stand_in_mounted_under_a_prefix_with_oauth(
    http_session: aiohttp.ClientSession,
) -> None:
    state = sim.HubSpotState(private_token=None)
    root = web.Application()
    root.add_subapp("/hubspot", sim.create_app(state))
    async with serve(root) as base:
        oauth = OAuthClientSettings(
            sim.CLIENT_ID, Secret(sim.CLIENT_SECRET), Secret(sim.REFRESH_TOKEN)
        )
        opts = HubSpotOptions(f"{base}/hubspot", None, oauth)
        writer = HubSpotWriter(WriterSettings("hs", WriterType.HUBSPOT, opts), http_session)
        assert isinstance(await writer.write(make_call(), FIRST), Created)
    assert len(state.calls) == 1
    assert state.token_requests == 1
    assert all(r.path.startswith("/hubspot/") for r in state.requests)


def _oauth_mocked_writer(session: aiohttp.ClientSession) -> HubSpotWriter:
    oauth = OAuthClientSettings("cid", Secret("csecret"), Secret("rtoken"))
    opts = HubSpotOptions(BASE, None, oauth)
    return HubSpotWriter(WriterSettings("hubspot", WriterType.HUBSPOT, opts), session)


async def test_401_after_a_fresh_token_is_permanent(http_session: aiohttp.ClientSession) -> None:
    with aioresponses() as mock:
        for n in range(2):
            mock.post(
                f"{BASE}/oauth/v1/token",
                payload={"access_token": f"at-{n}", "refresh_token": "rtoken", "expires_in": 1800},
            )
        mock.get(
            f"{BASE}/crm/v3/properties/calls/sscl_call_key",
            status=401,
            payload={
                "status": "error",
                "message": "Authentication credentials not found.",
                "correlationId": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
                "category": "INVALID_AUTHENTICATION",
            },
            repeat=True,
        )
        mock.post(
            f"{BASE}/crm/v3/objects/calls/search",
            status=401,
            payload={
                "status": "error",
                "message": "Authentication credentials not found.",
                "correlationId": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
                "category": "INVALID_AUTHENTICATION",
            },
            repeat=True,
        )
        result = await _oauth_mocked_writer(http_session).write(make_call(), FIRST)
    assert isinstance(result, PermanentFailure)
    assert "credentials rejected (HTTP 401)" in result.reason
    assert "Authentication credentials not found." in result.reason
    assert "at-1" not in result.reason
    assert "rtoken" not in result.reason


async def test_multi_status_batch_answer_is_read_per_input(
    http_session: aiohttp.ClientSession,
) -> None:
    calls = [make_call(telephony_session_id=f"s-{n}") for n in range(2)]
    with aioresponses() as mock:
        _empty_lookups(mock)
        mock.post(
            f"{BASE}/crm/v3/objects/calls/batch/create",
            status=207,
            payload={
                "status": "COMPLETE",
                "results": [{"id": "901", "properties": {"sscl_call_key": calls[1].key}}],
                "numErrors": 1,
                "errors": [
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": "hs_call_body is too long",
                        "context": {"objectWriteTraceId": [calls[0].key]},
                    }
                ],
                "startedAt": "2026-11-24T09:40:00Z",
                "completedAt": "2026-11-24T09:40:01Z",
            },
        )
        results = await _mocked_writer(http_session).write_batch([(c, FIRST) for c in calls])
    assert results[1] == Created("901")
    assert isinstance(results[0], PermanentFailure)
    assert "hs_call_body is too long" in results[0].reason
