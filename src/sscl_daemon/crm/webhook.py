"""The webhook writer: POSTs each call as signed JSON to any receiver (Standard Webhooks 1.0).

Why Standard Webhooks rather than Stripe's ``t=…,v1=…`` header: its message id is part of
the signed content and a header of its own, which is exactly our idempotency key; it is a
published, vendor-neutral spec with verifiers in many languages (``standardwebhooks`` on
PyPI and npm, Svix), and it allows several signatures at once for secret rotation.

Request::

    POST <url>
    content-type: application/json
    webhook-id: <key>                     # stable across retries = our idempotency key
    webhook-timestamp: <unix seconds>     # of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<raw body>")>
    idempotency-key: <key>                # the same key, for receivers that dedupe on it

    {"type": "call.logged", "timestamp": "<call end, RFC 3339 UTC>",
     "data": <content.call_document(call): schema_version 1, every CompletedCall field,
              outcome, subject, talk_seconds, recording_urls>}

The secret: ``whsec_<base64>`` of 24 to 64 random bytes as the spec issues them, the key
being the decoded bytes exactly as the reference libraries (``standardwebhooks``) derive it;
the configuration refuses any other (``signing.py``). How a receiver verifies
(:func:`verify`): reject a
timestamp more than 5 minutes from its clock, recompute the HMAC over
``"<webhook-id>.<webhook-timestamp>.<raw body>"``, compare in constant time against each
``v1,`` entry of ``webhook-signature``, then dedupe on ``webhook-id``.

Answers: 2xx -> ``Created`` (the ``id`` of a JSON answer body, else our key); 409 -> the
receiver already had it, ``AlreadyExisted``; 410 -> the endpoint is gone, permanent; others
as every CRM (``crm/http.py``).

Batches (the writer's ``batch_size`` > 1; dispatch -> :meth:`WebhookWriter.write_batch`): the
calls go in chunks of ``batch_size``, one signed POST per chunk, with the same headers::

    webhook-id: batch_<first 32 hex digits of sha256("\n".join(keys in order))>

    {"type": "call.logged.batch", "timestamp": "<latest call end of the batch>",
     "data": [<content.call_document(call)>, ...]}

The id is the same for the same calls, but a retry may group calls differently (only the
calls still due are claimed again), so receivers dedupe per ``data[i].key``, not per
``webhook-id``. Answers: 2xx -> every call ``Created`` (its key), refined per call by an
optional ``{"results": [{"key", "status": created|existed|rejected, "id", "error"}]}`` in
the answer (:func:`batch_results`); 409 -> every call ``AlreadyExisted``; 410 -> every call
permanent; anything else -> the same ``crm/http.py`` result for every call of the chunk.
Receivers read the keys of either kind of body with :func:`delivered_keys`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import aiohttp
import msgspec
import structlog

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import WebhookOptions, WriterSettings
from sscl_daemon.crm import batch, content
from sscl_daemon.crm.base import AlreadyExisted, Created, PermanentFailure, RetryLater
from sscl_daemon.crm.http import CrmHttp, Response, scrub
from sscl_daemon.crm.limiter import Limiter
from sscl_daemon.errors import SsclError
from sscl_daemon.signing import secret_key as secret_key

if TYPE_CHECKING:
    from sscl_daemon.crm.base import WriteContext, WriteResult

log = structlog.get_logger(__name__)

EVENT_TYPE = "call.logged"
BATCH_EVENT_TYPE = "call.logged.batch"
BATCH_ID_PREFIX = "batch_"
TOLERANCE = 300


class ItemStatus(enum.StrEnum):
    """A receiver's verdict on one call of a batch (``results[i].status``)."""

    CREATED = "created"
    EXISTED = "existed"
    REJECTED = "rejected"


class VerificationError(SsclError):
    """A delivery failed verification; the message says why (never the secret)."""


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: int = TOLERANCE
) -> str:
    """Check a delivery the way receivers should; returns its ``webhook-id``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise VerificationError(f"webhook-timestamp {stamp!r} is not unix seconds") from None
    if abs(now - timestamp) > tolerance:
        raise VerificationError(
            f"webhook-timestamp {timestamp} is outside the {tolerance} s tolerance"
        )
    try:
        key = secret_key(secret)
    except binascii.Error:
        raise VerificationError("the secret is not base64 (whsec_...)") from None
    expected = signature(key, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise VerificationError("no webhook-signature entry matches")
    return msg_id


def _encode(document: dict[str, object]) -> bytes:
    # Compact UTF-8 JSON (what json.dumps with ensure_ascii=False and tight separators
    # gives), several times faster: a batch of 100 calls is encoded on every delivery.
    return msgspec.json.encode(document)


def payload(call: CompletedCall) -> bytes:
    return _encode(
        {
            "type": EVENT_TYPE,
            "timestamp": content.iso_utc(call.end_time),
            "data": content.call_document(call),
        }
    )


def batch_payload(calls: Sequence[CompletedCall]) -> bytes:
    """The body of a batch delivery; its timestamp is the latest call end of the batch."""
    if not calls:
        raise ValueError("a webhook batch needs at least one call")
    latest = max(content.utc(call.end_time) for call in calls)
    return _encode(
        {
            "type": BATCH_EVENT_TYPE,
            "timestamp": content.iso_utc(latest),
            "data": [content.call_document(call) for call in calls],
        }
    )


def batch_id(keys: Sequence[str]) -> str:
    """The ``webhook-id`` of a batch: the same for the same calls in the same order."""
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    return BATCH_ID_PREFIX + digest[:32]


def delivery_documents(document: object) -> list[dict[str, object]]:
    """The call documents of a decoded delivery, single or batch; each has a string ``key``.

    Raises ``ValueError`` naming what is wrong when the body is neither a ``call.logged``
    nor a ``call.logged.batch`` delivery.
    """
    if not isinstance(document, dict):
        raise ValueError(
            f"a delivery is a JSON object with type and data, not {type(document).__name__}"
        )
    kind, data = document.get("type"), document.get("data")
    if kind == EVENT_TYPE:
        items: list[object] = [data]
    elif kind == BATCH_EVENT_TYPE:
        if not isinstance(data, list) or not data:
            raise ValueError(f"a {BATCH_EVENT_TYPE!r} delivery needs a non-empty data list")
        items = data
    else:
        raise ValueError(
            f"delivery type {kind!r} is neither {EVENT_TYPE!r} nor {BATCH_EVENT_TYPE!r}"
        )
    documents: list[dict[str, object]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
            raise ValueError(f"data item {index} is not a call document with a string key")
        documents.append(item)
    return documents


def delivered_keys(body: bytes) -> list[str]:
    """The call keys of a delivery body, single or batch, in order (for receivers).

    Verify the delivery first (:func:`verify`); raises ``ValueError`` on a body that is not
    JSON or is neither kind of delivery.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("the delivery body is not JSON (or nested too deeply)") from None
    return [str(item["key"]) for item in delivery_documents(document)]


def _record_id(value: object, fallback: str) -> str:
    return str(value) if isinstance(value, str | int) and value != "" else fallback


def _answer_id(answer: Response, fallback: str) -> str:
    return _record_id(answer.object().get("id"), fallback)


def _ignored(crm: str, index: int, why: str) -> None:
    # A receiver's bad bookkeeping must not fail calls it accepted with its 2xx.
    log.warning("crm.batch_entry.ignored", writer=crm, entry=index, reason=why)


def _item_result(crm: str, key: str, status: ItemStatus, entry: dict[str, object]) -> WriteResult:
    record_id = _record_id(entry.get("id"), key)
    if status is ItemStatus.EXISTED:
        return AlreadyExisted(record_id)
    if status is ItemStatus.CREATED:
        return Created(record_id)
    error = entry.get("error")
    reason = error if isinstance(error, str) and error else "no reason given"
    # scrub() without secrets: only to cap the length of the receiver's text.
    return PermanentFailure(scrub(f"{crm}: the receiver rejected {key}: {reason}", ()))


def batch_results(crm: str, keys: Sequence[str], body: object) -> list[WriteResult]:
    """Results of a 2xx batch answer: ``Created`` per key, refined by a ``results`` list."""
    results: dict[str, WriteResult] = {key: Created(key) for key in keys}
    entries = body.get("results") if isinstance(body, dict) else None
    if entries is None:
        return list(results.values())
    if not isinstance(entries, list):
        _ignored(crm, -1, f"results is a {type(entries).__name__}, not a list")
        return list(results.values())
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            _ignored(crm, index, "not an object")
            continue
        key, status = entry.get("key"), entry.get("status")
        if not isinstance(key, str) or key not in results:
            _ignored(crm, index, "key is not one of the batch's calls")
            continue
        try:
            verdict = ItemStatus(str(status))
        except ValueError:
            _ignored(crm, index, f"status {status!r} is not created, existed or rejected")
            continue
        results[key] = _item_result(crm, key, verdict, entry)
    return list(results.values())


class WebhookWriter:
    """Delivers calls to one webhook URL."""

    def __init__(
        self,
        settings: WriterSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(settings.options, WebhookOptions):
            raise TypeError(f"writer {settings.name!r}: webhook needs WebhookOptions")
        self._name = settings.name
        self._batch_size = settings.batch_size
        self._url = settings.options.url
        self._key = secret_key(settings.options.secret.reveal())
        self._clock = clock
        limiter = Limiter(settings.rate_limit, settings.concurrency)
        self.http = CrmHttp(
            f"webhook {settings.name}", session, limiter, None, timeout=settings.timeout
        )

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"WebhookWriter({self._name!r}, url={self._url!r})"

    async def _post(self, msg_id: str, body: bytes) -> Response | RetryLater | PermanentFailure:
        """One signed delivery; 409 and 410 come back as answers, the rest as ``crm/http``."""
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(self._key, msg_id, timestamp, body),
            "Idempotency-Key": msg_id,
        }
        return await self.http.request(
            "POST", self._url, data=body, headers=headers, accept=frozenset({409, 410})
        )

    def _gone(self) -> PermanentFailure:
        return PermanentFailure(
            f"{self.http.crm}: the receiver says the endpoint is gone (HTTP 410)"
        )

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult:
        answer = await self._post(call.key, payload(call))
        if not isinstance(answer, Response):
            return answer
        if answer.status == 409:
            return AlreadyExisted(_answer_id(answer, call.key))
        if answer.status == 410:
            return self._gone()
        return Created(_answer_id(answer, call.key))

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]:
        # batch_size 1 keeps one single-call delivery per call (the original wire format);
        # above it, every delivery is a batch, even of one call, so receivers see one kind.
        if self._batch_size <= 1:
            return await batch.each(self.write, items)
        return await batch.in_chunks(self.http.crm, items, self._batch_size, self._write_chunk)

    async def _write_chunk(self, chunk: list[batch.Pending]) -> None:
        keys = [p.call.key for p in chunk]
        answer = await self._post(batch_id(keys), batch_payload([p.call for p in chunk]))
        results: list[WriteResult]
        if not isinstance(answer, Response):
            results = [answer] * len(chunk)
        elif answer.status == 409:
            results = [AlreadyExisted(key) for key in keys]
        elif answer.status == 410:
            results = [self._gone()] * len(chunk)
        else:
            results = batch_results(self.http.crm, keys, answer.body)
        for pending, result in zip(chunk, results, strict=True):
            pending.result = result

    async def close(self) -> None:
        return None
