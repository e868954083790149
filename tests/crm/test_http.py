"""Classification of CRM answers and the shared request path (aioresponses)."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest
from aioresponses import aioresponses

from sscl_daemon.config import OAuthClientSettings, Secret
from sscl_daemon.crm.base import PermanentFailure, RetryLater
from sscl_daemon.crm.http import (
    DEFAULT_RATE_LIMIT_DELAY,
    BearerToken,
    CrmHttp,
    HeaderToken,
    OAuthBearer,
    QueryToken,
    Response,
    classify,
    error_message,
    parse_retry_after,
)
from sscl_daemon.crm.limiter import Limiter
from sscl_daemon.crm.oauth import OAuthClient

API = "https://crm.example.com/v1/things"
TOKEN_URL = "https://crm.example.com/oauth/token"
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Tue, 24 Nov 2026 12:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_classify() -> None:
    assert classify("X", 429, {"Retry-After": "12"}, "") == RetryLater(
        "X rate limit (HTTP 429)", 12.0
    )
    assert classify("X", 429, {}, "").delay == DEFAULT_RATE_LIMIT_DELAY  # type: ignore[union-attr]
    assert (
        classify("X", 429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}, "").delay
        == 2.0
    )  # type: ignore[union-attr]
    assert classify("X", 503, {}, "down") == RetryLater("X unavailable (HTTP 503): down", None)
    assert isinstance(classify("X", 408, {}, ""), RetryLater)
    bad = classify("X", 422, {}, "duration must be a string")
    assert bad == PermanentFailure("X rejected the request (HTTP 422): duration must be a string")
    assert "credentials rejected" in classify("X", 401, {}, "").reason
    assert isinstance(classify("X", 400, {}, ""), PermanentFailure)


def test_error_message_shapes() -> None:
    assert (
        error_message({"success": False, "error": "Bad", "error_info": "See docs"}, "")
        == "Bad; See docs"
    )
    assert error_message(
        [{"message": "Required fields are missing", "errorCode": "REQUIRED_FIELD_MISSING"}], ""
    ) == ("Required fields are missing; REQUIRED_FIELD_MISSING")
    assert error_message(
        {
            "status": "error",
            "message": "Property values were not valid",
            "errors": [{"message": "x is bad"}],
        },
        "",
    ) == ("Property values were not valid; x is bad")
    assert error_message(None, " plain ") == "plain"


async def test_request_success_timeout_and_connection_error(
    http_session: aiohttp.ClientSession,
) -> None:
    http = CrmHttp("X", http_session, Limiter(100, 2), BearerToken("tok-secret"), timeout=1)
    with aioresponses() as m:
        m.post(API, status=201, payload={"id": "5"}, headers={"x-ratelimit-remaining": "9"})
        ok = await http.request("POST", API, json_body={"a": 1})
        assert isinstance(ok, Response)
        assert ok.object() == {"id": "5"}
        sent = next(iter(m.requests.values()))[0].kwargs
        assert sent["headers"]["Authorization"] == "Bearer tok-secret"
        assert sent["json"] == {"a": 1}
        m.post(API, exception=TimeoutError())
        timed_out = await http.request("POST", API)
        assert isinstance(timed_out, RetryLater)
        assert "timed out" in timed_out.reason
        assert timed_out.uncertain  # the CRM may have stored it
        m.post(API, exception=aiohttp.ServerDisconnectedError())
        dropped = await http.request("POST", API)
        assert isinstance(dropped, RetryLater)
        assert dropped.uncertain
        m.post(API, exception=aiohttp.ClientConnectorError(None, OSError(111, "refused")))  # type: ignore[arg-type]
        refused = await http.request("POST", API)
        assert isinstance(refused, RetryLater)
        assert not refused.uncertain  # never connected: nothing can have been stored
        m.post(API, status=409, payload={"message": "dup"})
        assert isinstance(await http.request("POST", API, accept=frozenset({409})), Response)


async def test_429_pauses_the_limiter(http_session: aiohttp.ClientSession) -> None:
    limiter = Limiter(100, 2, max_wait=1.0)
    http = CrmHttp("X", http_session, limiter, None)
    with aioresponses() as m:
        m.get(API, status=429, headers={"Retry-After": "30"})
        first = await http.request("GET", API)
        assert first == RetryLater("X rate limit (HTTP 429)", 30.0)
        assert limiter.blocked_for() > 29
        # While the window is closed nothing is sent.
        second = await http.request("GET", API)
        assert isinstance(second, RetryLater)
        assert second.delay is not None
        assert second.delay > 29
        assert len(next(iter(m.requests.values()))) == 1


async def test_classify_first_hook_goes_before_the_generic_rules(
    http_session: aiohttp.ClientSession,
) -> None:
    seen: list[tuple[int, str]] = []

    def slow_down_on_403(answer: Response, message: str) -> RetryLater | None:
        seen.append((answer.status, message))
        if answer.status == 403 and "LIMIT" in message:
            return RetryLater(f"X says slow down: {message}", 20.0)
        return None

    limiter = Limiter(100, 2, max_wait=1.0)
    http = CrmHttp(
        "X", http_session, limiter, BearerToken("tok-secret"), classify_first=slow_down_on_403
    )
    with aioresponses() as m:
        m.get(API, payload={"ok": True})
        m.get(API, status=409, payload={"message": "dup"})
        m.get(API, status=403, payload={"message": "forbidden for tok-secret"})
        m.get(API, status=403, payload={"message": "LIMIT reached"})
        assert isinstance(await http.request("GET", API), Response)
        assert isinstance(await http.request("GET", API, accept=frozenset({409})), Response)
        assert seen == []  # usable answers never reach the hook
        refused = await http.request("GET", API)
        assert refused == PermanentFailure("X refused access (HTTP 403): forbidden for ***")
        assert limiter.blocked_for() == 0.0
        limited = await http.request("GET", API)
    assert limited == RetryLater("X says slow down: LIMIT reached", 20.0)
    assert limiter.blocked_for() > 19  # a delay from the hook closes the window like a 429
    assert seen == [(403, "forbidden for ***"), (403, "LIMIT reached")]  # scrubbed messages


async def test_query_token_never_in_reason(http_session: aiohttp.ClientSession) -> None:
    http = CrmHttp("X", http_session, Limiter(100, 2), QueryToken("api_token", "pd-secret"))
    with aioresponses() as m:
        m.get(f"{API}?api_token=pd-secret", status=400, payload={"error": "token pd-secret is odd"})
        result = await http.request("GET", API)
    assert isinstance(result, PermanentFailure)
    assert "pd-secret" not in result.reason
    assert "***" in result.reason


async def test_401_refreshes_once_then_fails(http_session: aiohttp.ClientSession) -> None:
    client = OAuthClient(
        http_session, TOKEN_URL, OAuthClientSettings("c", Secret("s"), Secret("r"))
    )
    http = CrmHttp("X", http_session, Limiter(100, 2), OAuthBearer(client))
    with aioresponses() as m:
        m.post(TOKEN_URL, payload={"access_token": "old"})
        m.post(TOKEN_URL, payload={"access_token": "new"})
        m.get(API, status=401)
        m.get(API, status=200, payload={"ok": True})
        ok = await http.request("GET", API)
        assert isinstance(ok, Response)
        auths = [
            r.kwargs["headers"]["Authorization"]
            for r in m.requests[("GET", aiohttp.client.URL(API))]
        ]
        assert auths == ["Bearer old", "Bearer new"]

        m.get(API, status=401, payload={"message": "expired"})
        m.post(TOKEN_URL, payload={"access_token": "newer"})
        m.get(API, status=401, payload={"message": "expired"})
        failed = await http.request("GET", API)
        assert isinstance(failed, PermanentFailure)
        assert "credentials rejected (HTTP 401)" in failed.reason
        assert client.refreshes == 3


async def test_401_with_refused_refresh_token(http_session: aiohttp.ClientSession) -> None:
    client = OAuthClient(
        http_session, TOKEN_URL, OAuthClientSettings("c", Secret("s"), Secret("r"))
    )
    http = CrmHttp("X", http_session, Limiter(100, 2), OAuthBearer(client))
    with aioresponses() as m:
        m.post(TOKEN_URL, status=400, payload={"error": "invalid_grant"})
        result = await http.request("GET", API)
    assert isinstance(result, PermanentFailure)
    assert result.reason.startswith("X credentials rejected")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_retry(http_session: aiohttp.ClientSession, status: int) -> None:
    http = CrmHttp("X", http_session, Limiter(100, 2), None)
    with aioresponses() as m:
        m.get(API, status=status, headers={"Retry-After": "4"})
        assert await http.request("GET", API) == RetryLater(f"X unavailable (HTTP {status})", 4.0)


async def test_redirect_is_not_followed(http_session: aiohttp.ClientSession) -> None:
    http = CrmHttp("X", http_session, Limiter(100, 2), BearerToken("tok"))
    with aioresponses() as m:
        m.post(API, status=307, headers={"Location": "https://elsewhere.example.com/steal"})
        result = await http.request("POST", API, json_body={})
    assert result == PermanentFailure(
        "X answered with a redirect (HTTP 307) to https://elsewhere.example.com/steal; configure the final URL"
    )


def test_static_token_reprs_hide_the_token() -> None:
    for auth in (
        BearerToken("s3cr3t"),
        QueryToken("api_token", "s3cr3t"),
        HeaderToken("x-api-token", "s3cr3t"),
    ):
        assert "s3cr3t" not in repr(auth)
        assert auth.secrets() == ("s3cr3t",)
