"""A restart reuses the WebSocket token and the access token the last run kept (issue 19).

Each new ws token is a `POST /restapi/oauth/wstoken` in the Auth rate group (5/min); two
quick restarts met a 429 with Retry-After 60 and subscribed a minute late. Here every "start"
builds the account's RingCentral side afresh (authenticator, REST client, subscription) on
one real Postgres, against the simulator over loopback; the wstoken requests are counted on
the client's HTTP session. A new access token is a token request in the same group.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

import aiohttp
import pytest
from tests.ringcentral.harness import client_settings, simulator, wait_for

from sscl_daemon.ringcentral.auth import Authenticator, KeptSession
from sscl_daemon.ringcentral.directory import load_directory
from sscl_daemon.ringcentral.rest import RestClient
from sscl_daemon.ringcentral.retry import RetryPolicy
from sscl_daemon.ringcentral.subscription import (
    ConnectionState,
    Item,
    RawNotification,
    Subscription,
    utc_now,
)
from sscl_daemon.ringcentral.wstoken import KeptWsToken
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.store import Store
from sscl_daemon.store.credentials import CredentialVault, credential_name

ACCOUNT = "acc-1"
NAME = credential_name("ringcentral:ws_token", "sim-client", "sim-jwt")
WSTOKEN_PATH = "/restapi/oauth/wstoken"
TOKEN_PATH = "/restapi/oauth/token"


@dataclass
class Platform:
    sim: Simulator
    http: aiohttp.ClientSession
    wstoken_requests: int = 0
    token_requests: int = 0


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    trace = aiohttp.TraceConfig()
    async with simulator() as sim:
        made = Platform(sim, None)  # type: ignore[arg-type]

        async def counted(
            _: aiohttp.ClientSession, __: SimpleNamespace, params: aiohttp.TraceRequestStartParams
        ) -> None:
            made.wstoken_requests += params.url.path == WSTOKEN_PATH
            made.token_requests += params.url.path == TOKEN_PATH

        trace.on_request_start.append(counted)
        async with aiohttp.ClientSession(trace_configs=[trace]) as http:
            made.http = http
            yield made


@contextlib.asynccontextmanager
async def started(
    platform: Platform, store: Store, now: Callable[[], datetime] = utc_now
) -> AsyncIterator[list[Item]]:
    """One run of the account's subscription, as `daemon/accounts.py` wires it; yields its
    items once it is subscribed, stops it (a SIGTERM) on leaving."""
    settings = client_settings(platform.sim)
    auth = Authenticator(
        platform.http, settings, retry=RetryPolicy(max_attempts=3, initial=0.01, maximum=0.05)
    )
    rest = RestClient(platform.http, auth, settings.server, request_timeout=5.0)
    subscription = Subscription(
        rest,
        settings,
        kept_token=KeptWsToken(CredentialVault(store, ACCOUNT, NAME)),
        now=now,
        rng=random.Random(5),
    )
    items: list[Item] = []

    async def sink(item: Item) -> None:
        items.append(item)

    task = asyncio.create_task(subscription.run(sink))
    try:
        await wait_for(
            lambda: subscription.state is ConnectionState.SUBSCRIBED or task.done(),
            "a subscription",
        )
        assert not task.done(), task
        yield items
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def restart(
    platform: Platform, store: Store, meanwhile: Callable[[], object] = lambda: None
) -> None:
    """A start, a stop, ``meanwhile`` on the platform, and a start that streams live calls."""
    async with started(platform, store):
        pass
    meanwhile()
    async with started(platform, store) as items:
        platform.sim.place_call()
        await wait_for(
            lambda: any(isinstance(item, RawNotification) for item in items),
            "a live notification",
        )


async def test_two_starts_within_a_minute_make_one_wstoken_request(
    platform: Platform, store: Store
) -> None:
    await restart(platform, store)
    assert platform.wstoken_requests == 1
    kept = await store.load_credential(ACCOUNT, NAME)
    assert kept is not None
    assert "ws_access_token" in kept


async def test_a_kept_token_the_gateway_refuses_costs_exactly_one_new_request(
    platform: Platform, store: Store
) -> None:
    # The handshake with the kept token gets a 401.
    await restart(platform, store, platform.sim.gateway.expire_ws_tokens)
    assert platform.wstoken_requests == 2
    replaced = await store.load_credential(ACCOUNT, NAME)
    async with started(platform, store):
        pass
    # The new token replaced the refused one and serves the next start.
    assert platform.wstoken_requests == 2
    assert replaced is not None
    assert await store.load_credential(ACCOUNT, NAME) == replaced


async def test_a_kept_token_near_its_expiry_is_not_used(platform: Platform, store: Store) -> None:
    async with started(platform, store):
        pass
    # 590 s later by the daemon's clock: 10 s left of the 600, under the 30 s margin.
    async with started(platform, store, now=lambda: utc_now() + timedelta(seconds=590)):
        pass
    assert platform.wstoken_requests == 2


async def test_a_throttled_wstoken_does_not_hold_back_a_restart_with_a_valid_token(
    platform: Platform, store: Store
) -> None:
    # The Auth group spent (the soak's 429 with Retry-After 60, seeds 12 and 13);
    # `started` waits for the subscription with the harness's 20 s limit, well inside 60 s.
    await restart(
        platform, store, lambda: platform.sim.fail_rest(WSTOKEN_PATH, 429, 5, retry_after_s=60)
    )
    assert platform.wstoken_requests == 1
    assert len(platform.sim.faults.rest) == 1  # the fault still waits, untouched


async def authenticated(platform: Platform, store: Store) -> Authenticator:
    """An account's start as far as its first REST request (a directory load)."""
    kept = KeptSession(
        CredentialVault(store, ACCOUNT, "refresh"),
        access_vault=CredentialVault(store, ACCOUNT, "access"),
    )
    settings = client_settings(platform.sim)
    auth = Authenticator(
        platform.http,
        settings,
        retry=RetryPolicy(max_attempts=3, initial=0.01, maximum=0.05),
        refresh_token=await kept.refresh_token(),
        access=await kept.access(),
        on_tokens=kept.keep,
    )
    await load_directory(RestClient(platform.http, auth, settings.server, request_timeout=5.0))
    return auth


async def test_a_restart_within_the_hour_makes_no_token_request(
    platform: Platform, store: Store
) -> None:
    first = await authenticated(platform, store)
    assert platform.token_requests == 1  # the JWT login
    again = await authenticated(platform, store)
    assert platform.token_requests == 1
    assert again.session_id == first.session_id


async def test_a_kept_access_token_refused_costs_one_refresh_in_the_same_session(
    platform: Platform, store: Store
) -> None:
    first = await authenticated(platform, store)
    platform.sim.expire_tokens()  # the kept access token is answered 401
    again = await authenticated(platform, store)
    assert (again.logins, again.refreshes) == (0, 1)
    assert platform.token_requests == 2
    assert again.session_id == first.session_id
