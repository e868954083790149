"""The stand-ins mount under a prefix of one server, as the simulator and the demo use them."""

from __future__ import annotations

from collections import deque

import aiohttp
from aiohttp import web
from tests.crm.conftest import make_call

from sscl_daemon.config import (
    OAuthClientSettings,
    PipedriveOptions,
    Secret,
    WebhookOptions,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm.base import Created, WriteContext
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.crm.webhook import WebhookWriter
from sscl_daemon.simulator.crm import hubspot, pipedrive, webhook
from sscl_daemon.simulator.crm.common import serve


async def test_mounted_under_prefixes(http_session: aiohttp.ClientSession) -> None:
    pd_state = pipedrive.PipedriveState()
    admin = pd_state.add_user("admin@example.com")
    pd_state.refresh_tokens["r-1"] = admin
    hook_state = webhook.WebhookReceiverState(secret="s3cret")
    root = web.Application()
    root.add_subapp("/pipedrive", pipedrive.create_app(pd_state))
    root.add_subapp("/hooks", webhook.create_app(hook_state))
    async with serve(root) as base:
        oauth = OAuthClientSettings(
            pd_state.client_id, Secret(pd_state.client_secret), Secret("r-1")
        )
        options = PipedriveOptions(
            base_url="https://unused.invalid",
            oauth=oauth,
            token_url=f"{base}/pipedrive/oauth/token",
        )
        pd = PipedriveWriter(WriterSettings("pd", WriterType.PIPEDRIVE, options), http_session)
        assert isinstance(await pd.write(make_call(), WriteContext()), Created)
        assert len(pd_state.call_logs) == 1
        hook = WebhookWriter(
            WriterSettings(
                "h", WriterType.WEBHOOK, WebhookOptions(f"{base}/hooks/in", Secret("s3cret"))
            ),
            http_session,
        )
        assert await hook.write(make_call(), WriteContext()) == Created("dlv-1")
    assert all(r.path.startswith("/pipedrive/") for r in pd_state.requests)


async def test_exact_fault_matches_only_its_own_path(http_session: aiohttp.ClientSession) -> None:
    state = hubspot.HubSpotState()
    headers = {"Authorization": f"Bearer {hubspot.PRIVATE_TOKEN}"}
    state.faults.fail(503, path="/crm/v3/objects/calls", method="POST", exact=True)
    state.faults.fail(502, path="/crm/v3/objects/calls", method="POST")
    async with serve(hubspot.create_app(state)) as base:
        search = f"{base}/crm/v3/objects/calls/search"
        async with http_session.post(search, json={"limit": 1}, headers=headers) as resp:
            assert resp.status == 502  # the substring fault catches the search; the exact one not
        async with http_session.post(search, json={"limit": 1}, headers=headers) as resp:
            assert resp.status == 200
        create = f"{base}/crm/v3/objects/calls"
        async with http_session.post(create, json={"properties": {}}, headers=headers) as resp:
            assert resp.status == 503
    assert state.faults.queue == deque()
