"""One lookup per question at a time (crm/singleflight.py and its use in crm/contacts.py).

Unit tests hold each lookup at a gate until every asker has joined, so the askers really
overlap; the writer tests send a batch of calls with one number to each CRM stand-in over
loopback HTTP and count the searches and user-list reads it received (issue 15: requests
per call; Pipedrive, Clio and Bullhorn write a batch's calls concurrently).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import ContactSettings, NoContactPolicy, parse_config
from sscl_daemon.crm.base import Created, PermanentFailure, RetryLater, WriteContext
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution, Resolver
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.crm.singleflight import SharedCache, SingleFlight
from sscl_daemon.simulator.crm import standins
from sscl_daemon.simulator.crm.common import RecordedRequest

NUM = "+14155550123"
ASKERS = 6


async def settled(condition: Callable[[], bool], what: str) -> None:
    """Let the other tasks run until ``condition`` holds (they only need the loop)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never {what}")


class Gated:
    """An async lookup that records each run and answers once its gate opens."""

    def __init__(self, answer: Callable[[int], Any]) -> None:
        self.answer = answer
        self.gate = asyncio.Event()
        self.runs = 0

    async def __call__(self) -> Any:
        self.runs += 1
        run = self.runs
        await self.gate.wait()
        return self.answer(run)


async def overlapping(
    count: int, ask: Callable[[], Coroutine[Any, Any, Any]]
) -> tuple[list[asyncio.Task[Any]], list[int]]:
    """``count`` tasks each making one ask; returns once every task is inside its ask."""
    entered: list[int] = []

    async def one(n: int) -> Any:
        entered.append(n)
        # run() reaches its lookup or the flight's await without suspending before.
        return await ask()

    tasks = [asyncio.create_task(one(n)) for n in range(count)]
    await settled(lambda: len(entered) == count, "all askers joined")
    return tasks, entered


async def test_concurrent_asks_for_one_key_share_one_lookup() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    lookup = Gated(lambda run: f"answer-{run}")
    tasks, _ = await overlapping(ASKERS, lambda: flight.run("k", lookup))
    assert len(flight) == 1
    lookup.gate.set()
    assert await asyncio.gather(*tasks) == ["answer-1"] * ASKERS
    assert lookup.runs == 1
    assert flight.shared == ASKERS - 1
    assert len(flight) == 0
    # Over: the next ask runs its own lookup (caching is SharedCache's job).
    assert await flight.run("k", lookup) == "answer-2"


async def test_other_keys_do_not_wait() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    held = Gated(lambda run: "held")

    async def free() -> str:
        return "free"

    waiting = asyncio.create_task(flight.run("a", held))
    await settled(lambda: held.runs == 1, "the first lookup started")
    assert await flight.run("b", free) == "free"
    assert not waiting.done()
    held.gate.set()
    assert await waiting == "held"


async def test_a_failure_reaches_every_waiter_and_is_not_cached() -> None:
    cache: SharedCache[str, str | LookupFailure] = SharedCache(
        10, 60.0, lambda a: isinstance(a, str)
    )
    down = Gated(lambda run: RetryLater("CRM down", 7.0))
    tasks, _ = await overlapping(ASKERS, lambda: cache.get("k", down))
    down.gate.set()
    # Each waiter gets exactly what the search alone would have answered.
    assert await asyncio.gather(*tasks) == [RetryLater("CRM down", 7.0)] * ASKERS
    assert down.runs == 1
    assert "k" not in cache
    up = Gated(lambda run: "found")
    up.gate.set()
    assert await cache.get("k", up) == "found"
    assert await cache.get("k", up) == "found"
    assert (up.runs, cache.misses, cache.hits) == (1, 2, 1)


async def test_an_exception_is_raised_in_every_waiter() -> None:
    flight: SingleFlight[str, str] = SingleFlight()

    def broken(run: int) -> str:
        raise ValueError(f"unreadable answer {run}")

    lookup = Gated(broken)
    tasks, _ = await overlapping(ASKERS, lambda: flight.run("k", lookup))
    lookup.gate.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert [str(o) for o in outcomes] == ["unreadable answer 1"] * ASKERS
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert lookup.runs == 1


async def test_a_cancelled_leader_hands_the_lookup_to_a_waiter() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    lookup = Gated(lambda run: f"answer-{run}")
    tasks, _ = await overlapping(ASKERS, lambda: flight.run("k", lookup))
    tasks[0].cancel()  # the leader: the first task ran the lookup
    await settled(lambda: lookup.runs == 2, "a waiter took the lookup over")
    lookup.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert await asyncio.gather(*tasks[1:]) == ["answer-2"] * (ASKERS - 1)


async def test_a_cancelled_waiter_leaves_the_others_their_answer() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    lookup = Gated(lambda run: "answer")
    tasks, _ = await overlapping(ASKERS, lambda: flight.run("k", lookup))
    tasks[3].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[3]
    lookup.gate.set()
    answers = await asyncio.gather(*(t for n, t in enumerate(tasks) if n != 3))
    assert answers == ["answer"] * (ASKERS - 1)
    assert lookup.runs == 1


class GatedCrm:
    """A CRM's lookups for the resolver, each held at its own gate."""

    def __init__(
        self, found: tuple[Contact, ...] = (), refusal: PermanentFailure | None = None
    ) -> None:
        self.refusal = refusal
        self.search = Gated(lambda run: found)
        self.users = Gated(lambda run: {"alice@example.com": "42", "bob@example.com": "43"})
        self.create_gate = asyncio.Event()
        self.created: list[str] = []

    async def find(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        answer: tuple[Contact, ...] = await self.search()
        return answer

    async def list_users(self) -> dict[str, str] | LookupFailure:
        answer: dict[str, str] = await self.users()
        return answer

    async def create(
        self, call: CompletedCall, number: str, owner: str | None
    ) -> Contact | LookupFailure:
        self.created.append(call.key)
        await self.create_gate.wait()
        return self.refusal or Contact(f"new-{len(self.created)}", owner_id=owner)

    def resolver(self, settings: ContactSettings) -> Resolver:
        return Resolver(
            "TestCRM", settings, find=self.find, create=self.create, list_users=self.list_users
        )


def calls(count: int, **overrides: Any) -> list[CompletedCall]:
    return [
        make_call(telephony_session_id=f"s-{n}", session_id=str(9000 + n), **overrides)
        for n in range(count)
    ]


async def test_a_batch_with_one_number_makes_one_search_and_one_user_list_read() -> None:
    crm = GatedCrm(found=(Contact("c-1", "Ann"),))
    resolver = crm.resolver(ContactSettings())
    batch = calls(ASKERS)
    tasks, _ = await overlapping(ASKERS, lambda: resolver.resolve(batch.pop()))
    crm.search.gate.set()
    await settled(lambda: crm.users.runs == 1, "the user list was asked for")
    crm.users.gate.set()
    answers = await asyncio.gather(*tasks)
    assert answers == [Resolution((Contact("c-1", "Ann"),), "42")] * ASKERS
    assert (crm.search.runs, crm.users.runs) == (1, 1)
    assert resolver.cache.shared == ASKERS - 1


async def resolve_one_new_number(crm: GatedCrm) -> list[object]:
    """A batch of calls with one number nobody has, under ``no_contact = create``; the
    create is held until every call waits for it."""
    resolver = crm.resolver(ContactSettings(no_contact=NoContactPolicy.CREATE))
    batch = calls(ASKERS)
    tasks, _ = await overlapping(ASKERS, lambda: resolver.resolve(batch.pop()))
    crm.search.gate.set()
    crm.users.gate.set()
    await settled(
        lambda: len(crm.created) == 1 and resolver.creates.waiting == ASKERS - 1,
        "every call waits for the one create",
    )
    crm.create_gate.set()
    answers: list[object] = await asyncio.gather(*tasks)
    assert len(crm.created) == 1
    assert crm.search.runs == 1
    return answers


async def test_a_batch_with_one_new_number_creates_one_contact() -> None:
    answers = await resolve_one_new_number(GatedCrm())
    made = Contact("new-1", owner_id="42")
    assert [a for a in answers if isinstance(a, Resolution) and a.created_contact] == [
        Resolution((made,), "42", created_contact=True)
    ]
    assert answers.count(Resolution((made,), "42")) == ASKERS - 1


async def test_a_call_deciding_to_create_after_the_create_finished_uses_it() -> None:
    """Call A creates the contact while call B, which found none either, still reads the
    user list for its owner: B then takes A's contact instead of making a second one."""
    crm = GatedCrm()
    settings = ContactSettings(no_contact=NoContactPolicy.CREATE, owners={"101": "7"})
    resolver = crm.resolver(settings)
    a = asyncio.create_task(resolver.resolve(make_call(extension_number="101")))
    b = asyncio.create_task(
        resolver.resolve(
            make_call(
                telephony_session_id="s-b", extension_number="102", user_email="bob@example.com"
            )
        )
    )
    await settled(lambda: crm.search.runs == 1, "the search started")
    crm.search.gate.set()
    await settled(lambda: len(crm.created) == 1 and crm.users.runs == 1, "A creates, B reads")
    crm.create_gate.set()
    made = Contact("new-1", owner_id="7")
    assert await a == Resolution((made,), "7", created_contact=True)
    crm.users.gate.set()
    assert await b == Resolution((made,), "43")
    assert len(crm.created) == 1


async def test_a_failed_create_fails_each_waiter_alike() -> None:
    refused = PermanentFailure("TestCRM refused the contact: phone invalid")
    assert await resolve_one_new_number(GatedCrm(refusal=refused)) == [refused] * ASKERS


# -- every writer over loopback HTTP against its stand-in --------------------------------

Match = Callable[[RecordedRequest], bool]


def get(fragment: str) -> Match:
    return lambda r: r.method == "GET" and fragment in r.path


def query_for(table: str) -> Match:
    return lambda r: r.method == "GET" and f"FROM {table} " in r.query.get("q", "")


# The contact search and the user-list read of each writer (its module docstring).
SEARCH: dict[str, Match] = {
    "hubspot": lambda r: r.path.endswith("/objects/contacts/search"),
    "salesforce": get("/search"),
    "pipedrive": get("/persons/search"),
    "zoho": get("/Contacts/search"),
    "dynamics": get("/contacts"),
    "clio": get("/contacts.json"),
    "bullhorn": get("/search/"),
}
USERS: dict[str, Match] = {
    "hubspot": get("/owners"),
    "salesforce": query_for("User"),
    "pipedrive": get("/api/v1/users"),
    "zoho": get("/users"),
    "dynamics": get("/systemusers"),
    "clio": get("/users.json"),
    "bullhorn": get("/query/CorporateUser"),
}
RC = {"client_id": "test", "client_secret": "test-secret", "jwt": "test-jwt"}


async def write_one_number_batch(
    kind: str, count: int, table: dict[str, object], known: bool
) -> tuple[standins.RunningStandIn, list[object]]:
    contacts = [("Ann Lee", NUM)] if known else []
    async with (
        standins.running(kind, contacts, ["alice@example.com"]) as crm,
        aiohttp.ClientSession() as session,
    ):
        config = {**crm.writer, "rate_limit": 10_000.0, **table}
        settings = parse_config({"ringcentral": RC, "writers": {kind: config}}).account()
        writer = build_writer(settings.writers[0], session)
        batch = [(c, WriteContext()) for c in calls(count)]
        results: list[object] = list(await writer.write_batch(batch))
        await writer.close()
        return crm, results


def counted(crm: standins.RunningStandIn, match: Match) -> int:
    return sum(1 for r in crm.state.requests if match(r))


@pytest.mark.parametrize("kind", list(SEARCH))
async def test_each_writer_searches_a_batch_s_number_once(kind: str) -> None:
    crm, results = await write_one_number_batch(kind, 8, {}, known=True)
    assert all(isinstance(r, Created) for r in results), results
    assert crm.stored() == 8
    assert counted(crm, SEARCH[kind]) == 1
    assert counted(crm, USERS[kind]) == 1
    if kind == "clio":  # the contact's open matter, cached with the contacts
        assert counted(crm, get("/matters.json")) == 1


# The stand-ins' contact creates of the writers that resolve a batch's calls concurrently.
CREATE: dict[str, Match] = {
    "pipedrive": lambda r: r.method == "POST" and r.path.endswith("/persons"),
    "clio": lambda r: r.method == "POST" and r.path.endswith("/contacts.json"),
    "bullhorn": lambda r: r.method == "PUT" and "/entity/" in r.path and "Note" not in r.path,
}


@pytest.mark.parametrize("kind", list(CREATE))
async def test_a_batch_s_new_number_becomes_one_contact(kind: str) -> None:
    """Before: one contact per call (five people with the same number)."""
    crm, results = await write_one_number_batch(kind, 5, {"no_contact": "create"}, known=False)
    assert all(isinstance(r, Created) for r in results), results
    assert counted(crm, CREATE[kind]) == 1
    # Bullhorn looks for the number in each of its person entities before creating.
    assert counted(crm, SEARCH[kind]) == (3 if kind == "bullhorn" else 1)


async def test_clio_reads_the_api_user_once_for_a_batch_nobody_is_mapped_for() -> None:
    crm, results = await write_one_number_batch("clio", 8, {"owner_by_email": False}, known=True)
    assert all(isinstance(r, Created) for r in results), results
    assert counted(crm, get("/users/who_am_i.json")) == 1
    assert counted(crm, USERS["clio"]) == 0
