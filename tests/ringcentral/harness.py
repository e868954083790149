"""A small stand-in for the daemon's RingCentral side, for tests against the simulator.

Wires the real client (Authenticator, RestClient, Subscription, Reconciler) to the real call
core (Tracker, Policy, Directory) on a loopback `Simulator`, with every timeout shrunk so a
test runs in seconds. `Pipeline` consumes the subscription's items like the daemon does:
notifications go through `decode_event` into the tracker, gaps are recorded, and completed
calls are collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

import aiohttp

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.events import EventDecodeError, decode_event
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.policy import Policy, PolicyOptions
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.config import RingCentralSettings, Secret
from sscl_daemon.ringcentral.auth import Authenticator, TokenSet
from sscl_daemon.ringcentral.directory import load_directory
from sscl_daemon.ringcentral.ratelimit import GroupLimiter
from sscl_daemon.ringcentral.reconcile import Reconciler
from sscl_daemon.ringcentral.rest import RestClient
from sscl_daemon.ringcentral.retry import RetryPolicy
from sscl_daemon.ringcentral.subscription import (
    ConnectionState,
    Gap,
    Item,
    RawNotification,
    RecoveryPoint,
    StateChange,
    Subscription,
)
from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.profiles import PlatformProfile
from sscl_daemon.simulator.scenarios import CallFactory, CallKind, SimCall

CALL_LOG_DELAY = 0.3
WAIT = 20.0


def fast_profile(strict: bool = False, **changes: object) -> PlatformProfile:
    base: dict[str, object] = {"recovery_timeout_s": 30.0, "call_log_delay_s": CALL_LOG_DELAY}
    base.update(changes)
    profile = PlatformProfile.strict() if strict else PlatformProfile.lenient()
    return profile.with_changes(**base)


def client_settings(sim: Simulator, **changes: float) -> RingCentralSettings:
    values: dict[str, float] = {
        "request_timeout": 5.0,
        "heartbeat_interval": 0.5,
        "dead_connection_timeout": 1.5,
        "reconnect_initial_delay": 0.05,
        "reconnect_max_delay": 0.5,
        "call_log_delay": CALL_LOG_DELAY,
    }
    values.update(changes)
    return RingCentralSettings(
        server=sim.base_url,
        client_id="sim-client",
        client_secret=Secret("sim-secret"),
        jwt=Secret("sim-jwt"),
        **values,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def simulator(strict: bool = False, **profile: object) -> AsyncIterator[Simulator]:
    config = SimulatorConfig(seed=7, users=10, profile=fast_profile(strict, **profile))
    async with Simulator(config) as sim:
        yield sim


async def wait_for(predicate: Callable[[], bool], what: str, limit: float = WAIT) -> None:
    """Poll a condition on the loop (no fixed sleeps decide anything)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = WAIT) -> None:
    """Like `wait_for`, for a condition that needs I/O to check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


class Calls:
    """Short calls (about a second) placed on the simulator, with their ground truth."""

    def __init__(self, sim: Simulator, seed: int = 3) -> None:
        self._sim = sim
        self._factory = CallFactory(sim.org, seed, time_scale=0.005)
        self.placed: list[SimCall] = []

    def place(self, count: int, kind: CallKind | None = None) -> list[SimCall]:
        made = []
        for _ in range(count):
            call = self._factory.make(self._sim.engine.now_wall(), kind)
            self._sim.inject(call)
            made.append(call)
        self.placed.extend(made)
        return made

    def expected(self, calls: list[SimCall] | None = None) -> set[str]:
        return {log.key for call in (calls or self.placed) for log in call.expected}


@dataclass
class Client:
    """The client-side objects of one daemon run."""

    http: aiohttp.ClientSession
    settings: RingCentralSettings
    auth: Authenticator
    rest: RestClient
    limiter: GroupLimiter
    tokens: list[TokenSet] = field(default_factory=list)


@contextlib.asynccontextmanager
async def client(
    sim: Simulator, refresh_token: str | None = None, **changes: float
) -> AsyncIterator[Client]:
    settings = client_settings(sim, **changes)
    limiter = GroupLimiter()
    retry = RetryPolicy(max_attempts=6, initial=0.02, maximum=0.2)
    async with aiohttp.ClientSession() as http:
        made = Client(http, settings, None, None, limiter)  # type: ignore[arg-type]

        async def on_tokens(tokens: TokenSet) -> None:
            made.tokens.append(tokens)

        made.auth = Authenticator(
            http,
            settings,
            limiter=limiter,
            retry=retry,
            refresh_token=Secret(refresh_token) if refresh_token else None,
            on_tokens=on_tokens,
        )
        made.rest = RestClient(
            http, made.auth, settings.server, limiter=limiter, retry=retry, request_timeout=5.0
        )
        yield made


class Pipeline:
    """Subscription items -> tracker -> completed calls, as the daemon does it."""

    def __init__(
        self,
        sim: Simulator,
        made: Client,
        *,
        recovery: RecoveryPoint | None = None,
        gate: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.sim = sim
        self.client = made
        self.points: list[RecoveryPoint] = []
        self.directory: Directory | None = None
        self.policy = Policy(PolicyOptions())
        self.tracker = Tracker(None, TrackerOptions(completion_grace_s=0.3), self.policy)
        self.calls: list[CompletedCall] = []
        self.gaps: list[Gap] = []
        self.states: list[ConnectionState] = []
        self.notifications = 0
        self.bad_events = 0

        async def persist(point: RecoveryPoint) -> None:
            self.points.append(point)

        self.subscription = Subscription(
            made.rest,
            made.settings,
            recovery=recovery,
            persist=persist,
            persist_interval=0.0,
            rng=random.Random(1),
            **({"sleep": gate} if gate else {}),  # type: ignore[arg-type]
        )
        self._task: asyncio.Task[None] | None = None

    def reconciler(self) -> Reconciler:
        return Reconciler(
            self.client.rest,
            self.sim.org.account_id,
            self.policy,
            lambda: self.directory,
            call_log_delay=CALL_LOG_DELAY,
            margin=5.0,
        )

    async def handle(self, item: Item) -> None:
        if isinstance(item, RawNotification):
            self.notifications += 1
            try:
                event = decode_event(item.envelope)
            except EventDecodeError:
                self.bad_events += 1
                return
            self.calls.extend(self.tracker.apply(event))
        elif isinstance(item, Gap):
            self.gaps.append(item)
        elif isinstance(item, StateChange):
            self.states.append(item.state)

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self.calls.extend(self.tracker.expire(datetime.now(UTC)))

    async def __aenter__(self) -> Self:
        self.directory = await load_directory(self.client.rest)
        self.tracker.replace_directory(self.directory)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.subscription.run(self.handle))
            group.create_task(self._expire())

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def keys(self) -> list[str]:
        return [call.key for call in self.calls]

    async def streaming(self) -> None:
        await wait_for(
            lambda: (
                self.subscription.state in (ConnectionState.SUBSCRIBED, ConnectionState.RECOVERED)
            ),
            "an active subscription",
        )
        await self.sim.gateway.wait_until(
            lambda: self.sim.gateway.current_subscription() is not None
        )

    async def logged(self, keys: set[str]) -> None:
        await wait_for(lambda: keys <= set(self.keys()), f"{len(keys)} calls logged live")
