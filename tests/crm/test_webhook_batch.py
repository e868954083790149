"""Webhook batch delivery (batch_size > 1): the stand-in over loopback, aioresponses for the
answers the stand-in never gives (per-call rejections, malformed ``results``)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta

import aiohttp
import pytest
import structlog
from aioresponses import aioresponses
from tests.crm.conftest import START, make_call
from tests.crm.test_webhook import SECRET, Rig, rig, settings

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    PermanentFailure,
    RetryLater,
    WriteContext,
    WriteResult,
)
from sscl_daemon.crm.webhook import (
    WebhookWriter,
    batch_id,
    batch_payload,
    delivered_keys,
    payload,
    secret_key,
    signature,
    verify,
)

__all__ = ["rig"]  # the loopback stand-in fixture, shared with test_webhook.py

END = START.replace(minute=32, second=17)
URL = "https://receiver.example.com/hook"


def calls(n: int, prefix: str = "s") -> list[CompletedCall]:
    # Ends fall back in time with the index, so a chunk's latest end is its first call's,
    # except call 42, which ends an hour later than all others.
    return [
        make_call(
            telephony_session_id=f"{prefix}-{i}",
            end_time=END + timedelta(hours=1) if i == 42 else END + timedelta(seconds=250 - i),
        )
        for i in range(n)
    ]


def items(batch: list[CompletedCall], **ctx: object) -> list[tuple[CompletedCall, WriteContext]]:
    return [(c, WriteContext(**ctx)) for c in batch]  # type: ignore[arg-type]


def keys(batch: list[CompletedCall]) -> list[str]:
    return [c.key for c in batch]


async def test_250_calls_in_three_signed_requests_stored_once(rig: Rig) -> None:
    batch = calls(250)
    results = await rig.writer(batch_size=100).write_batch(items(batch))
    assert results == [Created(f"dlv-{i + 1}") for i in range(250)]
    assert rig.state.count("POST") == 3
    assert sorted(rig.state.deliveries) == sorted(keys(batch))
    stamps = ["2026-11-24T10:32:17.000Z", "2026-11-24T09:34:47.000Z", "2026-11-24T09:33:07.000Z"]
    for n, (request, stamp) in enumerate(zip(rig.state.requests, stamps, strict=True)):
        chunk = keys(batch[n * 100 : (n + 1) * 100])
        msg_id = request.headers["webhook-id"]
        assert msg_id == batch_id(chunk)
        assert msg_id.startswith("batch_")
        assert len(msg_id) == 38
        assert request.headers["Idempotency-Key"] == msg_id
        assert request.headers["Content-Type"] == "application/json"
        assert verify(SECRET, request.headers, request.raw, now=time.time()) == msg_id
        assert delivered_keys(request.raw) == chunk
        body = json.loads(request.raw)
        assert (body["type"], body["timestamp"]) == ("call.logged.batch", stamp)
        assert [d["key"] for d in body["data"]] == chunk
        assert all(rig.state.deliveries[k].batch_id == msg_id for k in chunk)
    # Compact, non-ASCII kept: the same encoding as a single delivery's data.
    first = json.loads(rig.state.requests[0].raw)["data"][0]
    assert json.dumps(first, ensure_ascii=False, separators=(",", ":")).encode() in (
        rig.state.requests[0].raw
    )
    assert rig.state.deliveries[batch[0].key].payload["data"] == first


async def test_regrouped_retry_is_deduped_per_key(rig: Rig) -> None:
    batch = calls(120)
    first = await rig.writer(batch_size=100).write_batch(items(batch[:70]))
    assert first == [Created(f"dlv-{i + 1}") for i in range(70)]
    # A retry groups differently: the same calls, plus new ones, in other chunks.
    again = await rig.writer(batch_size=50).write_batch(items(batch, attempt=2, uncertain=True))
    assert again[:70] == [AlreadyExisted(f"dlv-{i + 1}") for i in range(70)]
    assert again[70:] == [Created(f"dlv-{i + 71}") for i in range(50)]
    assert len(rig.state.deliveries) == 120
    assert rig.state.count("POST") == 1 + 3


def test_batch_id_is_deterministic_and_order_sensitive() -> None:
    assert batch_id(["a", "b"]) == batch_id(["a", "b"])
    assert batch_id(["a", "b"]) != batch_id(["b", "a"])
    assert batch_id(["a", "b"]) != batch_id(["a", "b", "c"])
    assert batch_id(["s-1:2", "s-3:4"]) == (
        "batch_" + hashlib.sha256(b"s-1:2\ns-3:4").hexdigest()[:32]
    )


def test_delivered_keys_of_single_and_batch_bodies() -> None:
    single, pair = make_call(), calls(2)
    assert delivered_keys(payload(single)) == [single.key]
    assert delivered_keys(batch_payload(pair)) == keys(pair)
    bad = {
        b"not json": "not JSON",
        b"[]": "JSON object",
        b'{"type": "call.deleted", "data": {}}': "neither 'call.logged' nor",
        b'{"type": "call.logged.batch", "data": {}}': "non-empty data list",
        b'{"type": "call.logged.batch", "data": []}': "non-empty data list",
        b'{"type": "call.logged.batch", "data": [{"key": "a"}, {"id": 1}]}': "item 1",
        b'{"type": "call.logged", "data": {"key": ""}}': "item 0",
    }
    for body, message in bad.items():
        with pytest.raises(ValueError, match=message):
            delivered_keys(body)


async def test_standin_mixes_single_and_batch_and_refuses_bad_batches(rig: Rig) -> None:
    batch = calls(3)
    assert await rig.writer().write(batch[1], WriteContext()) == Created("dlv-1")
    results = await rig.writer(batch_size=10).write_batch(items(batch))
    assert results == [Created("dlv-2"), AlreadyExisted("dlv-1"), Created("dlv-3")]
    # A single delivery of a call that came in a batch is a duplicate too (409).
    assert await rig.writer().write(batch[2], WriteContext()) == AlreadyExisted("dlv-3")
    body = b'{"type":"call.logged.batch","timestamp":"x","data":[{"no":"key"}]}'
    stamp = int(time.time())
    headers = {
        "webhook-id": "batch_x",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(secret_key(SECRET), "batch_x", stamp, body),
    }
    async with rig.session.post(rig.url, data=body, headers=headers) as resp:
        assert resp.status == 422
        assert "item 0" in (await resp.json())["error"]
    assert len(rig.state.deliveries) == 3


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (409, lambda key: AlreadyExisted(key)),
        (
            410,
            lambda key: PermanentFailure(
                "webhook hook: the receiver says the endpoint is gone (HTTP 410)"
            ),
        ),
        (
            503,
            lambda key: RetryLater("webhook hook unavailable (HTTP 503): maintenance", None),
        ),
        (
            429,
            lambda key: RetryLater("webhook hook rate limit (HTTP 429): maintenance", 7.0),
        ),
        (
            422,
            lambda key: PermanentFailure(
                "webhook hook rejected the request (HTTP 422): maintenance"
            ),
        ),
    ],
)
async def test_whole_batch_answers_apply_to_every_call(
    rig: Rig, status: int, expected: Callable[[str], WriteResult]
) -> None:
    rig.state.faults.fail(
        status,
        headers={"Retry-After": "7"} if status == 429 else None,
        body={"error": "maintenance"},
    )
    batch = calls(5)
    results = await rig.writer(batch_size=10).write_batch(items(batch))
    assert results == [expected(k) for k in keys(batch)]
    assert rig.state.deliveries == {}
    assert rig.state.count("POST") == 1


async def test_retry_after_5xx_and_429_delivers_everything(rig: Rig) -> None:
    batch = calls(30)
    writer = rig.writer(batch_size=10)
    rig.state.faults.fail(500, body={"error": "boom"}, times=3)
    failed = await writer.write_batch(items(batch))
    assert all(isinstance(r, RetryLater) and not r.uncertain for r in failed)
    assert rig.state.deliveries == {}
    rig.state.faults.fail(429, headers={"Retry-After": "0"}, body={"error": "slow"})
    limited = await writer.write_batch(items(batch, attempt=2))
    assert limited[:10] == [RetryLater("webhook hook rate limit (HTTP 429): slow", 0.0)] * 10
    assert limited[10:] == [Created(f"dlv-{i + 1}") for i in range(20)]
    final = await writer.write_batch(items(batch, attempt=3))
    assert final[:10] == [Created(f"dlv-{i + 21}") for i in range(10)]
    assert final[10:] == [AlreadyExisted(f"dlv-{i + 1}") for i in range(20)]
    assert sorted(rig.state.deliveries) == sorted(keys(batch))


@pytest.mark.parametrize("after", [True, False])
async def test_timeout_is_uncertain_for_every_call_and_retry_stores_once(
    rig: Rig, after: bool
) -> None:
    # after=True: stored, answer lost (crash-after-send); False: never reached the handler.
    rig.state.faults.stall(after=after, method="POST")
    batch = calls(4)
    lost = await rig.writer(batch_size=10, timeout=0.3).write_batch(items(batch))
    assert len(lost) == 4
    assert all(isinstance(r, RetryLater) and r.uncertain and "timed out" in r.reason for r in lost)
    assert len(rig.state.deliveries) == (4 if after else 0)
    retried = await rig.writer(batch_size=10).write_batch(items(batch, attempt=2, uncertain=True))
    wanted = AlreadyExisted if after else Created
    assert retried == [wanted(f"dlv-{i + 1}") for i in range(4)]
    assert len(rig.state.deliveries) == 4


async def test_wrong_secret_fails_the_whole_batch(rig: Rig) -> None:
    results = await rig.writer(batch_size=10, secret="whsec_d3Jvbmc=").write_batch(items(calls(3)))
    assert len(results) == 3
    for result in results:
        assert isinstance(result, PermanentFailure)
        assert "credentials rejected (HTTP 401)" in result.reason
        assert "d3Jvbmc" not in result.reason
    assert rig.state.deliveries == {}


async def test_empty_batch_sends_nothing(rig: Rig) -> None:
    assert await rig.writer(batch_size=10).write_batch([]) == []
    assert rig.state.requests == []


def writer(session: aiohttp.ClientSession) -> WebhookWriter:
    return WebhookWriter(settings(URL, batch_size=10), session)


async def post_answer(
    session: aiohttp.ClientSession, batch: list[CompletedCall], **answer: object
) -> list[WriteResult]:
    with aioresponses() as m:
        m.post(URL, **answer)  # type: ignore[arg-type]
        results = await writer(session).write_batch(items(batch))
        [sent] = m.requests[("POST", aiohttp.client.URL(URL))]
        assert delivered_keys(sent.kwargs["data"]) == keys(batch)
    return results


async def test_results_refine_each_call(http_session: aiohttp.ClientSession) -> None:
    batch = calls(5)
    k = keys(batch)
    answer = {
        "results": [
            {"key": k[0], "status": "created", "id": "rec-0"},
            {"key": k[1], "status": "existed", "id": 77},
            {"key": k[2], "status": "existed"},
            {"key": k[3], "status": "rejected", "error": "data.external_number is required"},
            # k[4] not listed: Created with its key.
        ]
    }
    results = await post_answer(http_session, batch, status=200, payload=answer)
    assert results == [
        Created("rec-0"),
        AlreadyExisted("77"),
        AlreadyExisted(k[2]),
        PermanentFailure(
            f"webhook hook: the receiver rejected {k[3]}: data.external_number is required"
        ),
        Created(k[4]),
    ]


async def test_rejected_without_error_and_plain_2xx(http_session: aiohttp.ClientSession) -> None:
    batch = calls(2)
    answer = {"results": [{"key": batch[0].key, "status": "rejected", "id": ""}]}
    results = await post_answer(http_session, batch, status=200, payload=answer)
    assert results == [
        PermanentFailure(f"webhook hook: the receiver rejected {batch[0].key}: no reason given"),
        Created(batch[1].key),
    ]
    assert await post_answer(http_session, batch, status=202, body="accepted") == [
        Created(c.key) for c in batch
    ]


@pytest.mark.parametrize(
    ("results", "reasons"),
    [
        ("all fine", ["results is a str, not a list"]),
        ({"key": "x"}, ["results is a dict, not a list"]),
        (
            [
                "created",
                {"key": "unknown:1", "status": "existed"},
                {"key": 5, "status": "existed"},
                {"key": "KEY0", "status": "duplicate"},
                {"key": "KEY0"},
                {"key": "KEY1", "status": "existed", "id": {"nested": 1}},
            ],
            [
                "not an object",
                "key is not one of the batch's calls",
                "key is not one of the batch's calls",
                "status 'duplicate' is not created, existed or rejected",
                "status None is not created, existed or rejected",
            ],
        ),
    ],
)
async def test_malformed_results_are_ignored_with_a_warning(
    http_session: aiohttp.ClientSession, results: object, reasons: list[str]
) -> None:
    batch = calls(2)
    if isinstance(results, list):
        text = json.dumps(results).replace("KEY0", batch[0].key).replace("KEY1", batch[1].key)
        results = json.loads(text)
    with structlog.testing.capture_logs() as captured:
        answer = await post_answer(http_session, batch, status=200, payload={"results": results})
    # An id that is not a string or number falls back to the key; the call still counts.
    expected_second = (
        AlreadyExisted(batch[1].key) if isinstance(results, list) else Created(batch[1].key)
    )
    assert answer == [Created(batch[0].key), expected_second]
    warnings = [e for e in captured if e["event"] == "crm.batch_entry.ignored"]
    assert [w["reason"] for w in warnings] == reasons
    assert all(w["log_level"] == "warning" and w["writer"] == "webhook hook" for w in warnings)
