"""Authenticator: JWT login, proactive refresh, single flight, fatal bad credentials."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
import pytest
from tests.ringcentral.helpers import (
    CLIENT_SECRET,
    JWT,
    FakeClock,
    fast_retry,
    roomy_limiter,
    settings,
)
from tests.ringcentral.scripted import Canned, Scripted, scripted_server

from sscl_daemon.config import Secret
from sscl_daemon.ringcentral.auth import JWT_GRANT, Authenticator, AuthError, TokenSet
from sscl_daemon.ringcentral.retry import RetriesExhausted

TOKEN = "/restapi/oauth/token"


def token_body(n: int, session: str = "ses-1", expires_in: int = 3600) -> dict[str, object]:
    return {
        "access_token": f"access-{n}",
        "token_type": "bearer",
        "expires_in": expires_in,
        "refresh_token": f"refresh-{n}",
        "refresh_token_expires_in": 604800,
        "owner_id": "100",
        "endpoint_id": "ep",
        "session_id": session,
    }


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    async with scripted_server() as state:
        yield state


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def forms(server: Scripted) -> list[dict[str, str]]:
    return [seen.form for seen in server.requests("POST", TOKEN)]


def make(
    http: aiohttp.ClientSession, server: Scripted, clock: FakeClock, **kwargs: object
) -> Authenticator:
    return Authenticator(
        http,
        settings(server.base_url),
        limiter=roomy_limiter(clock),
        retry=fast_retry(clock),
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_jwt_login_uses_basic_auth_and_exposes_the_session(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock)
    server.add("POST", TOKEN, Canned(body=token_body(1)))
    assert await auth.access_token() == "access-1"
    seen = server.requests("POST", TOKEN)[0]
    assert seen.form == {"grant_type": JWT_GRANT, "assertion": JWT}
    scheme, encoded = seen.headers["Authorization"].split()
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"client-id:{CLIENT_SECRET}"
    assert auth.session_id == "ses-1"
    assert auth.owner_id == "100"
    assert "access-1" not in repr(auth)
    assert JWT not in repr(auth)


async def test_many_waiters_trigger_one_token_request(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock)
    server.add("POST", TOKEN, Canned(body=token_body(1)))
    tokens = await asyncio.gather(*(auth.access_token() for _ in range(25)))
    assert len(forms(server)) == 1
    assert set(tokens) == {"access-1"}


async def test_refreshes_before_expiry_and_keeps_the_session(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    changes: list[TokenSet] = []

    async def record(tokens: TokenSet) -> None:
        changes.append(tokens)

    auth = make(http, server, clock, refresh_margin=60.0, on_tokens=record)
    server.add(
        "POST",
        TOKEN,
        Canned(body=token_body(1, expires_in=600)),
        Canned(body=token_body(2, expires_in=600)),
    )
    assert await auth.access_token() == "access-1"
    clock.now += 500  # still 100 s left: no request
    assert await auth.access_token() == "access-1"
    assert auth.seconds_until_refresh() == pytest.approx(40.0)
    clock.now += 50  # 50 s left, inside the margin: refresh, not a new login
    assert await auth.access_token() == "access-2"
    assert forms(server)[1] == {"grant_type": "refresh_token", "refresh_token": "refresh-1"}
    assert (auth.logins, auth.refreshes) == (1, 1)
    assert [t.session_id for t in changes] == ["ses-1", "ses-1"]
    assert "refresh-1" not in repr(changes[0])


async def test_rejected_refresh_token_falls_back_to_jwt(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock)
    server.add(
        "POST",
        TOKEN,
        Canned(body=token_body(1, expires_in=100)),
        Canned(400, {"error": "invalid_grant", "error_description": "Token revoked"}),
        Canned(body=token_body(3, session="ses-2")),
    )
    await auth.access_token()
    clock.now += 90
    assert await auth.access_token() == "access-3"
    grants = [form["grant_type"] for form in forms(server)]
    assert grants == [JWT_GRANT, "refresh_token", JWT_GRANT]
    assert auth.session_id == "ses-2"


async def test_initial_refresh_token_continues_a_session(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock, refresh_token=Secret("stored-refresh"))
    server.add("POST", TOKEN, Canned(body=token_body(5, session="ses-old")))
    await auth.access_token()
    assert forms(server) == [{"grant_type": "refresh_token", "refresh_token": "stored-refresh"}]
    assert auth.logins == 0
    assert auth.session_id == "ses-old"


async def test_initial_refresh_token_outlives_an_unreachable_token_endpoint(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock, refresh_token=Secret("stored-refresh"))
    # a 503 burst at start uses up the retries (four attempts) ...
    server.add("POST", TOKEN, *(Canned(503) for _ in range(4)))
    with pytest.raises(RetriesExhausted):
        await auth.access_token()
    # ... and the next try still continues the stored session instead of a new JWT login
    server.add("POST", TOKEN, Canned(body=token_body(5, session="ses-old")))
    await auth.access_token()
    grants = [form["grant_type"] for form in forms(server)]
    assert set(grants) == {"refresh_token"}
    assert auth.logins == 0
    assert auth.session_id == "ses-old"


async def test_invalidate_renews_once_for_a_rejected_token(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock)
    server.add("POST", TOKEN, Canned(body=token_body(1)), Canned(body=token_body(2)))
    first = await auth.access_token()
    await asyncio.gather(*(auth.invalidate(first) for _ in range(5)))
    assert await auth.access_token() == "access-2"
    assert len(forms(server)) == 2


@pytest.mark.parametrize(("status", "error"), [(400, "invalid_grant"), (401, "invalid_client")])
async def test_bad_credentials_are_a_fatal_clear_error(
    http: aiohttp.ClientSession, server: Scripted, status: int, error: str
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock)
    server.add("POST", TOKEN, Canned(status, {"error": error, "error_description": "Invalid"}))
    with pytest.raises(AuthError) as caught:
        await auth.access_token()
    assert len(forms(server)) == 1  # a refusal is not retried
    message = str(caught.value)
    assert error in message
    assert "ringcentral.jwt" in message
    assert JWT not in message
    assert CLIENT_SECRET not in message


async def test_token_429_and_503_wait_for_retry_after(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock)
    server.add(
        "POST",
        TOKEN,
        Canned(429, {"errorCode": "CMN-301"}, {"Retry-After": "7"}),
        Canned(503, headers={"Retry-After": "3"}),
        Canned(429, {"errorCode": "CMN-301"}),
        Canned(body=token_body(1)),
    )
    started = clock.now
    assert await auth.access_token() == "access-1"
    assert len(forms(server)) == 4
    # the waits named, then the documented default of 60 s for a 429 without Retry-After
    assert clock.slept == [7.0, 3.0, 60.0]
    assert clock.now - started == pytest.approx(70.0)


async def test_token_503_without_retry_after_backs_off_instead_of_a_minute(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock)
    server.add("POST", TOKEN, Canned(503), Canned(503), Canned(body=token_body(1)))
    started = clock.now
    assert await auth.access_token() == "access-1"
    assert len(forms(server)) == 3
    # the retry policy's jittered backoff (at most 0.05 s here), not 60 s per answer
    assert len(clock.slept) == 2
    assert clock.now - started < 1.0


async def test_keep_fresh_refreshes_ahead_of_expiry_while_idle(
    http: aiohttp.ClientSession, server: Scripted
) -> None:
    clock = FakeClock()
    auth = make(http, server, clock, refresh_margin=60.0)
    server.add("POST", TOKEN, *(Canned(body=token_body(n, expires_in=600)) for n in range(1, 5)))

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if len(clock.slept) > 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await auth.keep_fresh(sleep)
    # 0 s to log in, then each token refreshed 60 s before its 600 s lifetime ends
    assert clock.slept == [0.0, 540.0, 540.0, 540.0]
    grants = [form["grant_type"] for form in forms(server)]
    assert grants == [JWT_GRANT, "refresh_token", "refresh_token"]
    assert auth.session_id == "ses-1"
