"""Real-time playback of simulated calls: notifications, live telephony sessions, call-log records.

Takes `SimCall`s from the scenario side (`scenarios.py` / `traffic.py`), and at
`start + offset_ms` of each `SimEvent` hands an `OutgoingEvent` to the gateway. One task runs a
single timer heap; every wake-up publishes all due events as one batch. It also keeps:

* the live telephony sessions for `GET .../telephony/sessions/{id}` — a session exists from
  its first event to its last one, then answers 404 (issue 5 point 1);
* the call-log records, published `call_log_delay_s` after the call's last event (research
  C5: 15-30 s on the real platform);
* the ground truth: every SimCall played and its expected logs, for the tests to compare.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from sscl_daemon.simulator.gateway import Gateway
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import ExpectedLog, SimCall, SimEvent
from sscl_daemon.simulator.subscriptions import OutgoingEvent
from sscl_daemon.simulator.traffic import Traffic
from sscl_daemon.simulator.wsframes import ENCODER

# How far ahead of the clock the traffic generator materialises calls.
_TRAFFIC_STEP_S = 1.0

# Notifications published per pass of the engine before the socket writers get a turn.
_MAX_BATCH = 256


@dataclass
class LiveSession:
    """A telephony session as `GET /telephony/sessions/{id}` shows it, merged from its events."""

    telephony_session_id: str
    session_id: str
    origin: object
    creation_time: str
    parties: dict[str, dict[str, object]] = field(default_factory=dict)

    def merge(self, body: dict[str, object]) -> None:
        parties = body.get("parties")
        if not isinstance(parties, list):
            return
        for party in parties:
            if isinstance(party, dict) and isinstance(party.get("id"), str):
                # values grow over time on the same party: merge, never drop (research B5)
                self.parties.setdefault(party["id"], {}).update(party)

    def rest_object(self, account_id: str) -> dict[str, object]:
        """REST form: `owner{accountId, extensionId}` instead of flat ids (research B3)."""
        parties: list[dict[str, object]] = []
        for party in self.parties.values():
            shaped = {k: v for k, v in party.items() if k not in ("accountId", "extensionId")}
            if "extensionId" in party:
                shaped["owner"] = {
                    "accountId": party.get("accountId", account_id),
                    "extensionId": party["extensionId"],
                }
            parties.append(shaped)
        return {
            "id": self.telephony_session_id,
            "sessionId": self.session_id,
            "origin": self.origin,
            "creationTime": self.creation_time,
            "parties": parties,
        }


@dataclass(frozen=True, slots=True)
class _Play:
    """One event of a call; `ends` names the telephony session this event is the last of."""

    event: SimEvent
    ends: str | None


@dataclass(frozen=True, slots=True)
class _Records:
    """The moment a call's call-log records become visible."""

    call: SimCall


_Item = _Play | _Records | OutgoingEvent


@dataclass(frozen=True)
class CallLogEntry:
    start: datetime
    record: dict[str, object]


def _parse_time(value: object) -> datetime:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


@dataclass
class Engine:
    """Schedules calls on the loop clock and feeds the gateway and the REST views."""

    org: Organisation
    gateway: Gateway
    clock: Callable[[], float]
    call_log_delay_s: float
    calls: list[SimCall] = field(default_factory=list)
    call_log: list[CallLogEntry] = field(default_factory=list)
    live: dict[str, LiveSession] = field(default_factory=dict)
    published: int = 0
    # (due, originally due, insertion order, item): fast-forwarded items keep their order
    _heap: list[tuple[float, float, int, _Item]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _played: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _wall0: datetime = field(default_factory=lambda: datetime.now(UTC))
    _mono0: float = 0.0

    def __post_init__(self) -> None:
        self._mono0 = self.clock()
        self._wall0 = datetime.now(UTC)
        self._idle.set()

    # -- time ------------------------------------------------------------------------------

    def now_wall(self) -> datetime:
        return self._wall0 + timedelta(seconds=self.clock() - self._mono0)

    def _due(self, moment: datetime) -> float:
        return self._mono0 + (moment - self._wall0).total_seconds()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, traffic: Traffic | None = None) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name="sim-engine"))
        if traffic is not None:
            self._tasks.append(asyncio.create_task(self._generate(traffic), name="sim-traffic"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- scheduling ------------------------------------------------------------------------

    def _wake_up(self) -> None:
        self._idle.clear()
        self._wake.set()

    def inject(self, call: SimCall) -> SimCall:
        """Play a call: its events at `call.start + offset_ms`, then its call-log records."""
        self.calls.append(call)
        last_index: dict[str, int] = {}
        for index, event in enumerate(call.events):
            tsid = event.body.get("telephonySessionId")
            if isinstance(tsid, str):
                last_index[tsid] = index
        ending = {index: tsid for tsid, index in last_index.items()}
        base = self._due(call.start)
        heap, order = self._heap, self._order
        for index, event in enumerate(call.events):
            due = base + event.offset_ms / 1000.0
            heapq.heappush(heap, (due, due, next(order), _Play(event, ending.get(index))))
        due = base + call.end_offset_ms / 1000.0 + self.call_log_delay_s
        heapq.heappush(heap, (due, due, next(order), _Records(call)))
        self._wake_up()
        return call

    def push_raw(self, body: object, extension_id: str | None = None) -> None:
        """Publish an arbitrary notification body now (bad-input tests)."""
        now = self.clock()
        note = self.notification(body, extension_id)
        heapq.heappush(self._heap, (now, now, next(self._order), note))
        self._wake_up()

    def notification(self, body: object, extension_id: str | None) -> OutgoingEvent:
        acct = self.org.account_id
        if extension_id is None:
            event = f"/restapi/v1.0/account/{acct}/telephony/sessions"
        else:
            event = f"/restapi/v1.0/account/{acct}/extension/{extension_id}/telephony/sessions"
        direction = status = missed = None
        if isinstance(body, dict):
            parties = body.get("parties")
            party = parties[0] if isinstance(parties, list) and parties else None
            if isinstance(party, dict):
                direction = party.get("direction")
                code = party.get("status")
                status = code.get("code") if isinstance(code, dict) else None
                missed = party.get("missedCall")
        return OutgoingEvent(
            event,
            extension_id,
            msgspec.Raw(ENCODER.encode(body)),
            direction if isinstance(direction, str) else None,
            status if isinstance(status, str) else None,
            missed if isinstance(missed, bool) else None,
        )

    def _track(self, body: dict[str, object], ends: str | None) -> None:
        tsid = body.get("telephonySessionId")
        if isinstance(tsid, str):
            live = self.live.get(tsid)
            if live is None:
                live = self.live[tsid] = LiveSession(
                    tsid,
                    str(body.get("sessionId", "")),
                    body.get("origin", {"type": "Call"}),
                    str(body.get("eventTime", "")),
                )
            live.merge(body)
        if ends is not None:
            self.live.pop(ends, None)

    def _publish_records(self, call: SimCall) -> None:
        for record in call.call_log_records:
            self.call_log.append(CallLogEntry(_parse_time(record.get("startTime")), record))

    async def _run(self) -> None:
        heap = self._heap
        while True:
            if not heap:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = heap[0][0] - self.clock()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            now = self.clock()
            batch: list[OutgoingEvent] = []
            while heap and heap[0][0] <= now and len(batch) < _MAX_BATCH:
                item = heapq.heappop(heap)[3]
                if isinstance(item, _Play):
                    body = item.event.body
                    self._track(body, item.ends)
                    batch.append(self.notification(body, item.event.extension_id))
                elif isinstance(item, _Records):
                    self._publish_records(item.call)
                else:
                    batch.append(item)
            if batch:
                self.published += len(batch)
                self.gateway.publish(batch)
            self._played.set()
            self._played = asyncio.Event()
            # Let the socket writers run between batches: a burst of calls all due at once
            # then streams out as it is produced, as RingCentral's would, instead of being
            # encoded whole before the first frame leaves.
            await asyncio.sleep(0)

    async def _generate(self, traffic: Traffic) -> None:
        t0 = self.now_wall()
        while True:
            t1 = t0 + timedelta(seconds=_TRAFFIC_STEP_S)
            for call in traffic.calls_between(t0, t1):
                self.inject(call)
            # stay one step ahead of the clock
            await asyncio.sleep(max(0.0, (t0 - self.now_wall()).total_seconds()))
            t0 = t1

    def fast_forward(self, seconds: float | None = None) -> int:
        """Bring everything scheduled `seconds` closer (None: due now), keeping its order.

        Returns how many scheduled items are now due.
        """
        now = self.clock()
        shifted = [
            (now if seconds is None else max(now, due - seconds), first, order, item)
            for due, first, order, item in self._heap
        ]
        heapq.heapify(shifted)
        self._heap[:] = shifted
        self._wake.set()
        return sum(1 for item in shifted if item[0] <= now)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; re-checked after every batch the engine plays."""
        while not predicate():
            await self._played.wait()

    async def wait_idle(self) -> None:
        """Wait until everything scheduled (events and call-log records) has been played."""
        await self._idle.wait()

    # -- ground truth ----------------------------------------------------------------------

    def expected_logs(self) -> list[ExpectedLog]:
        return [log for call in self.calls for log in call.expected]
