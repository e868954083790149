"""Common ground of the CRM stand-ins: request journal, fault switches, window rate limit.

Each stand-in (``pipedrive.py``, ``webhook.py``, ``hubspot.py``, ``salesforce.py``) is an
aiohttp sub-application over a state object. This module gives them the parts every one
needs, so tests drive all stand-ins the same way:

* :class:`StandInState` -- the journal of every request received (method, path, query,
  JSON body), the :class:`FaultPlan` and the keys whose call logs the CRM refuses;
* :func:`fault_middleware` -- records each request, then applies the next matching fault
  (its ``path`` is a substring of the request path, or with ``exact`` the whole path, so
  ``/crm/v3/objects/calls`` need not also catch ``/crm/v3/objects/calls/search``):
  answer with a status (429 with or without ``Retry-After``, 5xx, ...), or **stall** (hold
  the answer so the client times out), either *before* handling (the CRM never saw the
  request) or *after* handling (the CRM stored the record but the answer is lost -- the
  crash-after-send case the writers' idempotency must survive), or **drop** the connection
  after handling (stored, and the client sees the connection lost instead of an answer);
* :class:`WindowLimit` -- a fixed-window request budget for CRMs that announce their
  window in headers;
* :func:`refresh_refusal` -- the checks of an OAuth refresh-token grant with the client id
  and secret in the form (HubSpot, Salesforce); each stand-in answers in its CRM's words;
* :func:`serve` -- run an app on 127.0.0.1 with a free port for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Long enough to outlast any client timeout used in tests; cancelled when the server stops.
STALL_SECONDS = 30.0
# The handlers a stall holds on a server run by `serve`, cancelled when it stops, so a test
# that left one stalled does not wait out the server's shutdown timeout.
_STALLED: Final = web.AppKey("stalled_handlers", set[asyncio.Task[Any]])


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: object
    raw: bytes


@dataclass
class Fault:
    """One planned misbehaviour for requests whose path contains ``path`` (or, with ``exact``,
    is ``path``) and whose method is ``method`` (any when None)."""

    status: int | None = None  # answer with this status instead of handling
    headers: Mapping[str, str] = field(default_factory=dict)
    body: object = None
    stall_before: bool = False  # hang without handling (the CRM never saw it)
    stall_after: bool = False  # handle, then hang (stored, answer lost)
    drop_after: bool = False  # handle, then close the connection (stored, answer lost)
    path: str = ""
    method: str | None = None
    remaining: int = 1
    exact: bool = False

    def matches(self, request: web.Request) -> bool:
        path = request.path == self.path if self.exact else self.path in request.path
        return path and (self.method is None or self.method == request.method)


@dataclass
class FaultPlan:
    """Faults waiting for matching requests, consumed in order."""

    queue: deque[Fault] = field(default_factory=deque)

    def add(self, fault: Fault) -> None:
        self.queue.append(fault)

    def fail(
        self,
        status: int,
        *,
        path: str = "",
        method: str | None = None,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: object = None,
        exact: bool = False,
    ) -> None:
        self.add(
            Fault(
                status,
                dict(headers or {}),
                body,
                path=path,
                method=method,
                remaining=times,
                exact=exact,
            )
        )

    def stall(
        self,
        *,
        after: bool,
        path: str = "",
        method: str | None = None,
        times: int = 1,
        exact: bool = False,
    ) -> None:
        self.add(
            Fault(
                stall_before=not after,
                stall_after=after,
                path=path,
                method=method,
                remaining=times,
                exact=exact,
            )
        )

    def drop(
        self, *, path: str = "", method: str | None = None, times: int = 1, exact: bool = False
    ) -> None:
        self.add(Fault(drop_after=True, path=path, method=method, remaining=times, exact=exact))

    def take(self, request: web.Request) -> Fault | None:
        for fault in self.queue:
            if fault.matches(request):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.queue.remove(fault)
                return fault
        return None


@dataclass
class StandInState:
    """Base of every stand-in's state: the request journal and the fault plan."""

    requests: list[RecordedRequest] = field(default_factory=list)
    faults: FaultPlan = field(default_factory=FaultPlan)
    # Call logs carrying one of these idempotency keys are refused the way the CRM refuses
    # invalid data (a validation rule): the conformance kit's "the CRM refuses this call".
    refused_keys: set[str] = field(default_factory=set)

    def count(self, method: str | None = None, path: str = "") -> int:
        return sum(
            1 for r in self.requests if path in r.path and (method is None or r.method == method)
        )


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers=dict(headers or {}))


def fault_middleware(state: StandInState) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: object = json.loads(raw) if raw else None
        except ValueError:
            body = None
        state.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), dict(request.headers), body, raw
            )
        )
        fault = state.faults.take(request)
        if fault is not None and fault.stall_before:
            await _stall(request)
        if fault is not None and fault.status is not None:
            return json_response(fault.body, fault.status, fault.headers)
        response = await handler(request)
        if fault is not None and fault.stall_after:
            await _stall(request)
        if fault is not None and fault.drop_after and request.transport is not None:
            request.transport.abort()
            # Ends the handler without an answer; the client sees the connection go away.
            raise asyncio.CancelledError
        return response

    return middleware


async def _stall(request: web.Request) -> None:
    stalled = request.config_dict.get(_STALLED)
    task = asyncio.current_task()
    if stalled is not None and task is not None:
        stalled.add(task)
    try:
        await asyncio.sleep(STALL_SECONDS)
    finally:
        if stalled is not None and task is not None:
            stalled.discard(task)


@dataclass
class WindowLimit:
    """``limit`` requests per fixed ``window`` seconds; ``clock`` is injectable for tests."""

    limit: int
    window: float
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    _start: float = 0.0
    _used: int = 0

    def hit(self) -> tuple[bool, int, float]:
        """Count one request: (allowed, remaining, seconds until the window resets)."""
        now = self.clock()
        if now - self._start >= self.window:
            self._start = now
            self._used = 0
        self._used += 1
        reset = max(self.window - (now - self._start), 0.0)
        return self._used <= self.limit, max(self.limit - self._used, 0), reset


class GrantRefusal(enum.Enum):
    """Why a token endpoint refuses a refresh-token grant (RFC 6749 section 5.2)."""

    GRANT_TYPE = "unsupported_grant_type"
    CLIENT = "invalid_client"
    REFRESH_TOKEN = "invalid_grant"


def refresh_refusal(
    form: Mapping[str, object], client_id: str, client_secret: str, refresh_token: str
) -> GrantRefusal | None:
    """What is wrong with a refresh-token grant whose client credentials are in the form."""
    if form.get("grant_type") != "refresh_token":
        return GrantRefusal.GRANT_TYPE
    if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
        return GrantRefusal.CLIENT
    if form.get("refresh_token") != refresh_token:
        return GrantRefusal.REFRESH_TOKEN
    return None


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run ``app`` on a free loopback port; yields its base URL (no trailing slash)."""
    # Stalled handlers (faults) must not hold the shutdown up: they are cancelled as it
    # begins (the shutdown timeout is for any other handler still running).
    stalled: set[asyncio.Task[Any]] = set()

    async def release(_: web.Application) -> None:
        for task in list(stalled):
            task.cancel()

    app[_STALLED] = stalled
    app.on_shutdown.append(release)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
