"""The RingCentral REST API as the daemon needs it: call log, extension list, sessions, wstoken.

Used by `directory.py` (extension list, each user's own record for its time zone), `reconcile.py` and `backfill.py` (call log, session
lookups) and `subscription.py` (the WebSocket token). Every request goes through the rate-group
limiter, carries a fresh bearer token (a 401 refreshes it once and tries again), and is retried
with jittered exponential backoff on 5xx and connection errors; a 429 (and a 503 that names
its wait) closes the request's throttling group for the `Retry-After` the platform sent
(research/rc-protocol.md C6).
Responses are decoded into the typed records of `records.py`; call-log answers one record at
a time by `calllog_page.py`, which bounds and dates each and hands back those it refuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import msgspec
import structlog

from sscl_daemon.errors import SsclError
from sscl_daemon.ringcentral.auth import Authenticator
from sscl_daemon.ringcentral.calllog_page import decode_call_log_page
from sscl_daemon.ringcentral.ratelimit import GroupLimiter, RateGroup, throttle_delay
from sscl_daemon.ringcentral.records import (
    CallLogPage,
    ExtensionPage,
    ExtensionRecord,
    PageLink,
    RecordError,
    WsToken,
)
from sscl_daemon.ringcentral.retry import Retryable, RetryPolicy, with_retries

log = structlog.get_logger(__name__)

ACCOUNT = "/restapi/v1.0/account/~"
CALL_LOG_PATH = ACCOUNT + "/call-log"
EXTENSION_PATH = ACCOUNT + "/extension"
SESSION_PATH = ACCOUNT + "/telephony/sessions/"
WSTOKEN_PATH = "/restapi/oauth/wstoken"
MAX_PAGES = 10_000

T = TypeVar("T")


class ApiError(SsclError):
    """RingCentral answered a request with an error that retrying will not fix."""

    def __init__(self, method: str, path: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{method} {path} failed: HTTP {status} {code} {message}".strip())
        self.status = status
        self.code = code


class _ErrorBody(msgspec.Struct, kw_only=True):
    errorCode: str = ""
    message: str = ""


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(repr=False)


def iso(moment: datetime) -> str:
    """The `dateFrom`/`dateTo` form the call log takes (UTC, milliseconds, `Z`)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class RestClient:
    """Authenticated, throttled, retried access to the RingCentral REST API."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        auth: Authenticator,
        server: str,
        *,
        limiter: GroupLimiter | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self._http = http
        self._auth = auth
        self._server = server.rstrip("/")
        self._limiter = limiter or GroupLimiter()
        self._retry = retry or RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._last_token = ""
        self.requests = 0

    @property
    def auth(self) -> Authenticator:
        return self._auth

    @property
    def limiter(self) -> GroupLimiter:
        """The rate-group limiter, shared with requests made beside this client (media)."""
        return self._limiter

    async def request(
        self,
        method: str,
        path: str,
        group: RateGroup,
        params: Mapping[str, str] | None = None,
        *,
        allow: tuple[int, ...] = (),
    ) -> _Reply:
        """One API call; statuses in `allow` are returned instead of raised."""

        async def attempt() -> _Reply:
            reply = await self._send(method, path, group, params)
            if reply.status == 401:
                # The token died early (revoked, refreshed elsewhere): renew once, retry once.
                await self._auth.invalidate(self._last_token)
                reply = await self._send(method, path, group, params)
            if reply.status in allow or reply.status < 300:
                return reply
            delay = throttle_delay(reply.status, reply.headers)
            if delay is not None:
                self._limiter.close_for(group, delay)
                log.warning(
                    "ringcentral.request.throttled",
                    path=path,
                    status=reply.status,
                    retry_after=delay,
                )
                raise Retryable(f"{method} {path} answered {reply.status}", delay)
            if reply.status >= 500:
                raise Retryable(f"{method} {path} answered {reply.status}")
            error = _error_body(reply.body)
            raise ApiError(method, path, reply.status, error.errorCode, error.message)

        return await with_retries(self._retry, attempt)

    async def _send(
        self, method: str, path: str, group: RateGroup, params: Mapping[str, str] | None
    ) -> _Reply:
        await self._limiter.acquire(group)
        token = await self._auth.access_token()
        self._last_token = token
        self.requests += 1
        try:
            async with self._http.request(
                method,
                self._server + path,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self._timeout,
            ) as response:
                reply = _Reply(response.status, await response.read(), dict(response.headers))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Retryable(f"{method} {path} failed: {type(exc).__name__}") from None
        self._limiter.observe(group, reply.headers)
        return reply

    async def answers(self, within: float) -> bool:
        """Whether the platform answers an HTTP request at all (any status) within ``within``.

        An unauthenticated GET of the API's version document: no rate group, no token. It
        tells a dead WebSocket (the platform answers) from a stalled platform (nothing
        answers, and frames held back may still come on the socket): `subscription.py`.
        """
        try:
            async with self._http.get(
                self._server + "/restapi/v1.0", timeout=aiohttp.ClientTimeout(total=within)
            ) as response:
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            return False
        return True

    # -- typed helpers ---------------------------------------------------------------------

    async def ws_token(self) -> WsToken:
        """A WebSocket gateway token (research A1, group Auth)."""
        reply = await self.request("POST", WSTOKEN_PATH, RateGroup.AUTH)
        return _decode(reply, WsToken, WSTOKEN_PATH)

    async def call_log_pages(
        self,
        date_from: datetime,
        date_to: datetime,
        *,
        view: str = "Detailed",
        per_page: int = 1000,
        telephony_session_id: str | None = None,
    ) -> AsyncIterator[CallLogPage]:
        """Pages of the account call log for calls started in [date_from, date_to): each
        page's usable records, and those refused with the reason (`calllog_page.py`)."""
        params: dict[str, str] = {
            "view": view,
            "perPage": str(per_page),
            "dateFrom": iso(date_from),
            "dateTo": iso(date_to),
            "type": "Voice",
        }
        if telephony_session_id is not None:
            params["telephonySessionId"] = telephony_session_id
        path: str | None = CALL_LOG_PATH
        query: Mapping[str, str] | None = params
        for _ in range(MAX_PAGES):
            if path is None:
                return
            reply = await self.request("GET", path, RateGroup.HEAVY, query)
            try:
                page = decode_call_log_page(reply.body, date_from, datetime.now(UTC))
            except RecordError as exc:
                raise ApiError("GET", path, reply.status, "unreadable", exc.reason) from None
            yield page
            path, query = self._next_page(page.navigation.nextPage)

    @staticmethod
    def _next_page(link: PageLink | None) -> tuple[str | None, Mapping[str, str] | None]:
        if link is None or not link.uri:
            return None, None
        # The platform links absolutely; keep our own server (a proxy, the simulator).
        parts = urlsplit(link.uri)
        return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))

    async def call_log_for_session(
        self, telephony_session_id: str, since: datetime, until: datetime
    ) -> CallLogPage:
        """Call-log records of one telephony session that started in [since, until), and the
        records the answers held that were refused."""
        found = CallLogPage()
        async for page in self.call_log_pages(
            since, until, telephony_session_id=telephony_session_id
        ):
            found.records.extend(
                r for r in page.records if r.telephonySessionId == telephony_session_id
            )
            found.refused.extend(page.refused)
        return found

    async def extensions(self, per_page: int = 1000) -> list[ExtensionRecord]:
        """The account's whole extension list."""
        records: list[ExtensionRecord] = []
        page_number = 1
        for _ in range(MAX_PAGES):
            reply = await self.request(
                "GET",
                EXTENSION_PATH,
                RateGroup.MEDIUM,
                {"perPage": str(per_page), "page": str(page_number)},
            )
            page = _decode(reply, ExtensionPage, EXTENSION_PATH)
            records.extend(page.records)
            if page.navigation.nextPage is None or not page.records:
                break
            page_number += 1
        return records

    async def extension(self, extension_id: str) -> ExtensionRecord | None:
        """One extension's own record ("Get Extension", group Light), which carries its
        `regionalSettings` (the list leaves them out); None when it is gone (404)."""
        path = f"{EXTENSION_PATH}/{quote(extension_id, safe='')}"
        reply = await self.request("GET", path, RateGroup.LIGHT, allow=(404,))
        if reply.status == 404:
            return None
        return _decode(reply, ExtensionRecord, path)

    async def telephony_session(self, telephony_session_id: str) -> dict[str, object] | None:
        """The live session object, or None when the session no longer exists (404)."""
        path = SESSION_PATH + telephony_session_id
        reply = await self.request("GET", path, RateGroup.LIGHT, allow=(404,))
        if reply.status == 404:
            return None
        return _decode(reply, dict[str, object], path)


def _decode(reply: _Reply, kind: type[T], path: str) -> T:
    try:
        return msgspec.json.decode(reply.body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ApiError("GET", path, reply.status, "unreadable", str(exc)) from None
    except RecursionError:
        # msgspec recurses per nesting level: JSON nested past the limit is unreadable too.
        raise ApiError("GET", path, reply.status, "unreadable", "nested too deeply") from None


def _error_body(body: bytes) -> _ErrorBody:
    try:
        return msgspec.json.decode(body, type=_ErrorBody)
    except (msgspec.DecodeError, RecursionError):
        return _ErrorBody()
