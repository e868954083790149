"""A hostile feed into a live in-process daemon beside real simulated calls.

The simulator plays real calls while the gateway also sends: a complete call under a
3,000-character telephonySessionId, calls dated 9999 and 1970, a body sequence of 10^15 and
a frame sequence of 10^15, a NUL in a caller's name, frames nested 100,000 levels deep, and
a seeded mutation feed (byte and structural mutations of other calls' frames). Every real
call is logged with the right result, nothing is blocked or restarted, the refused inputs
are dead letters with their reason, and the checkpoint stays on trusted time.

A second test makes the store refuse writes (a trigger raising "disk full") and shows
/readyz turning unready with ``commits:default`` false, then ready again, the call logged.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from tests.daemon.harness import daemon_config, fast_simulator, webhook_crm, write_config
from tests.daemon.helpers import wait_until

from sscl_daemon import metrics
from sscl_daemon.config import load_config
from sscl_daemon.daemon.app import Daemon
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.simulator.scenarios import CallKind, SimCall
from sscl_daemon.store import Store

LOGGED_KINDS = [kind for kind in CallKind if kind is not CallKind.INTERNAL]


@dataclass
class Live:
    sim: Simulator
    crm: WebhookReceiverState
    daemon: Daemon
    task: asyncio.Task[int]
    dsn: str

    @property
    def store(self) -> Store:
        assert self.daemon.store is not None
        return self.daemon.store

    async def readyz(self) -> tuple[int, dict[str, bool]]:
        url = f"http://127.0.0.1:{self.daemon.admin_port}/readyz"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            return resp.status, (await resp.json())["checks"]


@pytest.fixture
async def live(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Live]:
    async with fast_simulator(seed=19) as sim, webhook_crm() as (crm, crm_url):
        config = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=tmp_path / "state",
            dsn=pg_dsn,
        )
        daemon = Daemon(load_config(write_config(tmp_path / "config.toml", config)))
        task = asyncio.create_task(daemon.run())
        await asyncio.wait_for(daemon.ready.wait(), 30)
        try:
            yield Live(sim, crm, daemon, task, pg_dsn)
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 30) == 0


def _calls(sim: Simulator, count: int, salt: int) -> list[SimCall]:
    now = datetime.now(UTC)
    return [
        sim.factory.make(now, LOGGED_KINDS[i % len(LOGGED_KINDS)], salt=salt + i)
        for i in range(count)
    ]


def _bodies(call: SimCall, **changes: object) -> list[dict[str, Any]]:
    return [dict(event.body) | changes for event in call.events]


def _renamed(call: SimCall, tsid: str) -> list[dict[str, Any]]:
    """The call's bodies under another telephony session id (its party ids follow)."""
    old = call.telephony_session_ids[0]
    text = json.dumps([event.body for event in call.events]).replace(old[2:], tsid[2:])
    bodies: list[dict[str, Any]] = json.loads(text)
    return bodies


def _frame(envelope_text: str, sequence: int | None = None, token: str = "") -> str:
    wsc = "" if sequence is None else f',"wsc":{{"token":"{token}","sequence":{sequence}}}'
    return f'[{{"type":"ServerNotification","messageId":"h"{wsc}}},{envelope_text}]'


def _mutants(calls: list[SimCall], count: int, rng: random.Random) -> list[str]:
    """Seeded mutations of the frames of ``calls``: bytes changed, or a node replaced."""
    envelopes = [
        json.dumps({"uuid": f"m-{i}", "body": event.body})
        for i, event in enumerate(e for c in calls for e in c.events)
    ]
    odd: list[object] = [None, -1, 10**15, 2**64, "", "x" * 4000, [], {}, [[[[[]]]]], "\u0000"]
    out: list[str] = []
    for _ in range(count):
        text = rng.choice(envelopes)
        if rng.random() < 0.5:
            chars = list(text)
            for _ in range(rng.randint(1, 5)):
                at = rng.randrange(len(chars))
                chars[at] = rng.choice(string.printable)
            out.append(_frame("".join(chars)))
            continue
        envelope = json.loads(text)
        body = envelope["body"]
        key = rng.choice([*body, "parties"])
        if key == "parties" and body.get("parties"):
            party = body["parties"][0]
            party[rng.choice(list(party))] = rng.choice(odd)
        else:
            body[key] = rng.choice(odd)
        out.append(_frame(json.dumps(envelope)))
    return out


@dataclass
class Feed:
    """Hostile inputs: bodies the simulator wraps as notifications, and raw frames."""

    bodies: list[dict[str, Any]]
    frames: list[str]
    # Telephony sessions that must never be logged, and a dead-letter reason per input kind.
    refused: set[str]
    reasons: list[str]


def _feed(case: str, sim: Simulator, rng: random.Random) -> Feed:
    decoys = _calls(sim, 6, salt=5000 + 100 * CASES.index(case))
    tsids = {t for call in decoys for t in call.telephony_session_ids}
    if case == "poison id":
        poison = "s-" + "".join(rng.choices(string.ascii_letters + string.digits, k=3000))
        return Feed(_renamed(decoys[0], poison), [], {poison}, ["length <= 128"])
    if case == "far-future eventTime":
        bodies = [b for c in decoys for b in _bodies(c, eventTime="9999-12-31T23:59:59.000Z")]
        return Feed(bodies, [], tsids, ["ahead of its receipt"])
    if case == "1970 eventTime":
        bodies = [b for c in decoys for b in _bodies(c, eventTime="1970-01-01T00:00:00.000Z")]
        return Feed(bodies, [], tsids, ["behind its receipt"])
    if case == "huge sequence":
        token = next(iter(sim.gateway.sessions.values())).token
        envelope = json.dumps({"uuid": "seq", "body": decoys[1].events[0].body})
        frames = [_frame(envelope, 10**15, token)]
        return Feed(_bodies(decoys[0], sequence=10**15), frames, tsids, ["<= 65535"])
    if case == "NUL character":
        bodies = _bodies(decoys[0])
        for body in bodies:
            for party in body["parties"]:
                party["from"] = dict(party.get("from") or {}) | {"name": "ACME\u0000CORP"}
        return Feed(bodies, [], set(decoys[0].telephony_session_ids), ["NUL"])
    if case == "deep nesting":
        deep = 100_000
        frames = [
            _frame('{"uuid":"deep-1","body":' + "[" * deep + "]" * deep + "}"),
            _frame("[" * deep + "]" * deep),
            _frame('{"uuid":"deep-2","body":' + '{"a":' * deep + "1" + "}" * deep + "}"),
        ]
        return Feed([], frames, set(), [])
    assert case == "mutation feed"
    return Feed([], _mutants(decoys, 400, rng), set(), [])


CASES = [
    "poison id",
    "far-future eventTime",
    "1970 eventTime",
    "huge sequence",
    "NUL character",
    "deep nesting",
    "mutation feed",
]


@pytest.mark.parametrize("cases", [[case] for case in CASES] + [CASES], ids=[*CASES, "all"])
async def test_hostile_feed_beside_real_calls(live: Live, cases: list[str]) -> None:
    sim = live.sim
    restarts_before = {
        task: metrics.TASK_RESTARTS.labels(task=task)._value.get()
        for task in ("subscription", "committer")
    }
    rng = random.Random(19)
    feeds = [_feed(case, sim, rng) for case in cases]
    bodies = [body for feed in feeds for body in feed.bodies]
    frames = [text for feed in feeds for text in feed.frames]
    real = _calls(sim, 24 if len(cases) > 1 else 8, salt=0)
    for call in real:
        sim.inject(call)
    # Interleaved with the real calls' events: a slice of the feed in every round.
    samples: list[int] = []
    rounds = 10
    for n in range(rounds):
        for body in bodies[n::rounds]:
            sim.push_raw(body)
        for text in frames[n::rounds]:
            sim.push_raw_frame(text)
        status, _ = await live.readyz()
        samples.append(status)

    expected = {log.key: log for call in real for log in call.expected}
    delivered = live.crm.deliveries
    await wait_until(lambda: set(expected) <= set(delivered), 60, "every real call logged")
    for key, log in expected.items():
        data = delivered[key].payload["data"]
        assert isinstance(data, dict)
        assert data["result"] == log.result, key
        assert data["direction"] == log.direction, key
        # Durations too: no outlier moved the tracker's clock under the real calls.
        for field in ("talk_ms", "hold_ms"):
            value = data[field]
            assert isinstance(value, int)
            assert abs(value - getattr(log, field)) <= 1000, (key, field)
    logged_sessions = {key.rsplit(":", 1)[0] for key in delivered}
    refused = {tsid for feed in feeds for tsid in feed.refused}
    assert not logged_sessions & refused, "a refused input was logged"
    assert all(len(key) < 300 for key in delivered)

    letters = await live.store.dead_letters(limit=10_000)
    reasons = " | ".join(letter.reason for letter in letters)
    for why in (reason for feed in feeds for reason in feed.reasons):
        assert why in reasons, why
    checkpoint = await live.store.load_checkpoint("default")
    assert checkpoint is not None
    assert checkpoint.last_event_time is not None
    now = datetime.now(UTC)
    assert now - timedelta(hours=1) < checkpoint.last_event_time < now + timedelta(minutes=10)

    # Nothing crashed, nothing blocked.
    for task, before in restarts_before.items():
        assert metrics.TASK_RESTARTS.labels(task=task)._value.get() == before, task
    assert not live.task.done()
    assert samples == [200] * rounds
    status, checks = await live.readyz()
    assert status == 200, checks


FULL_DISK = """
CREATE FUNCTION sscl_test_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'
      USING ERRCODE = 'disk_full'; END $$;
CREATE TRIGGER sscl_test_full BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION sscl_test_full();
"""


async def test_readyz_shows_commits_failing_until_they_succeed(live: Live) -> None:
    conn = await asyncpg.connect(live.dsn)
    try:
        await conn.execute(FULL_DISK)
        (call,) = _calls(live.sim, 1, salt=900)
        live.sim.inject(call)

        async def unready() -> bool:
            status, checks = await live.readyz()
            return status == 503 and checks.get("commits:default") is False

        await wait_until(unready, 30, "readyz: commits failing")
        assert await live.store.dead_letters() == [], "a failing store isolates nothing"
        await conn.execute("DROP TRIGGER sscl_test_full ON outbox")
    finally:
        await conn.close()

    async def ready() -> bool:
        status, _ = await live.readyz()
        return status == 200

    await wait_until(ready, 60, "readyz: ready again")
    keys = {log.key for log in call.expected}
    await wait_until(lambda: keys <= set(live.crm.deliveries), 30, "the call logged")
