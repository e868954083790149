"""Pipedrive's client-log check of a batch (crm/pipedrive.py ``write_batch``): one read of
the activities updated since an hour before the batch's earliest call answers every call's
check as a read per person would (issue 15: <= 1.5 requests per call), and a read per
person takes over when that window is too large or unreadable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import pytest
from tests.crm.conftest import START, make_call

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import PipedriveOptions, Secret, WriterSettings, WriterType
from sscl_daemon.crm.base import AlreadyExisted, Created, WriteContext, WriteResult
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.simulator.crm import pipedrive as standin
from sscl_daemon.simulator.crm.common import serve

TOKEN = "pd-window-token"
ACTIVITIES = "/api/v2/activities"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Rig:
    state: standin.PipedriveState
    writer: PipedriveWriter
    base: str

    async def batch(self, calls: list[CompletedCall]) -> list[WriteResult]:
        return await self.writer.write_batch([(c, WriteContext()) for c in calls])

    def activity_reads(self) -> list[dict[str, str]]:
        return [r.query for r in self.state.requests if r.method == "GET" and r.path == ACTIVITIES]


@pytest.fixture
async def rig(http_session: aiohttp.ClientSession) -> AsyncIterator[Rig]:
    state = standin.PipedriveState(clock=lambda: START + timedelta(minutes=5))
    state.add_user("alice@example.com", "Alice", api_token=TOKEN)
    async with serve(standin.create_app(state)) as base:
        options = PipedriveOptions(base_url=base, api_token=Secret(TOKEN))
        settings = WriterSettings("pd", WriterType.PIPEDRIVE, options, timeout=5.0)
        yield Rig(state, PipedriveWriter(settings, http_session), base)


def calls(count: int, gap: timedelta = timedelta(minutes=1)) -> list[CompletedCall]:
    """``count`` calls with their own numbers, sessions and starts ``gap`` apart."""
    made = []
    for n in range(count):
        start = START + n * gap
        made.append(
            make_call(
                telephony_session_id=f"s-w{n}",
                session_id=f"77{n:03d}",
                external_number=f"+1415555{n:04d}",
                start_time=start,
                answer_time=start + timedelta(seconds=5),
                end_time=start + timedelta(seconds=50),
            )
        )
    return made


async def test_one_read_answers_every_call_of_the_batch(rig: Rig) -> None:
    batch = calls(4)
    people = [rig.state.add_person(f"P{n}", [c.external_number]) for n, c in enumerate(batch)]
    # A user's client logged call 0 (App Connect's "Session Id" line); call 2's person has
    # an activity of another session; the others have none.
    theirs = rig.state.add_activity(people[0], "<p>Call</p><p>- Session Id: 77000</p>")
    rig.state.add_activity(people[2], "<p>Call</p><p>- Session Id: 55555</p>")
    results = await rig.batch(batch)
    assert results[0] == AlreadyExisted(f"activity:{theirs}")
    assert all(isinstance(r, Created) for r in results[1:]), results
    assert len(rig.state.call_logs) == 3
    # One read for the batch, from an hour before its earliest call, of every person.
    (read,) = rig.activity_reads()
    assert read["updated_since"] == stamp(START - timedelta(hours=1))
    assert "person_id" not in read


async def test_each_call_keeps_its_own_hour(rig: Rig) -> None:
    """An activity inside the batch's window but updated more than an hour before its call
    counts no more than a read per person would count it."""
    early, late = calls(2, gap=timedelta(hours=3))
    person = rig.state.add_person("Late", [late.external_number])
    old = stamp(late.start_time - timedelta(hours=2))
    rig.state.add_activity(person, "<p>- Session Id: 77001</p>", update_time=old)
    results = await rig.batch([early, late])
    assert [type(r) for r in results] == [Created, Created]
    assert len(rig.activity_reads()) == 1
    # The same call alone (a read per person) agrees.
    rig.state.call_logs.clear()
    assert isinstance(await rig.writer.write(late, WriteContext()), Created)


async def test_a_window_too_large_falls_back_to_a_read_per_person(rig: Rig) -> None:
    batch = calls(3)  # at most one page (3 // 2) for the window
    people = [rig.state.add_person(f"P{n}", [c.external_number]) for n, c in enumerate(batch)]
    busy = rig.state.add_person("Busy", ["+14155559999"])
    for n in range(standin.ACTIVITIES_LIMIT):
        rig.state.add_activity(busy, f"<p>other work {n}</p>")
    theirs = rig.state.add_activity(people[1], "<p>- Session Id: 77001</p>")
    results = await rig.batch(batch)
    assert results[1] == AlreadyExisted(f"activity:{theirs}")
    assert isinstance(results[0], Created)
    assert isinstance(results[2], Created)
    reads = rig.activity_reads()
    assert "person_id" not in reads[0]
    assert reads[0]["limit"] == "500"
    assert sorted(r["person_id"] for r in reads[1:]) == sorted(str(p) for p in people)


async def test_an_unreadable_window_falls_back_to_a_read_per_person(rig: Rig) -> None:
    batch = calls(2)
    people = [rig.state.add_person(f"P{n}", [c.external_number]) for n, c in enumerate(batch)]
    theirs = rig.state.add_activity(people[0], "<p>- Session Id: 77000</p>")
    rig.state.faults.fail(503, path=ACTIVITIES, method="GET")
    results = await rig.batch(batch)
    assert results[0] == AlreadyExisted(f"activity:{theirs}")
    assert isinstance(results[1], Created)
    assert [("person_id" in r) for r in rig.activity_reads()] == [False, True, True]


async def test_standin_pages_activities_by_cursor(
    rig: Rig, http_session: aiohttp.ClientSession
) -> None:
    person = rig.state.add_person("Bob", ["+14155550123"])
    made = [rig.state.add_activity(person, f"<p>{n}</p>") for n in range(5)]
    base = rig.base
    seen: list[int] = []
    params = {"limit": "2"}
    headers = {"x-api-token": TOKEN}
    for _ in range(5):
        async with http_session.get(base + ACTIVITIES, params=params, headers=headers) as answer:
            body = await answer.json()
        seen += [a["id"] for a in body["data"]]
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
        params["cursor"] = cursor
    assert seen == made
    async with http_session.get(
        base + ACTIVITIES, params={"limit": "501"}, headers=headers
    ) as answer:
        assert answer.status == 400
