"""Bullhorn's Note lookup by ``externalID`` for a batch (crm/bullhorn.py ``write_batch``):
the ids of every call of the batch -- the session ids App Connect writes into the Notes its
users' clients make, and our key after an uncertain attempt -- are read in a few queries
(QUERY_IDS ids each) instead of one per call, with the same answers (issue 15: requests per
call), and a failed read falls back to each call's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from tests.crm.conftest import START, make_call

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import ContactSettings, OAuthClientSettings, Secret, WriterSettings
from sscl_daemon.crm import bullhorn as bh
from sscl_daemon.crm.base import AlreadyExisted, Created, WriteContext
from sscl_daemon.simulator.crm import bullhorn as bh_sim
from sscl_daemon.simulator.crm.common import serve

QUERY = "query/Note"


@pytest.fixture
async def rig(
    http_session: aiohttp.ClientSession,
) -> AsyncIterator[tuple[bh_sim.BullhornState, bh.BullhornWriter]]:
    state = bh_sim.BullhornState()
    async with serve(bh_sim.create_app(state)) as base:
        oauth = OAuthClientSettings(
            bh_sim.CLIENT_ID, Secret(bh_sim.CLIENT_SECRET), Secret(bh_sim.REFRESH_TOKEN)
        )
        options = bh.BullhornOptions(oauth, auth_url=base, login_url=base)
        settings = WriterSettings("b", "bullhorn", options, contacts=ContactSettings())  # type: ignore[arg-type]
        writer = bh.BullhornWriter(settings, http_session)
        try:
            yield state, writer
        finally:
            await writer.close()


def calls(state: bh_sim.BullhornState, count: int) -> list[CompletedCall]:
    made = []
    for n in range(count):
        number = f"+1415555{n:04d}"
        state.add_person("ClientContact", f"P{n}", number)
        start = START + timedelta(minutes=n)
        made.append(
            make_call(
                telephony_session_id=f"s-b{n}",
                session_id=f"88{n:04d}",
                external_number=number,
                start_time=start,
                answer_time=start + timedelta(seconds=5),
                end_time=start + timedelta(seconds=50),
            )
        )
    return made


def client_note(state: bh_sim.BullhornState, external_id: str) -> int:
    """A Note a user's client made (App Connect writes the call's session id)."""
    nid = state.new_id()
    state.notes[nid] = {"id": nid, "comments": "call", "externalID": external_id,
                        "isDeleted": False}  # fmt: skip
    return nid


def note_queries(state: bh_sim.BullhornState) -> int:
    return state.count("GET", QUERY)


async def test_a_batch_reads_its_notes_in_few_queries(
    rig: tuple[bh_sim.BullhornState, bh.BullhornWriter],
) -> None:
    state, writer = rig
    batch = calls(state, 25)  # 3 ids a call: 75 ids, two queries of at most 60
    theirs = client_note(state, batch[7].session_id)
    results = await writer.write_batch([(c, WriteContext()) for c in batch])
    assert results[7] == AlreadyExisted(str(theirs))
    assert all(isinstance(r, Created) for i, r in enumerate(results) if i != 7)
    assert note_queries(state) == 2
    # A retry of the batch (uncertain) finds each of our own Notes by its key: nothing twice.
    again = await writer.write_batch([(c, WriteContext(2, uncertain=True)) for c in batch])
    assert [type(r) for r in again] == [AlreadyExisted] * len(batch)
    assert len(state.notes) == len(batch)
    assert note_queries(state) == 4


async def test_a_failed_batch_read_falls_back_to_each_calls_own(
    rig: tuple[bh_sim.BullhornState, bh.BullhornWriter],
) -> None:
    state, writer = rig
    batch = calls(state, 3)
    theirs = client_note(state, batch[1].telephony_session_id)
    state.faults.fail(503, path=QUERY, method="GET")
    results = await writer.write_batch([(c, WriteContext()) for c in batch])
    assert results[1] == AlreadyExisted(str(theirs))
    assert isinstance(results[0], Created)
    assert isinstance(results[2], Created)
    assert note_queries(state) == 1 + len(batch)
