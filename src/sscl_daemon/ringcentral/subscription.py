"""The account-wide telephony-session stream: one WebSocket subscription that keeps going.

The async shell around `wsg.GatewayConnection`. It fetches a ws token (`rest.py`), connects
(`?access_token=`, plus `&wsc=` to recover), answers silence with heartbeats and probes,
replaces a connection found silent (`watchdog.py` decides when), and reconnects with jittered
exponential backoff, recovering with the last `wsc` token while the gateway's recovery window
lasts (research/rc-protocol.md A7, A8). It hands the daemon, in order:

* `RawNotification` — the raw webhook envelope of each telephony-session event (the call core
  decodes it and de-duplicates replays by uuid);
* `Gap(start, end, reason)` — events between start and end may be missing (recovery failed,
  the window passed, or a restart without a usable token); the reconciler closes it from the
  call log;
* `StateChange` — connected / subscribed / recovered / disconnected, for readiness and metrics.

The recovery token is reported through a callback (the daemon stores it) and may be handed
in at start, so a restart inside the recovery window recovers too; so may the ws token the last
run kept (`wstoken.py`), so a restart spends no Auth-group request before it subscribes. The items and the recovery
point are plain values in :mod:`.stream_items` (named here too, where their users import them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlencode

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from sscl_daemon.config import RingCentralSettings
from sscl_daemon.ringcentral.ratelimit import Sleep
from sscl_daemon.ringcentral.records import WsToken
from sscl_daemon.ringcentral.rest import ApiError, RestClient
from sscl_daemon.ringcentral.retry import RetriesExhausted
from sscl_daemon.ringcentral.stream_items import (
    DEFAULT_RECOVERY_WINDOW,
    ConnectionState,
    Gap,
    GapReason,
    Item,
    PersistRecovery,
    RawNotification,
    RecoveryPoint,
    Sink,
    StateChange,
    SubscriptionStats,
    utc_now,
)
from sscl_daemon.ringcentral.watchdog import PLATFORM_ANSWER, Watchdog
from sscl_daemon.ringcentral.wsg import (
    TELEPHONY_FILTER,
    Deliver,
    GatewayConnection,
    Phase,
    Reconnect,
    Recovered,
    ReplayIncomplete,
    Send,
    Subscribed,
    Wsc,
)
from sscl_daemon.ringcentral.wstoken import KEPT_TOKEN_MARGIN, KeptWsToken

__all__ = [
    "ConnectionState",
    "Gap",
    "GapReason",
    "Item",
    "PersistRecovery",
    "RawNotification",
    "RecoveryPoint",
    "Sink",
    "StateChange",
    "Subscription",
    "SubscriptionStats",
    "utc_now",
]

log = structlog.get_logger(__name__)

# Recover only with this much of the window left: the wstoken round trip takes time too.
RECOVERY_SAFETY = 0.9
# Reuse a ws token for this share of its lifetime (as rc-ex does, research A1).
WS_TOKEN_REUSE = 0.8
# Close codes of a handshake without a usable token (research A2, G-A2).
REFUSED_TOKEN_CLOSE_CODES = (4400, 4401)


_QUERY_SECRETS = re.compile(r"((?:access_token|wsc)=)[^&\s]+")


class _RedactQuery(logging.Filter):
    """The websockets library logs the handshake request line, tokens included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _QUERY_SECRETS.sub(r"\1[REDACTED]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


WS_LOGGER = logging.getLogger("sscl_daemon.ringcentral.websocket")
WS_LOGGER.addFilter(_RedactQuery())


class Subscription:
    """Runs the WebSocket subscription and feeds its items to a sink, forever."""

    def __init__(
        self,
        rest: RestClient,
        settings: RingCentralSettings,
        *,
        recovery: RecoveryPoint | None = None,
        persist: PersistRecovery | None = None,
        kept_token: KeptWsToken | None = None,
        filters: tuple[str, ...] = (TELEPHONY_FILTER,),
        persist_interval: float = 5.0,
        open_timeout: float | None = None,
        now: Callable[[], datetime] = utc_now,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._rest = rest
        self._settings = settings
        self._persist = persist
        self._filters = filters
        self._persist_interval = timedelta(seconds=persist_interval)
        self._open_timeout = open_timeout or settings.request_timeout
        self._now = now
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._point_value = recovery
        # The newest frame's connection and arrival: its recovery point is built only when
        # asked for (a save, a reconnect), not for every notification.
        self._latest: tuple[GatewayConnection, datetime] | None = None
        # A restart (or a first start after a known checkpoint) may have missed events.
        self._gap_start: datetime | None = recovery.last_seen if recovery else None
        self._subscription_id: str | None = None
        # Before this, a save is skipped unless forced (checked on every notification).
        self._next_persist: datetime | None = None
        self._cached_token: tuple[WsToken, float] | None = None
        # The last run's ws token, read at the first connection only (see `wstoken.py`).
        self._kept_token = kept_token
        self._kept_unread = kept_token is not None
        # The last frame of the WS session seen: a recovery replay that starts further on
        # than the one after it is incomplete (a restart hands it in with the stored point).
        self._last_notification = (recovery.sequence or None) if recovery else None
        self._recovered_from: datetime | None = None
        self.state = ConnectionState.DISCONNECTED
        self.stats = SubscriptionStats()

    @property
    def recovery_point(self) -> RecoveryPoint | None:
        return self._point

    @property
    def _point(self) -> RecoveryPoint | None:
        latest, self._latest = self._latest, None
        if latest is not None:
            self._point_value = self._point_from(*latest)
        return self._point_value

    @_point.setter
    def _point(self, value: RecoveryPoint | None) -> None:
        self._latest = None
        self._point_value = value

    async def stream(self, queue_size: int = 10_000) -> AsyncIterator[Item]:
        """The items as an async iterator (runs `run` in a task; stops it when closed)."""
        queue: asyncio.Queue[Item] = asyncio.Queue(queue_size)
        task = asyncio.create_task(self.run(queue.put))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                task.result()  # re-raises AuthError and friends
                return
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self, sink: Sink) -> None:
        """Connect, subscribe, deliver; reconnect on every failure. Raises only `AuthError`."""
        failures = 0
        while True:
            reconnect = await self._one_connection(sink)
            if self.state is not ConnectionState.DISCONNECTED:
                self.state = ConnectionState.DISCONNECTED
                await sink(StateChange(ConnectionState.DISCONNECTED, reconnect.reason))
            await self._save(force=True)
            failures = 0 if reconnect.healthy else failures + 1
            delay = self._backoff(failures)
            if reconnect.retry_after is not None:
                delay = max(delay, reconnect.retry_after)
            log.info("ringcentral.ws.reconnecting", reason=reconnect.reason, delay=round(delay, 3))
            await self._sleep(delay)

    # -- one connection ----------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        if failures == 0:
            return 0.0
        initial = self._settings.reconnect_initial_delay
        ceiling = min(self._settings.reconnect_max_delay, initial * 2.0 ** (failures - 1))
        return float(ceiling * self._rng.uniform(0.5, 1.0))

    async def _ws_token(self) -> WsToken:
        """A ws token, reused while fresh: each one costs an Auth-group request (5/min).

        The guide calls the token single-use while the official SDKs reuse it; a refused
        handshake drops the cached one, so both behaviours work. A start first tries the
        token the last run kept; a new one is kept for the next start.
        """
        loop = asyncio.get_running_loop()
        cached = self._cached_token
        if cached is not None and loop.time() < cached[1]:
            return cached[0]
        if self._kept_token is not None and self._kept_unread:
            self._kept_unread = False
            kept = await self._kept_token.load(self._now())
            if kept is not None:
                token, left = kept
                self._cached_token = (token, loop.time() + left - KEPT_TOKEN_MARGIN)
                log.info("ringcentral.ws.kept_token_reused", seconds_left=round(left))
                return token
        obtained = self._now()
        token = await self._rest.ws_token()
        self._cached_token = (token, loop.time() + token.expires_in * WS_TOKEN_REUSE)
        if self._kept_token is not None:
            await self._kept_token.keep(token, obtained)
        return token

    def _usable_wsc(self) -> Wsc | None:
        point = self._point
        if point is None or point.token is None:
            return None
        age = (self._now() - point.last_seen).total_seconds()
        if age >= point.recovery_timeout * RECOVERY_SAFETY:
            return None
        return Wsc(point.token, point.sequence)

    async def _one_connection(self, sink: Sink) -> _Outcome:
        wsc = self._usable_wsc()
        try:
            token = await self._ws_token()
        except (RetriesExhausted, ApiError) as exc:
            return _Outcome(f"no ws token: {exc}", healthy=False)
        query = {"access_token": token.ws_access_token}
        if wsc is not None:
            query["wsc"] = wsc.token
        url = f"{token.uri}?{urlencode(query)}"
        conn = GatewayConnection(
            self._filters,
            recovering=wsc is not None,
            subscription_id=self._subscription_id if wsc is not None else None,
            wsc=wsc,
            last_notification=self._last_notification,
        )
        self.stats.connections += 1
        self.state = ConnectionState.CONNECTING
        try:
            async with connect(
                url,
                ping_interval=None,
                open_timeout=self._open_timeout,
                close_timeout=2.0,
                max_size=16 * 1024 * 1024,
                compression=None,
                logger=WS_LOGGER,
            ) as ws:
                return await self._converse(ws, conn, sink)
        except InvalidStatus as exc:
            # Refused (401 for a used or expired token): the next attempt takes a new token.
            self._cached_token = None
            return _Outcome(f"handshake refused: {exc.response.status_code}", healthy=False)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
            # A gateway out of reach did not refuse the token: keep it, since each new one
            # costs an Auth-group request (5/min) and an outage's retries would spend them.
            if isinstance(exc, InvalidHandshake | InvalidURI):
                self._cached_token = None
            # Never str(exc): a handshake error may quote the URL with the ws token in it.
            return _Outcome(f"connection failed: {type(exc).__name__}", healthy=False)
        finally:
            self.stats.ignored_frames += conn.ignored
            self._last_notification = conn.last_notification
            self._remember()

    async def _converse(
        self, ws: ClientConnection, conn: GatewayConnection, sink: Sink
    ) -> _Outcome:
        def heartbeat() -> None:
            self.stats.heartbeats += 1
            watchdog.send(ws, conn.heartbeat().text)

        def probe() -> None:
            self.stats.probes += 1
            watchdog.ping(ws)

        def verify() -> None:
            async def ask() -> bool:
                answers = await self._rest.answers(PLATFORM_ANSWER)
                self.stats.stalls += not answers
                return answers

            watchdog.ask(ask())

        watchdog = Watchdog(
            self._settings.heartbeat_interval,
            self._settings.dead_connection_timeout,
            heartbeat,
            # A silent peer will not complete a closing handshake either.
            ws.transport.abort,
            probe=probe,
            verify=verify,
        )
        try:
            while True:
                watchdog.reading()
                try:
                    data = await ws.recv()
                except ConnectionClosed as exc:
                    if watchdog.silent:
                        self.stats.dead_connections += 1
                        return _Outcome(
                            "silent connection replaced", healthy=conn.phase is Phase.ACTIVE
                        )
                    code = exc.rcvd.code if exc.rcvd is not None else None
                    if code in REFUSED_TOKEN_CLOSE_CODES:
                        self._cached_token = None
                    return _Outcome(f"closed by peer ({code})", healthy=conn.phase is Phase.ACTIVE)
                watchdog.saw_frame()
                # One clock read per frame serves its recovery point, its items and the save.
                received = self._now()
                if conn.wsc is not None:
                    self._latest = (conn, received)
                actions = conn.receive(data)
                if conn.details is not None:
                    watchdog.buffer = conn.details.recoveryBufferSize
                for action in actions:
                    outcome = await self._act(ws, conn, action, sink, received)
                    if outcome is not None:
                        return outcome
        finally:
            watchdog.cancel()

    async def _act(
        self,
        ws: ClientConnection,
        conn: GatewayConnection,
        action: object,
        sink: Sink,
        received: datetime,
    ) -> _Outcome | None:
        if isinstance(action, Send):
            await ws.send(action.text)
        elif isinstance(action, Deliver):
            self.stats.notifications += 1
            await sink(RawNotification(action.envelope, action.uuid, received))
            if self._save_due(received):
                await self._save(now=received)
        elif isinstance(action, Recovered):
            self.stats.recoveries += 1
            self._recovered_from, self._gap_start = self._gap_start, None
            self.state = ConnectionState.RECOVERED
            log.info("ringcentral.ws.recovered")
            await sink(StateChange(ConnectionState.RECOVERED))
            await self._save(force=True)
        elif isinstance(action, ReplayIncomplete):
            start = self._recovered_from or self._now()
            gap = Gap(start, self._now(), GapReason.REPLAY_INCOMPLETE, f"{action.missing} missed")
            self.stats.gaps += 1
            log.warning("ringcentral.ws.replay_incomplete", missing=action.missing)
            await sink(gap)
        elif isinstance(action, Subscribed):
            await self._subscribed(conn, action, sink)
        elif isinstance(action, Reconnect):
            if not action.recoverable and self._point is not None:
                self._point = replace(self._point, token=None)
            await ws.close()
            return _Outcome(action.reason, healthy=action.healthy, retry_after=action.retry_after)
        return None

    async def _subscribed(self, conn: GatewayConnection, action: Subscribed, sink: Sink) -> None:
        self.stats.subscriptions += 1
        self._subscription_id = action.subscription_id
        if conn.recovering:
            self.stats.failed_recoveries += 1
        start = self._gap_start
        self._gap_start = None
        self.state = ConnectionState.SUBSCRIBED
        await sink(StateChange(ConnectionState.SUBSCRIBED, action.subscription_id))
        if start is not None:
            if conn.recovering:
                reason, detail = GapReason.RECOVERY_FAILED, action.recovery_error or ""
            elif self._point is not None and self._point.token is not None:
                reason, detail = GapReason.RECOVERY_WINDOW_PASSED, ""
            else:
                reason, detail = GapReason.NO_RECOVERY_TOKEN, ""
            gap = Gap(start, self._now(), reason, detail)
            self.stats.gaps += 1
            log.warning(
                "ringcentral.ws.gap",
                start=gap.start.isoformat(),
                end=gap.end.isoformat(),
                reason=reason.value,
                detail=detail,
            )
            await sink(gap)
        await self._save(force=True)

    # -- recovery token bookkeeping --------------------------------------------------------

    def _point_from(self, conn: GatewayConnection, now: datetime) -> RecoveryPoint:
        wsc = conn.wsc
        assert wsc is not None
        timeout = conn.details.recoveryTimeout if conn.details else None
        previous = self._point
        return RecoveryPoint(
            token=wsc.token,
            sequence=wsc.sequence,
            last_seen=now,
            recovery_timeout=timeout
            or (previous.recovery_timeout if previous else DEFAULT_RECOVERY_WINDOW),
            oauth_session=self._rest.auth.session_id,
        )

    def _remember(self) -> None:
        """After a connection: a gap starts at its last frame unless the next one recovers.

        Before the first frame of the first connection there is no stream to lose.
        """
        if self._gap_start is None and self._point is not None:
            self._gap_start = self._point.last_seen

    def _save_due(self, now: datetime) -> bool:
        return self._next_persist is None or now >= self._next_persist

    async def _save(self, force: bool = False, now: datetime | None = None) -> None:
        point = self._point
        if self._persist is None or point is None:
            return
        now = now or self._now()
        if not force and not self._save_due(now):
            return
        self._next_persist = now + self._persist_interval
        try:
            await self._persist(point)
        except Exception as exc:  # the stream must outlive a store hiccup
            log.warning("ringcentral.ws.persist_failed", error=type(exc).__name__)


@dataclass(frozen=True)
class _Outcome:
    reason: str
    healthy: bool = True
    retry_after: float | None = None
