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

The secret: ``whsec_<base64>`` as the spec issues them (the key is the decoded bytes);
any other string is used as UTF-8 bytes. How a receiver verifies (:func:`verify`): reject a
timestamp more than 5 minutes from its clock, recompute the HMAC over
``"<webhook-id>.<webhook-timestamp>.<raw body>"``, compare in constant time against each
``v1,`` entry of ``webhook-signature``, then dedupe on ``webhook-id``.

Answers: 2xx -> ``Created`` (the ``id`` of a JSON answer body, else our key); 409 -> the
receiver already had it, ``AlreadyExisted``; 410 -> the endpoint is gone, permanent; others
as every CRM (``crm/http.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence

import aiohttp

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import WebhookOptions, WriterSettings
from sscl_daemon.crm import batch, content
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    PermanentFailure,
    WriteContext,
    WriteResult,
)
from sscl_daemon.crm.http import CrmHttp, Response
from sscl_daemon.crm.limiter import Limiter

EVENT_TYPE = "call.logged"
TOLERANCE = 300
SECRET_PREFIX = "whsec_"


class VerificationError(Exception):
    """A delivery failed verification; the message says why (never the secret)."""


def secret_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error:
            pass
    return secret.encode()


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
    expected = signature(secret_key(secret), msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise VerificationError("no webhook-signature entry matches")
    return msg_id


def payload(call: CompletedCall) -> bytes:
    document = {
        "type": EVENT_TYPE,
        "timestamp": content.iso_utc(call.end_time),
        "data": content.call_document(call),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _answer_id(answer: Response, fallback: str) -> str:
    record_id = answer.object().get("id")
    return str(record_id) if isinstance(record_id, str | int) and record_id != "" else fallback


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

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult:
        body = payload(call)
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": call.key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(self._key, call.key, timestamp, body),
            "Idempotency-Key": call.key,
        }
        answer = await self.http.request(
            "POST", self._url, data=body, headers=headers, accept=frozenset({409, 410})
        )
        if not isinstance(answer, Response):
            return answer
        if answer.status == 409:
            return AlreadyExisted(_answer_id(answer, call.key))
        if answer.status == 410:
            return PermanentFailure(
                f"{self.http.crm}: the receiver says the endpoint is gone (HTTP 410)"
            )
        return Created(_answer_id(answer, call.key))

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]:
        return await batch.each(self.write, items)

    async def close(self) -> None:
        return None
