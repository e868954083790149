"""A CRM or webhook receiver answering JSON nested past the recursion limit: the answer is
read as an unreadable body (the status decides), not a RecursionError out of the writer.

On f315870 the RecursionError escaped the writer into the dispatcher, which crashed and
retried the same rows for ever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from tests.crm.conftest import make_call

from sscl_daemon.config import Secret, WebhookOptions, WriterSettings, WriterType
from sscl_daemon.crm.base import Created, PermanentFailure, WriteContext
from sscl_daemon.crm.webhook import WebhookWriter, delivered_keys
from sscl_daemon.simulator.crm.common import serve

SECRET = "whsec_c3NjbC1kZW1vLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM="
DEEP = b'{"results":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.fixture
async def url() -> AsyncIterator[str]:
    statuses = iter([200, 200, 400])

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=next(statuses), body=DEEP, content_type="application/json")

    app = web.Application()
    app.router.add_post("/hooks", answer)
    async with serve(app) as base:
        yield f"{base}/hooks"


async def test_a_deep_answer_is_an_unreadable_body(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        single = WriterSettings("hook", WriterType.WEBHOOK, WebhookOptions(url, Secret(SECRET)))
        call = make_call()
        assert await WebhookWriter(single, session).write(call, WriteContext()) == Created(call.key)
        batch = WriterSettings(
            "hook", WriterType.WEBHOOK, WebhookOptions(url, Secret(SECRET)), batch_size=10
        )
        calls = [make_call(telephony_session_id=f"s-deep-{i}") for i in range(3)]
        results = await WebhookWriter(batch, session).write_batch(
            [(c, WriteContext()) for c in calls]
        )
        assert results == [Created(c.key) for c in calls]
        refused = await WebhookWriter(single, session).write(call, WriteContext())
        assert isinstance(refused, PermanentFailure)


def test_a_receiver_reading_a_deep_delivery_gets_the_documented_error() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        delivered_keys(DEEP)
