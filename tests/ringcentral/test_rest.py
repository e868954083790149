"""RestClient: paging, 401 refresh, 429 Retry-After, 5xx retries, rate-limit headers, 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from tests.ringcentral.helpers import FakeClock, fast_retry, roomy_limiter, settings
from tests.ringcentral.scripted import Canned, Scripted, scripted_server

from sscl_daemon.ringcentral.auth import Authenticator
from sscl_daemon.ringcentral.ratelimit import Budget, GroupLimiter, RateGroup, retry_after_seconds
from sscl_daemon.ringcentral.records import as_id
from sscl_daemon.ringcentral.rest import (
    CALL_LOG_PATH,
    EXTENSION_PATH,
    SESSION_PATH,
    ApiError,
    RestClient,
)
from sscl_daemon.ringcentral.retry import RetriesExhausted

TOKEN = "/restapi/oauth/token"
FROM = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
TO = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)


def token_body(n: int) -> dict[str, object]:
    return {
        "access_token": f"access-{n}",
        "expires_in": 3600,
        "refresh_token": f"refresh-{n}",
        "refresh_token_expires_in": 604800,
        "owner_id": "100",
        "session_id": "ses-1",
    }


def record(n: int, tsid: str = "s-1") -> dict[str, object]:
    return {
        "id": f"rec{n}",
        "telephonySessionId": tsid,
        "startTime": "2026-01-01T10:00:00.000Z",
        "extension": {"id": 200 + n},
    }


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    async with scripted_server() as state:
        state.add("POST", TOKEN, Canned(body=token_body(1)), Canned(body=token_body(2)))
        yield state


@pytest.fixture
async def client(server: Scripted) -> AsyncIterator[tuple[RestClient, FakeClock]]:
    clock = FakeClock()
    limiter = roomy_limiter(clock)
    async with aiohttp.ClientSession() as http:
        auth = Authenticator(
            http,
            settings(server.base_url),
            limiter=limiter,
            retry=fast_retry(clock),
            clock=clock,
        )
        yield (
            RestClient(http, auth, server.base_url, limiter=limiter, retry=fast_retry(clock)),
            clock,
        )


async def test_call_log_follows_next_page_links(
    server: Scripted, client: tuple[RestClient, FakeClock]
) -> None:
    rest, _ = client
    next_uri = f"https://platform.ringcentral.com{CALL_LOG_PATH}?view=Detailed&page=2&perPage=2"
    server.add(
        "GET",
        CALL_LOG_PATH,
        Canned(
            body={"records": [record(1), record(2)], "navigation": {"nextPage": {"uri": next_uri}}}
        ),
        Canned(body={"records": [record(3)], "navigation": {}}),
    )
    pages = [page async for page in rest.call_log_pages(FROM, TO, per_page=2)]
    assert [[r.id for r in page.records] for page in pages] == [["rec1", "rec2"], ["rec3"]]
    first_record = pages[0].records[0]
    assert as_id(first_record.extension.id if first_record.extension else None) == "201"
    first, second = server.requests("GET", CALL_LOG_PATH)
    assert first.query["dateFrom"] == "2026-01-01T10:00:00.000Z"
    assert first.query["dateTo"] == "2026-01-01T11:00:00.000Z"
    assert first.query["view"] == "Detailed"
    assert second.query["page"] == "2"
    assert first.headers["Authorization"] == "Bearer access-1"


async def test_401_refreshes_the_token_once_and_retries(
    server: Scripted, client: tuple[RestClient, FakeClock]
) -> None:
    rest, _ = client
    server.add(
        "GET",
        SESSION_PATH + "s-9",
        Canned(401, {"errorCode": "OAU-213", "message": "Token not found"}),
        Canned(body={"id": "s-9", "parties": []}),
    )
    session = await rest.telephony_session("s-9")
    assert session is not None
    assert session["id"] == "s-9"
    tokens = [s.headers["Authorization"] for s in server.requests("GET", SESSION_PATH + "s-9")]
    assert tokens == ["Bearer access-1", "Bearer access-2"]
    assert server.requests("POST", TOKEN)[1].form["grant_type"] == "refresh_token"


async def test_telephony_session_404_means_gone(
    server: Scripted, client: tuple[RestClient, FakeClock]
) -> None:
    rest, _ = client
    server.add("GET", SESSION_PATH + "s-0", Canned(404, {"errorCode": "TAS-102"}))
    assert await rest.telephony_session("s-0") is None


async def test_503_without_retry_after_backs_off_briefly(
    server: Scripted, client: tuple[RestClient, FakeClock]
) -> None:
    rest, clock = client
    server.add(
        "GET", CALL_LOG_PATH, Canned(503), Canned(503), Canned(body={"records": [record(1)]})
    )
    started = clock.now
    pages = [page async for page in rest.call_log_pages(FROM, TO)]
    assert len(pages) == 1
    # two jittered backoff waits of the retry policy (at most 0.05 s here), not 60 s each
    assert len(clock.slept) == 2
    assert clock.now - started < 1.0


async def test_429_closes_the_group_for_retry_after(
    server: Scripted, client: tuple[RestClient, FakeClock]
) -> None:
    rest, clock = client
    server.add(
        "GET",
        CALL_LOG_PATH,
        Canned(429, {"errorCode": "CMN-301"}, {"Retry-After": "12"}),
        Canned(body={"records": [record(1)]}),
    )
    pages = [page async for page in rest.call_log_pages(FROM, TO)]
    assert len(pages) == 1
    assert clock.slept == [12.0]
    assert len(server.requests("GET", CALL_LOG_PATH)) == 2


async def test_exhausted_remaining_budget_pauses_the_group(
    server: Scripted, client: tuple[RestClient, FakeClock]
) -> None:
    rest, clock = client
    headers = {
        "X-Rate-Limit-Remaining": "0",
        "X-Rate-Limit-Window": "60",
        "X-Rate-Limit-Group": "heavy",
    }
    server.add("GET", CALL_LOG_PATH, Canned(body={"records": []}, headers=headers))
    [_ async for _ in rest.call_log_pages(FROM, TO)]
    assert clock.slept == []
    [_ async for _ in rest.call_log_pages(FROM, TO)]
    assert clock.slept == [60.0]


async def test_5xx_is_retried_then_gives_up(
    server: Scripted, client: tuple[RestClient, FakeClock]
) -> None:
    rest, clock = client
    server.add("GET", EXTENSION_PATH, Canned(502))
    with pytest.raises(RetriesExhausted):
        await rest.extensions()
    assert len(server.requests("GET", EXTENSION_PATH)) == 4
    assert len(clock.slept) == 3
    assert all(0 <= wait <= 0.05 for wait in clock.slept)


async def test_4xx_is_an_api_error_without_retry(
    server: Scripted, client: tuple[RestClient, FakeClock]
) -> None:
    rest, _ = client
    server.add(
        "GET",
        EXTENSION_PATH,
        Canned(403, {"errorCode": "InsufficientPermissions", "message": "Need ReadAccounts"}),
    )
    with pytest.raises(ApiError) as caught:
        await rest.extensions()
    assert caught.value.status == 403
    assert "InsufficientPermissions" in str(caught.value)
    assert "access-1" not in str(caught.value)
    assert len(server.requests("GET", EXTENSION_PATH)) == 1


async def test_extensions_are_paged(server: Scripted, client: tuple[RestClient, FakeClock]) -> None:
    rest, _ = client
    server.add(
        "GET",
        EXTENSION_PATH,
        Canned(
            body={"records": [{"id": 1, "type": "User"}], "navigation": {"nextPage": {"uri": "x"}}}
        ),
        Canned(body={"records": [{"id": 2, "type": "IvrMenu"}], "navigation": {}}),
    )
    records = await rest.extensions(per_page=1)
    assert [as_id(r.id) for r in records] == ["1", "2"]
    assert [s.query["page"] for s in server.requests("GET", EXTENSION_PATH)] == ["1", "2"]


def test_retry_after_parses_seconds_dates_and_defaults() -> None:
    assert retry_after_seconds({"Retry-After": "5"}) == 5.0
    assert retry_after_seconds({}) == 60.0
    assert retry_after_seconds({"Retry-After": "junk"}, default=30.0) == 30.0
    date = "Thu, 01 Jan 2026 10:00:30 GMT"
    assert retry_after_seconds({"Retry-After": date}, now=FROM.timestamp()) == pytest.approx(30.0)
    assert RateGroup.parse("heavy") is RateGroup.HEAVY


async def test_limiter_keeps_a_sliding_window_like_the_platform() -> None:
    clock = FakeClock()
    limiter = GroupLimiter({RateGroup.AUTH: Budget(3, 10.0)}, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(7):
        await limiter.acquire(RateGroup.AUTH)
        times.append(clock.now - 1000.0)
    # never more than 3 inside any 10 s window (a leaky bucket would let a 4th in at 3.3 s)
    assert times == [0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 20.0]
    await limiter.acquire(RateGroup.LIGHT)  # a group without a budget is not held back
    assert clock.now == 1020.0
