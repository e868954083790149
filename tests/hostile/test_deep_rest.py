"""RingCentral REST answers nested far past the recursion limit are unreadable answers
(ApiError, a retry at the token endpoint; a call-log record, the record refused alone), not
a RecursionError out of the client.

On f315870 each raised RecursionError, which crashed the task that asked (reconcile,
directory refresh, token refresh).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import msgspec
import pytest
from tests.ringcentral.helpers import FakeClock, fast_retry, roomy_limiter, settings
from tests.ringcentral.scripted import Canned, Scripted, scripted_server

from sscl_daemon.ringcentral.auth import Authenticator, AuthError
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
DEEP = msgspec.Raw(b'{"records":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
TOKEN_BODY = {
    "access_token": "access-1",
    "expires_in": 3600,
    "refresh_token": "refresh-1",
    "refresh_token_expires_in": 604800,
    "owner_id": "100",
    "session_id": "ses-1",
}


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    async with scripted_server() as state:
        yield state


def _client(server: Scripted, http: aiohttp.ClientSession) -> RestClient:
    clock = FakeClock()
    limiter = roomy_limiter(clock)
    auth = Authenticator(
        http, settings(server.base_url), limiter=limiter, retry=fast_retry(clock), clock=clock
    )
    return RestClient(http, auth, server.base_url, limiter=limiter, retry=fast_retry(clock))


async def test_deep_rest_answers_are_unreadable_answers(server: Scripted) -> None:
    server.add("POST", TOKEN, Canned(body=TOKEN_BODY))
    server.add("GET", CALL_LOG_PATH, Canned(body=DEEP))
    server.add("GET", EXTENSION_PATH, Canned(body=DEEP))
    server.add("GET", SESSION_PATH + "s-1", Canned(body=DEEP))
    async with aiohttp.ClientSession() as http:
        rest = _client(server, http)
        # The call log's one record nested that deep is refused alone (calllog_page.py).
        [page] = [page async for page in rest.call_log_pages(FROM, TO)]
        assert page.records == []
        [refused] = page.refused
        assert "call-log record refused" in refused.reason
        with pytest.raises(ApiError, match="unreadable"):
            await rest.extensions()
        with pytest.raises(ApiError, match="unreadable"):
            await rest.telephony_session("s-1")
        # An error answer nested that deep is still the API's error, with its status.
        server.add("GET", SESSION_PATH + "s-2", Canned(400, DEEP))
        with pytest.raises(ApiError) as caught:
            await rest.telephony_session("s-2")
        assert caught.value.status == 400


async def test_a_deep_token_answer_is_retried_not_a_crash(server: Scripted) -> None:
    server.add("POST", TOKEN, Canned(body=DEEP))
    async with aiohttp.ClientSession() as http:
        rest = _client(server, http)
        with pytest.raises(RetriesExhausted):
            await rest.telephony_session("s-1")
        server.script[("POST", TOKEN)] = [Canned(400, DEEP)]
        with pytest.raises(AuthError, match="400"):
            await rest.telephony_session("s-1")
