"""The several_contacts time policies with the new writers: each reads its CRM's own record
times (Zoho Modified_Time/Created_Time, Dataverse modifiedon/createdon, Clio updated_at/
created_at, Bullhorn dateLastModified/dateAdded in epoch ms)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import aiohttp
import pytest
from tests.crm.conftest import make_call

from sscl_daemon.config import parse_config
from sscl_daemon.crm.base import Created, WriteContext
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.simulator.crm import bullhorn, clio, dynamics, zoho
from sscl_daemon.simulator.crm.standins import RunningStandIn, running

RC = {"client_id": "id", "client_secret": "s", "jwt": "j"}
OLDER, NEWER = "2026-03-01T08:00:00+00:00", "2026-06-01T08:00:00+00:00"


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _zoho(crm: RunningStandIn, number: str) -> list[str]:
    state = crm.state
    assert isinstance(state, zoho.ZohoState)
    ids = [state.add_contact(name, number) for name in ("Old", "New")]
    for cid, when in zip(ids, (OLDER, NEWER), strict=True):
        state.contacts[cid].update(Created_Time=when, Modified_Time=when)
    return ids


def _dynamics(crm: RunningStandIn, number: str) -> list[str]:
    state = crm.state
    assert isinstance(state, dynamics.DynamicsState)
    ids = [state.add_contact(name, number) for name in ("Old", "New")]
    for cid, when in zip(ids, (OLDER, NEWER), strict=True):
        state.contacts[cid].update(createdon=when, modifiedon=when)
    return ids


def _clio(crm: RunningStandIn, number: str) -> list[str]:
    state = crm.state
    assert isinstance(state, clio.ClioState)
    ids = [state.add_contact(name, number) for name in ("Old", "New")]
    for cid, when in zip(ids, (OLDER, NEWER), strict=True):
        state.contacts[cid].update(created_at=when, updated_at=when)
    return [str(i) for i in ids]


def _bullhorn(crm: RunningStandIn, number: str) -> list[str]:
    state = crm.state
    assert isinstance(state, bullhorn.BullhornState)
    ids = [state.add_person("ClientContact", name, number) for name in ("Old", "New")]
    for pid, when in zip(ids, (OLDER, NEWER), strict=True):
        state.people["ClientContact"][pid].update(dateAdded=_ms(when), dateLastModified=_ms(when))
    return [str(i) for i in ids]


Seed = Callable[[RunningStandIn, str], list[str]]


def _associated(crm: RunningStandIn) -> str:
    state = crm.state
    if isinstance(state, zoho.ZohoState):
        (call,) = state.calls.values()
        return str(call["Who_Id"]["id"])  # type: ignore[index]
    if isinstance(state, dynamics.DynamicsState):
        (row,) = state.phonecalls.values()
        return str(row["regardingobjectid_contact@odata.bind"])
    if isinstance(state, clio.ClioState):
        (record,) = state.communications.values()
        return next(str(p["id"]) for p in state.parties(record) if p["type"] == "Contact")
    assert isinstance(state, bullhorn.BullhornState)
    (note,) = state.notes.values()
    return str(note["personReference"]["id"])  # type: ignore[index]


@pytest.mark.parametrize(
    ("kind", "seed"),
    [("zoho", _zoho), ("dynamics", _dynamics), ("clio", _clio), ("bullhorn", _bullhorn)],
)
@pytest.mark.parametrize(("policy", "wanted"), [("most-recently-updated", 1), ("oldest", 0)])
async def test_time_policies_pick_by_the_crms_record_times(
    kind: str, seed: Seed, policy: str, wanted: int, http_session: aiohttp.ClientSession
) -> None:
    call = make_call()
    assert call.external_number
    async with running(kind) as crm:
        ids = seed(crm, call.external_number)
        table = {**crm.writer, "several_contacts": policy}
        settings = parse_config({"ringcentral": RC, "writers": {"crm": table}}).account().writers[0]
        writer = build_writer(settings, http_session)
        assert isinstance(await writer.write(call, WriteContext()), Created)
        await writer.close()
        assert _associated(crm) == ids[wanted]
