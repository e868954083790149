"""Clio's client-log check of a batch (crm/clio.py ``write_batch``, crm/clio_window.py): one
read of the phone communications over the batch's window answers every call's check exactly
as the call's own read would (issue 15 follow-up: 2.514 requests per call batched before),
across Clio's cursor pages; a read per call takes over when the window needs more than half
as many pages as the batch has calls, or cannot be read. Against the Clio stand-in, with
seeded communications: our own earlier ones, a user's client's (a session line, App
Connect's default fingerprint), of the call's contact and of others, on and just outside the
windows' bounds."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import aiohttp
import pytest
from tests.crm.conftest import START, make_call

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import ContactSettings, OAuthClientSettings, Secret, WriterSettings
from sscl_daemon.crm import clio as cl
from sscl_daemon.crm import content
from sscl_daemon.crm.base import AlreadyExisted, Created, WriteContext, WriteResult
from sscl_daemon.crm.clio_window import CLIENT_WINDOW
from sscl_daemon.simulator.crm import clio as cl_sim
from sscl_daemon.simulator.crm.common import serve

COMMUNICATIONS = "/api/v4/communications.json"
Seed = Callable[[cl_sim.ClioState], list[CompletedCall]]


def settings(base: str) -> WriterSettings:
    oauth = OAuthClientSettings(
        cl_sim.CLIENT_ID, Secret(cl_sim.CLIENT_SECRET), Secret(cl_sim.REFRESH_TOKEN)
    )
    return WriterSettings(
        "c",
        "clio",
        cl.ClioOptions(oauth, region_url=base),
        contacts=ContactSettings(owner_by_email=False),
        timeout=5.0,
    )


def communication(
    state: cl_sim.ClioState, when: datetime, subject: str, body: str, contact: int | None
) -> int:
    cid = state.new_id()
    other = [{"id": contact, "type": "Contact"}] if contact is not None else []
    state.communications[cid] = {
        "id": cid,
        "type": "PhoneCommunication",
        "subject": subject,
        "body": body,
        "received_at": content.iso_utc(when),
        "senders": other,
        "receivers": [{"id": state.me, "type": "User"}],
    }
    return cid


def seeded(rng: random.Random, count: int, noise: int) -> Seed:
    """A company and ``count`` calls: calls share contacts (or have none) and overlapping
    windows; ``noise`` unrelated communications besides the ones that are some call's log."""

    def seed(state: cl_sim.ClioState) -> list[CompletedCall]:
        numbers = [f"+1415555{n:04d}" for n in range(6)]
        contacts = {n: state.add_contact(f"C{i}", n) for i, n in enumerate(numbers[:4])}
        made: list[CompletedCall] = []
        for i in range(count):
            start = START + timedelta(minutes=rng.randrange(0, 240))
            number = rng.choice(numbers)
            call = make_call(
                telephony_session_id=f"s-c{i}",
                session_id=f"88{i:03d}",
                external_number=number,
                start_time=start,
                answer_time=start + timedelta(seconds=4),
                end_time=start + timedelta(seconds=rng.randrange(30, 900)),
            )
            made.append(call)
            who = contacts.get(number)
            kind = rng.randrange(5)
            if kind == 0:  # a client's log naming the session, maybe of another contact
                other = who if rng.random() < 0.7 else rng.choice([*contacts.values(), None])
                communication(state, start, "Call", f"Session Id: {call.session_id}", other)
            elif kind == 1:  # App Connect's default log: no session, subject and minute
                subject = f"[Call] Inbound Call from C [{number}]"
                communication(state, start.replace(second=0), subject, "- Summary", who)
            elif kind == 2:  # ... on the bound of the call's window, or just outside it
                edge = content.utc(start) - CLIENT_WINDOW - timedelta(seconds=rng.choice([0, 1]))
                communication(state, edge, "Call", f"Session Id: {call.session_id}", who)
        for _ in range(noise):
            when = START + timedelta(minutes=rng.randrange(-120, 360))
            other = rng.choice([*contacts.values(), None])
            communication(state, when, "Call", f"Session Id: 9{rng.randrange(10**6)}", other)
        return made

    return seed


async def run(
    seed: Seed, http: aiohttp.ClientSession, batched: bool, fail_first_read: bool = False
) -> tuple[list[WriteResult], cl_sim.ClioState]:
    state = cl_sim.ClioState(rate_limit=10**6)
    calls = seed(state)
    if fail_first_read:
        state.faults.fail(503, path=COMMUNICATIONS, method="GET")
    async with serve(cl_sim.create_app(state)) as base:
        writer = cl.ClioWriter(settings(base), http)
        if batched:
            results = await writer.write_batch([(c, WriteContext()) for c in calls])
        else:
            results = [await writer.write(c, WriteContext()) for c in calls]
    return results, state


def reads(state: cl_sim.ClioState) -> int:
    return sum(1 for r in state.requests if r.method == "GET" and r.path == COMMUNICATIONS)


def outcome(result: WriteResult) -> str:
    """A result as comparable across two stand-ins: the record recognised, or created."""
    if isinstance(result, AlreadyExisted):
        return f"existing {result.record_id}"
    assert isinstance(result, Created), result
    return "created"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize(("seed", "count", "noise", "pages"), [(15, 12, 40, 1), (16, 10, 900, 3)])
async def test_one_read_per_batch_answers_as_each_calls_own_read(
    http: aiohttp.ClientSession, seed: int, count: int, noise: int, pages: int
) -> None:
    alone, per_call = await run(seeded(random.Random(seed), count, noise), http, batched=False)
    together, batched = await run(seeded(random.Random(seed), count, noise), http, batched=True)
    assert [outcome(r) for r in together] == [outcome(r) for r in alone]
    assert len(batched.communications) == len(per_call.communications)
    assert any(isinstance(r, AlreadyExisted) for r in alone)
    assert any(isinstance(r, Created) for r in alone)
    assert reads(per_call) == count
    assert reads(batched) == pages  # the window's pages, no read per call


async def test_a_window_too_large_falls_back_to_a_read_per_call(
    http: aiohttp.ClientSession,
) -> None:
    def crowded(state: cl_sim.ClioState) -> list[CompletedCall]:
        # Three calls may spend one page on the window; 250 more in it need a second.
        calls = seeded(random.Random(17), 3, 10)(state)
        for n in range(250):
            communication(state, calls[0].start_time, "Call", f"other work {n}", None)
        return calls

    alone, _ = await run(crowded, http, batched=False)
    together, state = await run(crowded, http, batched=True)
    assert [outcome(r) for r in together] == [outcome(r) for r in alone]
    assert reads(state) == 1 + 3


async def test_an_unreadable_window_falls_back_to_a_read_per_call(
    http: aiohttp.ClientSession,
) -> None:
    alone, _ = await run(seeded(random.Random(18), 4, 10), http, batched=False)
    together, state = await run(
        seeded(random.Random(18), 4, 10), http, batched=True, fail_first_read=True
    )
    assert [outcome(r) for r in together] == [outcome(r) for r in alone]
    assert reads(state) == 1 + 4
