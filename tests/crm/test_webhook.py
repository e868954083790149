"""The webhook writer against the stand-in receiver (loopback) and aioresponses edge cases."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import msgspec
import pytest
from aioresponses import aioresponses
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import Secret, WebhookOptions, WriterSettings, WriterType
from sscl_daemon.crm import content
from sscl_daemon.crm.base import AlreadyExisted, Created, PermanentFailure, RetryLater, WriteContext
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.crm.webhook import (
    VerificationError,
    WebhookWriter,
    payload,
    secret_key,
    signature,
    verify,
)
from sscl_daemon.simulator.crm import webhook as standin
from sscl_daemon.simulator.crm.common import serve

SECRET = "whsec_c3NjbC1kZW1vLXNlY3JldC0xMjM0NTY="


def settings(
    url: str, secret: str = SECRET, timeout: float = 5.0, batch_size: int = 1
) -> WriterSettings:
    return WriterSettings(
        "hook",
        WriterType.WEBHOOK,
        WebhookOptions(url, Secret(secret)),
        timeout=timeout,
        batch_size=batch_size,
    )


@dataclass
class Rig:
    state: standin.WebhookReceiverState
    url: str
    session: aiohttp.ClientSession

    def writer(self, **kw: object) -> WebhookWriter:
        return WebhookWriter(settings(self.url, **kw), self.session)  # type: ignore[arg-type]


@pytest.fixture
async def rig(http_session: aiohttp.ClientSession) -> AsyncIterator[Rig]:
    state = standin.WebhookReceiverState(secret=SECRET)
    async with serve(standin.create_app(state)) as base:
        yield Rig(state, f"{base}/hooks/calls", http_session)


def test_standard_webhooks_test_vector() -> None:
    # The example of the Standard Webhooks specification.
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    sig = signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_rejects() -> None:
    body = b"{}"
    good = {
        "webhook-id": "k",
        "webhook-timestamp": "1000",
        "webhook-signature": signature(secret_key(SECRET), "k", 1000, body),
    }
    assert verify(SECRET, good, body, now=1100) == "k"
    with pytest.raises(VerificationError, match="tolerance"):
        verify(SECRET, good, body, now=2000)
    with pytest.raises(VerificationError, match="matches"):
        verify("whsec_b3RoZXI=", good, body, now=1000)
    with pytest.raises(VerificationError, match="matches"):
        verify(SECRET, good, b"{ }", now=1000)
    with pytest.raises(VerificationError, match="missing"):
        verify(SECRET, {"webhook-id": "k"}, body, now=1000)
    rotated = dict(good, **{"webhook-signature": "v1,bm9wZQ== " + good["webhook-signature"]})
    assert verify(SECRET, rotated, body, now=1000) == "k"


async def test_create_and_payload_schema(rig: Rig) -> None:
    call = make_call(recording_ids=("r1",))
    assert await rig.writer().write(call, WriteContext()) == Created("dlv-1")
    delivery = rig.state.deliveries[call.key]
    request = rig.state.requests[-1]
    assert request.path == "/hooks/calls"
    assert request.headers["webhook-id"] == call.key
    assert request.headers["Idempotency-Key"] == call.key
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    doc = delivery.payload
    assert doc["type"] == "call.logged"
    assert doc["timestamp"] == "2026-11-24T09:32:17.000Z"
    data = doc["data"]
    assert isinstance(data, dict)
    model_fields = set(CompletedCall.__struct_fields__)
    assert set(data) == model_fields | {
        "schema_version",
        "outcome",
        "subject",
        "talk_seconds",
        "recording_urls",
    }
    assert msgspec.convert({k: data[k] for k in model_fields}, CompletedCall) == call
    assert data["schema_version"] == 1
    assert data["outcome"] == "answered"
    assert data["talk_seconds"] == 125
    assert data["recording_urls"] == list(content.recording_urls(call))


async def test_repeat_is_already_existed(rig: Rig) -> None:
    writer = rig.writer()
    call = make_call()
    assert await writer.write(call, WriteContext()) == Created("dlv-1")
    assert await writer.write(call, WriteContext(attempt=2)) == AlreadyExisted("dlv-1")
    assert len(rig.state.deliveries) == 1


async def test_crash_after_send_recovers_without_duplicate(rig: Rig) -> None:
    rig.state.faults.stall(after=True, method="POST")
    call = make_call()
    lost = await rig.writer(timeout=0.3).write(call, WriteContext())
    assert isinstance(lost, RetryLater)
    assert "timed out" in lost.reason
    assert await rig.writer().write(
        call, WriteContext(attempt=2, uncertain=True)
    ) == AlreadyExisted("dlv-1")
    assert len(rig.state.deliveries) == 1


async def test_wrong_secret_is_permanent(rig: Rig) -> None:
    result = await rig.writer(secret="whsec_d3Jvbmc=").write(make_call(), WriteContext())
    assert isinstance(result, PermanentFailure)
    assert "credentials rejected (HTTP 401)" in result.reason
    assert "no webhook-signature entry matches" in result.reason
    assert "d3Jvbmc" not in result.reason
    assert rig.state.deliveries == {}


async def test_stale_timestamp_refused(rig: Rig) -> None:
    writer = WebhookWriter(settings(rig.url), rig.session, clock=lambda: time.time() - 3600)
    result = await writer.write(make_call(), WriteContext())
    assert isinstance(result, PermanentFailure)
    assert "tolerance" in result.reason


@pytest.mark.parametrize(("headers", "delay"), [({"Retry-After": "7"}, 7.0), ({}, 10.0)])
async def test_429_with_and_without_retry_after(
    rig: Rig, headers: dict[str, str], delay: float
) -> None:
    rig.state.faults.fail(429, headers=headers, body={"error": "slow down"})
    result = await rig.writer().write(make_call(), WriteContext())
    assert result == RetryLater("webhook hook rate limit (HTTP 429): slow down", delay)


async def test_5xx_and_timeout_retry(rig: Rig) -> None:
    rig.state.faults.fail(503, body={"error": "maintenance"})
    assert await rig.writer().write(make_call(), WriteContext()) == RetryLater(
        "webhook hook unavailable (HTTP 503): maintenance", None
    )
    rig.state.faults.stall(after=False)
    result = await rig.writer(timeout=0.3).write(make_call(), WriteContext())
    assert isinstance(result, RetryLater)
    assert rig.state.deliveries == {}
    # And the next attempt goes through once.
    assert await rig.writer().write(
        make_call(), WriteContext(attempt=3, uncertain=True)
    ) == Created("dlv-1")


async def test_batch(rig: Rig) -> None:
    # batch_size 1 (the default): one single-call delivery per call, the original wire format.
    writer = build_writer(settings(rig.url), rig.session)
    calls = [make_call(telephony_session_id=f"s-{i}") for i in range(5)]
    results = await writer.write_batch([(c, WriteContext()) for c in calls])
    assert all(isinstance(r, Created) for r in results)
    assert set(rig.state.deliveries) == {c.key for c in calls}
    sent = {r.headers["webhook-id"]: r for r in rig.state.requests}
    assert set(sent) == {c.key for c in calls}
    for call in calls:
        assert sent[call.key].raw == payload(call)
        assert sent[call.key].headers["Idempotency-Key"] == call.key
        assert rig.state.deliveries[call.key].batch_id is None


async def test_validation_error_and_gone(http_session: aiohttp.ClientSession) -> None:
    url = "https://receiver.example.com/hook"
    writer = WebhookWriter(settings(url), http_session)
    with aioresponses() as m:
        m.post(url, status=422, payload={"message": "data.external_number is required"})
        result = await writer.write(make_call(), WriteContext())
        assert result == PermanentFailure(
            "webhook hook rejected the request (HTTP 422): data.external_number is required"
        )
        m.post(url, status=410)
        gone = await writer.write(make_call(), WriteContext())
        assert isinstance(gone, PermanentFailure)
        assert "gone" in gone.reason
        m.post(url, status=202, body="accepted")
        assert await writer.write(make_call(), WriteContext()) == Created("s-1001:62001")
        sent = m.requests[("POST", aiohttp.client.URL(url))][-1].kwargs
        body = sent["data"]
        headers = sent["headers"]
        assert json.loads(body)["data"]["key"] == "s-1001:62001"
        assert verify(SECRET, headers, body, now=time.time()) == "s-1001:62001"
