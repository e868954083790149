"""Shared HTTP plumbing of the CRM writers: auth, throttling and error classification.

A writer sends every request through :meth:`CrmHttp.request`, which holds a limiter slot,
applies the credentials, and turns everything that is not a usable answer into the
dispatcher's vocabulary (``crm/base.py``). A writer whose CRM says something the generic
rules would misread passes a ``classify_first`` hook (:data:`ResponseHook`): it sees every
answer that is neither 2xx nor accepted, after the 401 refresh, and may return the result
itself (Salesforce: 403 ``REQUEST_LIMIT_EXCEEDED`` is "slow down", not "forbidden");
``None`` leaves the answer to the generic rules:

* connection errors, timeouts, 408 and 5xx -> ``RetryLater`` (delay from ``Retry-After``
  when sent, otherwise the dispatcher's backoff);
* 429 -> ``RetryLater`` with ``Retry-After`` (seconds or an HTTP-date), else the CRM's own
  reset header, else :data:`DEFAULT_RATE_LIMIT_DELAY`; the limiter is paused as well (so it
  is for a ``RetryLater`` with a delay from the hook);
* 401 -> one token refresh and one retry for OAuth credentials, then ``PermanentFailure``
  "credentials rejected";
* other 4xx (400, 422 validation errors, 403, 404) -> ``PermanentFailure`` keeping the CRM's
  own message.

Reasons name the CRM, the status and the CRM's message, never a token: known secrets are
masked and URLs are reported without their query string.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from sscl_daemon.crm.base import PermanentFailure, RetryLater
from sscl_daemon.crm.limiter import Limiter, pause_from_headers
from sscl_daemon.crm.oauth import OAuthClient, TokenRefusedError, TokenUnavailableError

DEFAULT_RATE_LIMIT_DELAY = 10.0
MAX_REASON = 500
MASK = "***"

Failure = RetryLater | PermanentFailure


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def error_message(body: object, text: str) -> str:
    """The CRM's own error text from the usual JSON shapes, else the raw body."""
    if isinstance(body, list) and body:
        return "; ".join(error_message(item, "") for item in body[:5] if item) or text
    if isinstance(body, dict):
        parts: list[str] = []
        for key in ("message", "error", "error_description", "error_info", "errorCode"):
            value = body.get(key)
            if isinstance(value, str) and value and value not in parts:
                parts.append(value)
        errors = body.get("errors")
        if isinstance(errors, list):
            parts.extend(error_message(e, "") for e in errors[:5] if e)
        if parts:
            return "; ".join(p for p in parts if p)
    return text.strip()


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text[:MAX_REASON]


def classify(
    crm: str,
    status: int,
    headers: Mapping[str, str],
    message: str,
    now: datetime | None = None,
) -> Failure:
    """What a non-2xx answer means for the dispatcher (pure)."""
    detail = f": {message}" if message else ""
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = parse_retry_after(lowered.get("retry-after"), now)
    if status == 429:
        delay = retry_after
        if delay is None:
            delay = pause_from_headers(lowered) or DEFAULT_RATE_LIMIT_DELAY
        return RetryLater(f"{crm} rate limit (HTTP 429){detail}", delay)
    if status == 408 or status >= 500:
        return RetryLater(f"{crm} unavailable (HTTP {status}){detail}", retry_after)
    if status == 401:
        return PermanentFailure(
            f"{crm} credentials rejected (HTTP 401){detail}; renew the writer's token in the configuration"
        )
    if 300 <= status < 400:
        where = lowered.get("location", "elsewhere")
        return PermanentFailure(
            f"{crm} answered with a redirect (HTTP {status}) to {where}; configure the final URL"
        )
    if status == 403:
        return PermanentFailure(f"{crm} refused access (HTTP 403){detail}")
    return PermanentFailure(f"{crm} rejected the request (HTTP {status}){detail}")


@dataclass(frozen=True)
class Response:
    """A usable CRM answer (2xx or a status the caller asked to see)."""

    status: int
    headers: Mapping[str, str]
    body: object
    text: str

    def object(self) -> dict[str, object]:
        return self.body if isinstance(self.body, dict) else {}


# The hook's answer is one of the failing WriteResults: what reads as success after a non-2xx
# status (a 409 "already there") needs the call at hand and stays with ``accept=``.
ResponseHook = Callable[["Response", str], Failure | None]
"""``(answer, scrubbed CRM message) -> result or None`` for a non-2xx, non-accepted answer."""


class Auth(Protocol):
    """How a writer proves who it is; :meth:`refresh` says whether a retry after 401 helps."""

    async def apply(self, headers: dict[str, str], params: dict[str, str]) -> str | None: ...

    async def refresh(self, used: str | None) -> bool: ...

    def secrets(self) -> tuple[str, ...]: ...


class StaticToken:
    """A fixed token in a header or a query parameter: a 401 is not cured by a refresh."""

    def __init__(
        self, token: str, *, header: str | None = None, param: str | None = None, scheme: str = ""
    ) -> None:
        self._token = token
        self._header = header
        self._param = param
        self._scheme = scheme

    def __repr__(self) -> str:
        return f"{type(self).__name__}(header={self._header!r}, param={self._param!r}, token='***')"

    async def apply(self, headers: dict[str, str], params: dict[str, str]) -> str | None:
        if self._header:
            headers[self._header] = self._scheme + self._token
        if self._param:
            params[self._param] = self._token
        return self._token

    async def refresh(self, used: str | None) -> bool:
        return False

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)


class BearerToken(StaticToken):
    """A long-lived bearer token (HubSpot private app)."""

    def __init__(self, token: str) -> None:
        super().__init__(token, header="Authorization", scheme="Bearer ")


class HeaderToken(StaticToken):
    """A token in a header of its own (Pipedrive ``x-api-token``)."""

    def __init__(self, header: str, token: str) -> None:
        super().__init__(token, header=header)


class QueryToken(StaticToken):
    """A token as a query parameter (Pipedrive's older ``api_token``)."""

    def __init__(self, param: str, token: str) -> None:
        super().__init__(token, param=param)


class OAuthBearer:
    """An OAuth access token, refreshed through an :class:`OAuthClient`."""

    def __init__(self, client: OAuthClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"OAuthBearer({self.client!r})"

    async def apply(self, headers: dict[str, str], params: dict[str, str]) -> str | None:
        token = await self.client.access_token()
        headers["Authorization"] = f"Bearer {token}"
        return token

    async def refresh(self, used: str | None) -> bool:
        await self.client.refresh(used)
        return True

    def secrets(self) -> tuple[str, ...]:
        return self.client.secrets()


def token_failure(crm: str, exc: TokenRefusedError | TokenUnavailableError) -> Failure:
    """A refused refresh needs new credentials; an unreachable token endpoint, patience."""
    if isinstance(exc, TokenRefusedError):
        return PermanentFailure(f"{crm} credentials rejected: {exc}")
    return RetryLater(f"{crm} token refresh failed: {exc}")


async def ensure_token(crm: str, client: OAuthClient) -> Failure | None:
    """Get a token before building URLs from what its answer names (instance, api domain)."""
    try:
        await client.access_token()
    except (TokenRefusedError, TokenUnavailableError) as exc:
        return token_failure(crm, exc)
    return None


def _decode(text: str) -> object:
    if not text:
        return None
    try:
        decoded: object = json.loads(text)
    except (ValueError, RecursionError):
        # Not JSON, or nested past the recursion limit: an unreadable body (the status decides).
        return None
    return decoded


# A request body: bytes, or a function making a fresh multipart form or payload (uploads:
# a file streamed as it is sent, made again for a retried request).
Body = bytes | Callable[[], aiohttp.FormData | aiohttp.payload.Payload]


class CrmHttp:
    """One writer's HTTP client: limiter, credentials and classification in one place."""

    def __init__(
        self,
        crm: str,
        session: aiohttp.ClientSession,
        limiter: Limiter,
        auth: Auth | None,
        *,
        timeout: float = 30.0,
        message: Callable[[object, str], str] = error_message,
        classify_first: ResponseHook | None = None,
    ) -> None:
        self.crm = crm
        self.session = session
        self.limiter = limiter
        self.auth = auth
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._message = message
        self._classify_first = classify_first
        self.requests = 0

    def _secrets(self) -> tuple[str, ...]:
        return self.auth.secrets() if self.auth is not None else ()

    def reason(self, answer: Response) -> str:
        """The CRM's own message of an answer, with every known secret masked."""
        return scrub(self._message(answer.body, answer.text), self._secrets())

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        data: Body | None = None,
        headers: Mapping[str, str] | None = None,
        accept: frozenset[int] = frozenset(),
    ) -> Response | Failure:
        """Send one request; a 2xx (or a status in ``accept``) comes back as a Response."""
        where = f"{method} {urlsplit(url).path}"
        refreshed = False
        while True:
            blocked = self.limiter.blocked_for()
            if blocked > self.limiter.max_wait:
                return RetryLater(f"{self.crm} rate limit window closed ({where})", blocked)
            sent_headers = dict(headers or {})
            sent_params = dict(params or {})
            try:
                used = await self.auth.apply(sent_headers, sent_params) if self.auth else None
            except (TokenRefusedError, TokenUnavailableError) as exc:
                return token_failure(self.crm, exc)
            answer = await self._send(
                method, url, where, sent_params, json_body, data, sent_headers
            )
            if not isinstance(answer, Response):
                return answer
            if answer.status == 401 and self.auth is not None and not refreshed:
                refreshed = True
                try:
                    if await self.auth.refresh(used):
                        continue
                except (TokenRefusedError, TokenUnavailableError) as exc:
                    return token_failure(self.crm, exc)
            if 200 <= answer.status < 300 or answer.status in accept:
                return answer
            return self._failure(answer)

    def _failure(self, answer: Response) -> Failure:
        message = self.reason(answer)
        hooked = self._classify_first(answer, message) if self._classify_first else None
        failure = hooked or classify(self.crm, answer.status, answer.headers, message)
        if (hooked or answer.status == 429) and isinstance(failure, RetryLater) and failure.delay:
            self.limiter.pause(failure.delay)
        return failure

    async def _send(
        self,
        method: str,
        url: str,
        where: str,
        params: Mapping[str, str],
        json_body: object,
        data: Body | None,
        headers: Mapping[str, str],
    ) -> Response | Failure:
        self.requests += 1
        try:
            async with (
                self.limiter.slot(),
                self.session.request(
                    method,
                    url,
                    params=params or None,
                    json=json_body if data is None else None,
                    # A form is made afresh per attempt: a sent one cannot be sent again.
                    data=data() if callable(data) else data,
                    headers=headers,
                    timeout=self.timeout,
                    # A redirect would turn a POST into a GET or send a token elsewhere.
                    allow_redirects=False,
                ) as resp,
            ):
                text = await resp.text()
                answer_headers = {k.lower(): v for k, v in resp.headers.items()}
                status = resp.status
        except TimeoutError:
            return RetryLater(f"{self.crm} timed out ({where})", uncertain=True)
        except aiohttp.ClientConnectorError as exc:
            # Never connected: the CRM cannot have seen the request.
            return RetryLater(f"{self.crm} connection failed ({where}: {type(exc).__name__})")
        except aiohttp.ClientError as exc:
            return RetryLater(
                f"{self.crm} connection failed ({where}: {type(exc).__name__})", uncertain=True
            )
        self.limiter.observe(answer_headers)
        return Response(status, answer_headers, _decode(text), text)
