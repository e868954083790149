"""The simulated RingCentral WebSocket gateway (WSG): connections, subscriptions, recovery.

Sits between the engine (which calls `publish` with telephony notifications) and the sockets
of the clients. Protocol from research/rc-protocol.md section A:

* handshake with `?access_token=` or `Authorization: Bearer` (G-A1); no token -> close 4400
  [obs: OPENCLAW PR #150]; a bad ws token -> HTTP 401 or close 4401 (G-A2, profile);
* first frame `ConnectionDetails` with the `wsc` recovery token and the limits (A4);
* `ClientRequest` frames for subscription create/update/get/delete (A5), answered with the
  request's messageId, `WSG-SubscriptionId` and `X-Rate-Limit-*` headers; one subscription per
  connection, a second create replaces the first (G-A5);
* `ServerNotification` frames carrying the webhook envelope, each with the `wsc` and a growing
  sequence (A6, G-A7); `Heartbeat` echo (G-A10);
* idle/absolute timeouts: an `Error` frame WSG-902/903, then close (A7, G-A9);
* recovery with `?wsc=` within `recoveryTimeout`: `recoveryState` Successful plus a replay of
  the buffered notifications, or Failed with WSG-1001/1003/1005; WSG-400 + close for a
  malformed token (A8, G-A8).

A *WS session* (what the `wsc` token names) outlives its socket for the recovery window and
keeps the subscription and the replay buffer; a *connection* is one socket attached to it.
Each connection has one writer task that drains its frame queue, so publishing is a plain
synchronous append (no task per frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from multidict import MultiDict, MultiMapping

from sscl_daemon.simulator import wsframes
from sscl_daemon.simulator.faults import Faults
from sscl_daemon.simulator.oauth import OAuthError, OAuthServer, OAuthSession
from sscl_daemon.simulator.profiles import BadWsTokenReply, PlatformProfile, RateGroup
from sscl_daemon.simulator.ratelimit import RateLimiter, rate_exceeded_body, rate_group_for
from sscl_daemon.simulator.subscriptions import (
    GatewaySubscription,
    OutgoingEvent,
    SubscriptionError,
    build_subscription,
)


class RestOverWs(Protocol):
    """The REST side, for `ClientRequest`s that are not about subscriptions (research A3)."""

    def ws_request(
        self, method: str, path: str, query: MultiMapping[str]
    ) -> tuple[int, object]: ...


_WSC_FORM = re.compile(r"^[A-Za-z0-9_-]{32}$")
_SUB_PATH = re.compile(r"^/restapi/v1\.0/subscription/?(?P<id>[^/?]+)?(?P<renew>/renew)?/?$")


@dataclass
class _WsToken:
    session: OAuthSession
    expires_at: float
    used: bool = False


@dataclass
class WsSession:
    """What a `wsc` token names: subscription + replay buffer, alive for the recovery window."""

    token: str
    oauth: OAuthSession
    buffer: deque[tuple[int, bytes]]
    subscription: GatewaySubscription | None = None
    sequence: int = 0
    last_written: int = 0
    connection: Connection | None = None
    detached_at: float | None = None

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


@dataclass(eq=False)
class Connection:
    """One open socket attached to a WsSession."""

    ws: web.WebSocketResponse
    request: web.Request
    session: WsSession
    opened_at: float
    last_activity: float
    outbox: deque[tuple[int, bytes]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    silent: bool = False
    close_code: int | None = None
    last_ping: float = 0.0
    ping_sent_at: float | None = None
    frames_sent: int = 0

    def enqueue(self, frame: bytes, sequence: int = 0) -> None:
        self.outbox.append((sequence, frame))
        self.wake.set()


def _abort(conn: Connection) -> None:
    """Cut the TCP connection with no close frame (an RST to the client)."""
    transport = conn.request.transport
    if transport is not None:
        transport.abort()


@dataclass
class Gateway:
    """All WS sessions of the simulated platform and the delivery of notifications to them."""

    account_id: str
    oauth: OAuthServer
    profile: PlatformProfile
    faults: Faults
    limiter: RateLimiter
    clock: Callable[[], float]
    sessions: dict[str, WsSession] = field(default_factory=dict)
    connections: set[Connection] = field(default_factory=set)
    _ws_tokens: dict[str, _WsToken] = field(default_factory=dict, repr=False)
    _held: list[OutgoingEvent] = field(default_factory=list)
    # notification uuids are strings of digits in real captures (research B2)
    _uuids: Iterator[int] = field(
        default_factory=lambda: itertools.count(10**18 + secrets.randbelow(10**17))
    )
    _change: asyncio.Event = field(default_factory=asyncio.Event)
    rest: RestOverWs | None = None

    # -- tokens ----------------------------------------------------------------------------

    def issue_ws_token(self, session: OAuthSession) -> tuple[str, float]:
        token = "sim-ws-" + secrets.token_urlsafe(32)
        ttl = self.profile.ws_token_ttl_s
        self._ws_tokens[token] = _WsToken(session, self.clock() + ttl)
        return token, ttl

    def _take_ws_token(self, token: str) -> OAuthSession | None:
        record = self._ws_tokens.get(token)
        if record is None or record.session.revoked or self.clock() >= record.expires_at:
            return None
        if record.used and self.profile.ws_token_single_use:
            return None
        record.used = True
        return record.session

    def expire_ws_tokens(self) -> None:
        for record in self._ws_tokens.values():
            record.expires_at = float("-inf")

    @property
    def limits(self) -> wsframes.GatewayLimits:
        p = self.profile
        return wsframes.GatewayLimits(
            p.recovery_timeout_s,
            p.recovery_buffer_size,
            p.idle_timeout_s,
            p.absolute_timeout_s,
            p.max_active_requests,
            p.max_connections_per_session,
        )

    # -- sessions --------------------------------------------------------------------------

    def _new_session(self, oauth: OAuthSession) -> WsSession:
        token = secrets.token_urlsafe(24)
        session = WsSession(token, oauth, deque(maxlen=self.profile.recovery_buffer_size))
        self.sessions[token] = session
        return session

    def _purge(self) -> None:
        """Forget sessions whose socket has been gone longer than the recovery window."""
        now = self.clock()
        window = self.profile.recovery_timeout_s
        for token in [
            t
            for t, s in self.sessions.items()
            if s.connection is None and s.detached_at is not None and now - s.detached_at > window
        ]:
            del self.sessions[token]

    def _recover(self, wsc_token: str, oauth: OAuthSession) -> tuple[WsSession, str, str | None]:
        """Attach to an old session if allowed: (session, recoveryState, recoveryErrorCode)."""
        self._purge()
        old = self.sessions.get(wsc_token)
        code: str | None = None
        if self.faults.take_refused_recovery() or old is None:
            code = self.profile.recovery_expired_code
        elif old.oauth.session_id != oauth.session_id:
            code = "WSG-1003"
        elif old.subscription is None:
            code = "WSG-1005"
        if code is not None or old is None:
            return self._new_session(oauth), "Failed", code
        stale = old.connection
        if stale is not None:
            # The old socket's writer wakes, sees it is no longer the session's, and ends.
            self._detach(stale)
            stale.wake.set()
        return old, "Successful", None

    # -- the socket handler ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await self.faults.wait_unpaused()
        token = request.query.get("access_token")
        auth = request.headers.get("Authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        if not token:
            await ws.prepare(request)
            await ws.close(code=4400, message=b"Did not receive authorization")
            return ws
        oauth = self._take_ws_token(token)
        if oauth is None:
            if self.profile.bad_ws_token_reply is BadWsTokenReply.HTTP_401:
                err = OAuthError(401, "invalid_token", "Token not found", "OAU-213")
                raise web.HTTPUnauthorized(
                    text=wsframes.ENCODER.encode(err.body()).decode(),
                    content_type="application/json",
                )
            await ws.prepare(request)
            await ws.close(code=4401, message=b"Invalid or expired access token")
            return ws
        wsc_token = request.query.get("wsc")
        await ws.prepare(request)
        if wsc_token is not None and not _WSC_FORM.match(wsc_token):
            await ws.send_frame(
                wsframes.error_frame("WSG-400", "Malformed WebSocket session context token"),
                WSMsgType.TEXT,
            )
            await ws.close(code=1008, message=b"Malformed wsc")
            return ws
        recovery_state: str | None = None
        error_code: str | None = None
        if wsc_token is None:
            session = self._new_session(oauth)
        else:
            session, recovery_state, error_code = self._recover(wsc_token, oauth)
        now = self.clock()
        conn = Connection(ws, request, session, now, now, last_ping=now)
        details = wsframes.connection_details(
            self.limits,
            session.token,
            session.next_sequence(),
            datetime.now(UTC),
            recovery_state,
            error_code,
        )
        conn.enqueue(details)
        if recovery_state == "Successful":
            floor = session.last_written - self.profile.recovery_replay_overlap
            for seq, frame in session.buffer:
                if seq > floor:
                    conn.enqueue(frame, seq)
        session.connection = conn
        session.detached_at = None
        self.connections.add(conn)
        self._changed()
        writer = asyncio.create_task(self._writer(conn))
        try:
            await self._reader(conn)
        finally:
            self._detach(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self._changed()
        return ws

    def _detach(self, conn: Connection) -> None:
        self.connections.discard(conn)
        session = conn.session
        if session.connection is conn:
            session.connection = None
            session.detached_at = self.clock()

    async def _reader(self, conn: Connection) -> None:
        ws, profile = conn.ws, self.profile
        while not ws.closed and conn.session.connection is conn:
            idle_at = conn.last_activity + profile.idle_timeout_s
            absolute_at = conn.opened_at + profile.absolute_timeout_s
            ping_at = self._ping_deadline(conn)
            timeout: float | None = max(0.0, min(idle_at, absolute_at, ping_at) - self.clock())
            if conn.silent or conn.close_code is not None:
                timeout = None
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                now = self.clock()
                if now >= absolute_at:
                    conn.enqueue(wsframes.error_frame("WSG-903", "Absolute timeout expired"))
                elif now >= idle_at:
                    conn.enqueue(wsframes.error_frame("WSG-902", "Idle timeout expired"))
                elif conn.ping_sent_at is None:
                    conn.ping_sent_at = now
                    await self.faults.wait_unpaused()
                    await ws.ping()
                    continue
                else:
                    # no pong in time: the gateway may drop the client (research A2)
                    _abort(conn)
                    return
                conn.close_code = profile.timeout_close_code
                conn.wake.set()
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if msg.type is WSMsgType.PONG:
                # answers to our pings keep the socket alive but are not client activity
                conn.ping_sent_at = None
                conn.last_ping = self.clock()
                continue
            conn.last_activity = self.clock()
            if msg.type is WSMsgType.PING:
                if not conn.silent:
                    await self.faults.wait_unpaused()
                    await ws.pong(msg.data)
            elif msg.type is WSMsgType.TEXT:
                self._on_text(conn, msg.data)

    def _ping_deadline(self, conn: Connection) -> float:
        interval = self.profile.ping_interval_s
        if interval is None:
            return float("inf")
        if conn.ping_sent_at is None:
            return conn.last_ping + interval
        return conn.ping_sent_at + self.profile.pong_timeout_s

    async def _writer(self, conn: Connection) -> None:
        ws = conn.ws
        session = conn.session
        while True:
            await conn.wake.wait()
            conn.wake.clear()
            await self.faults.wait_unpaused()
            if session.connection is not conn:
                break
            outbox = conn.outbox
            try:
                while outbox:
                    seq, frame = outbox.popleft()
                    if conn.silent:
                        continue
                    await ws.send_frame(frame, WSMsgType.TEXT)
                    conn.frames_sent += 1
                    if seq > session.last_written:
                        session.last_written = seq
            except (ConnectionError, RuntimeError):
                # the client went away mid-write; the reader sees the socket close
                _abort(conn)
                return
            if conn.close_code is not None:
                break
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=conn.close_code or 1000)

    # -- client frames ---------------------------------------------------------------------

    def _on_text(self, conn: Connection, data: str) -> None:
        try:
            frame = wsframes.DECODER.decode(data)
            header = frame[0]
            kind = header["type"]
        except (ValueError, TypeError, LookupError):
            conn.enqueue(wsframes.error_frame("WSG-400", "Malformed WebSocket message"))
            return
        message_id = str(header.get("messageId", ""))
        if kind == "Heartbeat":
            conn.enqueue(wsframes.heartbeat_reply(message_id))
        elif kind == "ClientRequest":
            body = frame[1] if len(frame) > 1 else None
            status, headers, reply = self._client_request(conn.session, header, body)
            conn.enqueue(wsframes.client_response(message_id, status, headers, reply))
            self._changed()

    def _client_request(
        self, session: WsSession, header: dict[str, object], body: object
    ) -> tuple[int, dict[str, str], object]:
        method = str(header.get("method", "GET")).upper()
        path, _, raw_query = str(header.get("path", "")).partition("?")
        query: MultiDict[str] = MultiDict(parse_qsl(raw_query, keep_blank_values=True))
        extra = header.get("query")
        if isinstance(extra, dict):
            for key, value in extra.items():
                for item in value if isinstance(value, list) else [value]:
                    query.add(str(key), str(item))
        sub_match = _SUB_PATH.match(path)
        if sub_match is not None:
            group = RateGroup.LIGHT if method == "GET" else RateGroup.MEDIUM
        else:
            group = rate_group_for(method, path)
        decision = self.limiter.check(session.oauth.client_id, group, self.clock())
        headers = {
            "RCRequestId": wsframes.request_id(),
            "Content-Type": "application/json",
            **decision.headers(),
        }
        if not decision.allowed:
            return 429, headers, rate_exceeded_body()
        fault = self.faults.take_rest_fault(path)
        if fault is not None:
            code = "CMN-201" if fault.status >= 500 else "CMN-102"
            return fault.status, headers, wsframes.rest_error(code, "Injected fault")
        if sub_match is None:
            if self.rest is None:
                return (
                    404,
                    headers,
                    wsframes.rest_error("CMN-102", f"Resource [{path}] is not found"),
                )
            status, reply = self.rest.ws_request(method, path, query)
            return status, headers, reply
        try:
            status, reply, sub = self._subscription_request(session, method, sub_match["id"], body)
        except SubscriptionError as exc:
            return exc.status, headers, wsframes.rest_error(exc.code, exc.message)
        if sub is not None:
            headers["WSG-SubscriptionId"] = sub.id
        return status, headers, reply

    def _subscription_request(
        self, session: WsSession, method: str, sub_id: str | None, body: object
    ) -> tuple[int, object, GatewaySubscription | None]:
        current = session.subscription
        if sub_id is None and method == "POST":
            sub = self._create(session, body)
            return 200, sub.info(), sub
        if sub_id is None and method == "GET":
            records = [current.info()] if current else []
            return 200, {"uri": "/restapi/v1.0/subscription", "records": records}, None
        if current is None or sub_id != current.id:
            raise SubscriptionError(
                404, "CMN-102", "Resource for parameter [subscriptionId] is not found"
            )
        if method == "DELETE":
            session.subscription = None
            return 204, None, None
        if method == "PUT":
            current = build_subscription(
                body, self.account_id, session.oauth.owner_id, current.created, current.id
            )
            session.subscription = current
            return 200, current.info(), current
        if method in ("GET", "POST"):  # POST .../renew
            return 200, current.info(), current
        raise SubscriptionError(405, "CMN-103", f"Method [{method}] is not allowed")

    def _create(self, session: WsSession, body: object) -> GatewaySubscription:
        sub = build_subscription(
            body, self.account_id, session.oauth.owner_id, datetime.now(UTC), str(uuid.uuid4())
        )
        if session.subscription is None:
            self._purge()
            owned = sum(
                1
                for s in self.sessions.values()
                if s.subscription is not None and s.oauth.owner_id == session.oauth.owner_id
            )
            if owned >= self.profile.max_subscriptions:
                raise SubscriptionError(403, "SUB-505", "Subscriptions limit exceeded")
        session.subscription = sub  # one per connection: a second create replaces (G-A5)
        return sub

    # -- delivery --------------------------------------------------------------------------

    def publish(self, notes: Sequence[OutgoingEvent]) -> None:
        """Deliver notifications to every matching subscription (applying notification faults)."""
        faults = self.faults.notifications
        if faults.delay_count or faults.duplicate_count or faults.reorder_count or self._held:
            notes = self._mangle(notes)
        if not notes:
            return
        subscribed = [s for s in self.sessions.values() if s.subscription is not None]
        if not subscribed:
            return
        stamp = wsframes.iso_ms(datetime.now(UTC))
        for session in subscribed:
            sub = session.subscription
            assert sub is not None
            conn = session.connection
            for note in notes:
                if sub.matches(note):
                    self._deliver(session, sub, note, stamp, conn)
            if conn is not None:
                conn.wake.set()

    def _deliver(
        self,
        session: WsSession,
        sub: GatewaySubscription,
        note: OutgoingEvent,
        stamp: str,
        conn: Connection | None,
        note_uuid: str | None = None,
    ) -> str:
        note_uuid = note_uuid or str(next(self._uuids))
        seq = session.next_sequence()
        frame = wsframes.ENCODER.encode(
            [
                {
                    "type": "ServerNotification",
                    "messageId": note_uuid,
                    "status": 200,
                    "headers": {"RCRequestId": note_uuid},
                    "wsc": {"token": session.token, "sequence": seq},
                },
                {
                    "uuid": note_uuid,
                    "event": note.event,
                    "timestamp": stamp,
                    "subscriptionId": sub.id,
                    "ownerId": session.oauth.owner_id,
                    "body": note.body,
                },
            ]
        )
        session.buffer.append((seq, frame))
        if conn is not None:
            conn.outbox.append((seq, frame))
        return note_uuid

    def _mangle(self, notes: Sequence[OutgoingEvent]) -> list[OutgoingEvent]:
        faults = self.faults.notifications
        out: list[OutgoingEvent] = []
        loop = asyncio.get_running_loop()
        for note in notes:
            if faults.delay_count > 0:
                faults.delay_count -= 1
                loop.call_later(faults.delay_s, self._publish_late, note)
                continue
            if faults.duplicate_count > 0:
                faults.duplicate_count -= 1
                self._publish_duplicate(note)
                continue
            if faults.reorder_count > 0 and not self._held:
                faults.reorder_count -= 1
                self._held.append(note)
                continue
            out.append(note)
            out.extend(self._held)
            self._held.clear()
        return out

    def _publish_late(self, note: OutgoingEvent) -> None:
        self.publish([note])

    def _publish_duplicate(self, note: OutgoingEvent) -> None:
        """The same notification (same uuid) twice, as after a recovery replay."""
        stamp = wsframes.iso_ms(datetime.now(UTC))
        for session in list(self.sessions.values()):
            sub = session.subscription
            if sub is None or not sub.matches(note):
                continue
            conn = session.connection
            note_uuid = self._deliver(session, sub, note, stamp, conn)
            self._deliver(session, sub, note, stamp, conn, note_uuid)
            if conn is not None:
                conn.wake.set()

    def flush_held(self) -> None:
        """Send a notification held back for reordering if nothing came after it."""
        held, self._held = self._held, []
        if held:
            self.publish(held)

    def push_raw_frame(self, text: str) -> int:
        """Send an arbitrary text frame to every open connection (bad-input tests)."""
        for conn in self.connections:
            conn.enqueue(text.encode())
        return len(self.connections)

    # -- connection faults -----------------------------------------------------------------

    async def drop(self, *, abrupt: bool = False, code: int = 1001) -> int:
        """Close every open socket: a clean close frame, or a TCP abort with no close frame."""
        conns = list(self.connections)
        for conn in conns:
            self._detach(conn)
            conn.wake.set()
            if abrupt:
                _abort(conn)
            else:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.close(code=code, message=b"Server going away")
        return len(conns)

    def silence(self) -> int:
        """Keep every open socket up but send nothing more on it (no frames, no pongs)."""
        for conn in self.connections:
            conn.silent = True
        return len(self.connections)

    def _changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; re-checked on every connect/disconnect/subscribe."""
        while not predicate():
            await self._change.wait()

    def current_subscription(self) -> GatewaySubscription | None:
        for conn in self.connections:
            if conn.session.subscription is not None:
                return conn.session.subscription
        return None

    async def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close_code = 1001
            conn.wake.set()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.close(code=1001)
