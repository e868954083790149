"""The simulator process: aiohttp app factory, the `Simulator` Python API, the `/_sim/` control API.

Wires the platform parts (OAuth, REST, WebSocket gateway, rate limits, faults, engine) around
an `Organisation` from the scenario side and serves them on one host:port (loopback, port 0 by
default). Used by `sscl-daemon simulate`, the demo, the end-to-end tests and the benchmarks:

    async with Simulator(SimulatorConfig(seed=7)) as sim:
        sim.base_url            # http://127.0.0.1:PORT — the daemon's RingCentral server
        sim.place_call()        # play one generated call now
        await sim.drop_websocket(abrupt=True)

The control API mirrors the fault methods for processes that cannot call Python (JSON
bodies, no auth, never paused or rate limited):

    POST /_sim/faults/drop {"abrupt": false}       POST /_sim/faults/silence
    POST /_sim/faults/refuse-recovery {"count": 1} POST /_sim/faults/delay {"seconds": 2, "count": 1}
    POST /_sim/faults/duplicate {"count": 1}       POST /_sim/faults/reorder {"count": 1}
    POST /_sim/faults/rest {"status": 503, "path_prefix": "/restapi/v1.0/account/~/call-log",
                            "count": 1, "retry_after_s": 5}
    POST /_sim/faults/expire-tokens {"refresh": false}  POST /_sim/faults/revoke-sessions
    POST /_sim/faults/pause {"seconds": 5}
    POST /_sim/faults/clear
    POST /_sim/calls {"kind": "inbound_answered"}  GET /_sim/calls (ground truth)
    POST /_sim/notifications {"body": ..., "extension_id": null}   GET /_sim/status
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import msgspec
from aiohttp import web

from sscl_daemon.simulator.engine import Engine
from sscl_daemon.simulator.faults import Faults
from sscl_daemon.simulator.gateway import Gateway
from sscl_daemon.simulator.media import MediaRest
from sscl_daemon.simulator.oauth import Credentials, OAuthServer
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.platform_rest import CONTROL_PREFIX, PlatformRest, json_response
from sscl_daemon.simulator.profiles import PlatformProfile
from sscl_daemon.simulator.ratelimit import RateLimiter
from sscl_daemon.simulator.scenarios import CallFactory, CallKind, ExpectedLog, SimCall
from sscl_daemon.simulator.traffic import Traffic


@dataclass(frozen=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 1
    users: int = 20
    queues: int = 2
    # 0 = no background traffic; calls come only from place_call/inject
    calls_per_second: float = 0.0
    max_concurrent: int | None = None
    # stretches (>1) or shrinks (<1) the gaps between a call's events; tests use ~0.01
    time_scale: float = 1.0
    # G-B1: `VoiceMail` (spec) or `Voicemail` (docs, SDKs)
    voicemail_code: str = "VoiceMail"
    profile: PlatformProfile = field(default_factory=PlatformProfile.lenient)
    credentials: Credentials = field(default_factory=Credentials)


class Simulator:
    """One simulated RingCentral account on a real loopback socket."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.org = Organisation.build(
            self.config.seed, users=self.config.users, queues=self.config.queues
        )
        self.factory = CallFactory(
            self.org,
            self.config.seed,
            time_scale=self.config.time_scale,
            voicemail_code=self.config.voicemail_code,
        )
        self.faults = Faults()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    def _build(self) -> web.Application:
        loop = asyncio.get_running_loop()
        profile = self.config.profile
        self.limiter = RateLimiter(profile)
        self.oauth = OAuthServer(self.org.owner_extension_id, profile, self.config.credentials)
        self.gateway = Gateway(
            self.org.account_id, self.oauth, profile, self.faults, self.limiter, loop.time
        )
        self.engine = Engine(self.org, self.gateway, loop.time, profile.call_log_delay_s)
        self.rest = PlatformRest(
            self.org, self.oauth, self.gateway, self.engine, self.limiter, self.faults, loop.time
        )
        self.gateway.rest = self.rest
        app = web.Application(middlewares=[self.rest.middleware])
        app.add_routes(self.rest.routes())
        self.media = MediaRest(self.org, self.engine)
        app.add_routes(self.media.routes())
        app.add_routes(control_routes(self))
        return app

    async def start(self) -> Simulator:
        app = self._build()
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self._port = server.sockets[0].getsockname()[1]
        self.rest.gateway_base_url = self.base_url
        self.media.media_base = self.base_url
        traffic = None
        if self.config.calls_per_second > 0:
            traffic = Traffic(
                self.factory,
                self.config.calls_per_second,
                self.config.seed,
                self.config.max_concurrent,
            )
        self.engine.start(traffic)
        self._started = True
        return self

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.engine.stop()
        await self.gateway.close_all()
        self.faults.resume()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self._port}/ws"

    # -- calls and ground truth ------------------------------------------------------------

    def place_call(self, kind: CallKind | None = None) -> SimCall:
        """Generate one call starting now and play it."""
        return self.engine.inject(self.factory.make(self.engine.now_wall(), kind))

    def inject(self, call: SimCall) -> SimCall:
        return self.engine.inject(call)

    def push_raw(self, body: object, extension_id: str | None = None) -> None:
        """Publish an arbitrary notification body (any JSON value) to the subscribers."""
        self.engine.push_raw(body, extension_id)

    def push_raw_frame(self, text: str) -> int:
        """Send an arbitrary text frame on every open socket."""
        return self.gateway.push_raw_frame(text)

    @property
    def calls(self) -> list[SimCall]:
        return self.engine.calls

    def expected_logs(self) -> list[ExpectedLog]:
        return self.engine.expected_logs()

    def fast_forward(self, seconds: float | None = None) -> int:
        """Bring scheduled events and call-log records `seconds` closer (None: play all now)."""
        return self.engine.fast_forward(seconds)

    async def wait_idle(self) -> None:
        """Wait until every scheduled event and call-log record has been played."""
        await self.engine.wait_idle()

    # -- faults ----------------------------------------------------------------------------

    async def drop_websocket(self, *, abrupt: bool = False) -> int:
        """Close every WS: a clean close frame (1001), or `abrupt` = TCP abort, no close frame."""
        return await self.gateway.drop(abrupt=abrupt)

    def silence_websocket(self) -> int:
        """Keep sockets open but send nothing on them any more (dead-connection detection)."""
        return self.gateway.silence()

    def refuse_recovery(self, count: int = 1) -> None:
        """The next `count` recoveries answer `recoveryState: Failed`."""
        self.faults.refuse_recoveries += count

    def delay_notifications(self, seconds: float, count: int = 1) -> None:
        self.faults.notifications.delay_s = seconds
        self.faults.notifications.delay_count += count

    def duplicate_notifications(self, count: int = 1) -> None:
        self.faults.notifications.duplicate_count += count

    def reorder_notifications(self, count: int = 1) -> None:
        """Hold back each of the next `count` notifications until the one after it is sent."""
        self.faults.notifications.reorder_count += count

    def fail_rest(
        self, path_prefix: str, status: int, count: int = 1, retry_after_s: int | None = None
    ) -> None:
        """Answer the next `count` REST requests under `path_prefix` with `status`."""
        self.faults.add_rest_fault(path_prefix, status, count, retry_after_s)

    def inject_call_log(self, records: Iterable[bytes], count: int = 1) -> None:
        """Put `records` (JSON texts, sent as they are: oversized, misdated, malformed) among
        the real records of the next `count` call-log answers, whatever their query."""
        self.faults.inject_call_log(records, count)

    def expire_tokens(self, *, refresh: bool = False) -> int:
        """Expire every access token and ws token now; with `refresh`, the refresh tokens too
        (then only a new JWT login works). Returns how many access tokens expired."""
        self.gateway.expire_ws_tokens()
        if refresh:
            self.oauth.expire_refresh_tokens()
        return self.oauth.expire_access_tokens()

    def revoke_sessions(self) -> int:
        """Revoke every OAuth session (as an admin or the session cap would)."""
        return self.oauth.revoke_sessions()

    def pause(self, seconds: float) -> None:
        """No frames and no REST answers for `seconds` (requests wait, then get answered)."""
        self.faults.pause(seconds, asyncio.get_running_loop().time())

    def clear_faults(self) -> None:
        self.faults.clear()
        self.gateway.flush_held()


# -- control API ---------------------------------------------------------------------------


_T = TypeVar("_T")


class _DropRequest(msgspec.Struct, forbid_unknown_fields=True):
    abrupt: bool = False


class _CountRequest(msgspec.Struct, forbid_unknown_fields=True):
    count: int = 1


class _DelayRequest(msgspec.Struct, forbid_unknown_fields=True):
    seconds: float
    count: int = 1


class _RestFaultRequest(msgspec.Struct, forbid_unknown_fields=True):
    status: int
    path_prefix: str = "/restapi/"
    count: int = 1
    retry_after_s: int | None = None


class _ExpireRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh: bool = False


class _PauseRequest(msgspec.Struct, forbid_unknown_fields=True):
    seconds: float


class _CallRequest(msgspec.Struct, forbid_unknown_fields=True):
    kind: str | None = None


class _RawRequest(msgspec.Struct, forbid_unknown_fields=True):
    body: msgspec.Raw
    extension_id: str | None = None


def _decode(raw: bytes, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise web.HTTPBadRequest(text=f"invalid control request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise web.HTTPBadRequest(text=f"control request body is not JSON: {exc}") from None


def _call_summary(call: SimCall) -> dict[str, object]:
    return {
        "kind": str(call.kind),
        "telephonySessionIds": list(call.telephony_session_ids),
        "start": call.start.isoformat(),
        "events": len(call.events),
        "expected": [dataclasses.asdict(log) for log in call.expected],
    }


def control_routes(sim: Simulator) -> list[web.RouteDef]:
    """`/_sim/...`: fault injection and ground truth over HTTP (no auth, not rate limited)."""

    def ok(**extra: object) -> web.Response:
        return json_response({"ok": True, **extra})

    async def drop(request: web.Request) -> web.Response:
        req = _decode(await request.read(), _DropRequest)
        return ok(dropped=await sim.drop_websocket(abrupt=req.abrupt))

    async def silence(request: web.Request) -> web.Response:
        return ok(silenced=sim.silence_websocket())

    async def refuse(request: web.Request) -> web.Response:
        sim.refuse_recovery(_decode(await request.read(), _CountRequest).count)
        return ok()

    async def delay(request: web.Request) -> web.Response:
        req = _decode(await request.read(), _DelayRequest)
        sim.delay_notifications(req.seconds, req.count)
        return ok()

    async def duplicate(request: web.Request) -> web.Response:
        sim.duplicate_notifications(_decode(await request.read(), _CountRequest).count)
        return ok()

    async def reorder(request: web.Request) -> web.Response:
        sim.reorder_notifications(_decode(await request.read(), _CountRequest).count)
        return ok()

    async def rest(request: web.Request) -> web.Response:
        req = _decode(await request.read(), _RestFaultRequest)
        try:
            sim.fail_rest(req.path_prefix, req.status, req.count, req.retry_after_s)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return ok()

    async def expire(request: web.Request) -> web.Response:
        req = _decode(await request.read(), _ExpireRequest)
        return ok(expired=sim.expire_tokens(refresh=req.refresh))

    async def revoke(request: web.Request) -> web.Response:
        return ok(revoked=sim.revoke_sessions())

    async def pause(request: web.Request) -> web.Response:
        req = _decode(await request.read(), _PauseRequest)
        try:
            sim.pause(req.seconds)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return ok()

    async def clear(request: web.Request) -> web.Response:
        sim.clear_faults()
        return ok()

    async def place(request: web.Request) -> web.Response:
        req = _decode(await request.read(), _CallRequest)
        kind = None
        if req.kind is not None:
            try:
                kind = CallKind(req.kind)
            except ValueError:
                names = ", ".join(k.value for k in CallKind)
                raise web.HTTPBadRequest(
                    text=f"unknown call kind {req.kind!r}; use one of: {names}"
                ) from None
        return json_response(_call_summary(sim.place_call(kind)))

    async def calls(request: web.Request) -> web.Response:
        return json_response({"calls": [_call_summary(c) for c in sim.calls]})

    async def raw(request: web.Request) -> web.Response:
        req = _decode(await request.read(), _RawRequest)
        sim.push_raw(msgspec.json.decode(req.body), req.extension_id)
        return ok()

    async def status(request: web.Request) -> web.Response:
        return json_response(
            {
                "accountId": sim.org.account_id,
                "connections": len(sim.gateway.connections),
                "framesSentOnOpenConnections": sum(c.frames_sent for c in sim.gateway.connections),
                "published": sim.engine.published,
                "calls": len(sim.calls),
                "liveSessions": len(sim.engine.live),
                "callLogRecords": len(sim.engine.call_log),
                "paused": sim.faults.paused,
                "time": datetime.now().astimezone().isoformat(),
            }
        )

    p = CONTROL_PREFIX
    return [
        web.post(p + "faults/drop", drop),
        web.post(p + "faults/silence", silence),
        web.post(p + "faults/refuse-recovery", refuse),
        web.post(p + "faults/delay", delay),
        web.post(p + "faults/duplicate", duplicate),
        web.post(p + "faults/reorder", reorder),
        web.post(p + "faults/rest", rest),
        web.post(p + "faults/expire-tokens", expire),
        web.post(p + "faults/revoke-sessions", revoke),
        web.post(p + "faults/pause", pause),
        web.post(p + "faults/clear", clear),
        web.post(p + "calls", place),
        web.get(p + "calls", calls),
        web.post(p + "notifications", raw),
        web.get(p + "status", status),
    ]
