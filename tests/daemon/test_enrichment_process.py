"""A call log's updates across a SIGKILL (issue 15): ``sscl-daemon run`` as a real process
logs a recorded call and a voicemail into a CRM stand-in (HubSpot, Salesforce, Pipedrive,
Zoho CRM, Dynamics 365, Clio, Bullhorn) with ``recordings = "upload"``, is SIGKILLed after the creates and before their updates, and
after a restart each recording and voicemail is attached once, its section written once."""

from __future__ import annotations

import base64
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.daemon.harness import daemon_config, fast_simulator, write_config
from tests.daemon.helpers import wait_until
from tests.daemon.test_e2e_process import DaemonProcess
from tests.ringcentral.harness import eventually

from sscl_daemon.config import StoreSettings
from sscl_daemon.crm.enrich import plain
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm import bullhorn as bh_sim
from sscl_daemon.simulator.crm import clio as clio_sim
from sscl_daemon.simulator.crm import dynamics as dv_sim
from sscl_daemon.simulator.crm import hubspot as hs_sim
from sscl_daemon.simulator.crm import pipedrive as pd_sim
from sscl_daemon.simulator.crm import salesforce as sf_sim
from sscl_daemon.simulator.crm import standins
from sscl_daemon.simulator.crm import zoho as zoho_sim
from sscl_daemon.simulator.crm.common import StandInState
from sscl_daemon.simulator.scenarios import CallKind
from sscl_daemon.store import Store
from sscl_daemon.store.enrichments import Enrichments


@dataclass(frozen=True)
class Media:
    """Where a CRM keeps what the updates add: the uploaded audio's file names, the text of
    its logs and notes (read as a person reads them), and whether that text names a file
    (all but Pipedrive write "attached (<file>)"; a Pipedrive call log plays its one
    recording itself)."""

    files: Callable[[StandInState], list[str]]
    texts: Callable[[StandInState], list[str]]
    names_files: bool
    # Notes left beside a log that the stand-in counts among its call logs (a Bullhorn call
    # log is a Note, and so is a note beside it).
    beside_logs: Callable[[StandInState], int] = lambda _: 0


def _hubspot_files(state: StandInState) -> list[str]:
    assert isinstance(state, hs_sim.HubSpotState)
    return [f.name for f in state.files.values()]


def _hubspot_texts(state: StandInState) -> list[str]:
    assert isinstance(state, hs_sim.HubSpotState)
    logs = [plain(c.properties.get("hs_call_body", "")) for c in state.calls.values()]
    return logs + [plain(n.properties["hs_note_body"]) for n in state.notes.values()]


def _salesforce_files(state: StandInState) -> list[str]:
    assert isinstance(state, sf_sim.SalesforceState)
    return [str(v["PathOnClient"]) for v in state.versions.values()]


def _salesforce_texts(state: StandInState) -> list[str]:
    assert isinstance(state, sf_sim.SalesforceState)
    logs = [plain(str(t.get("Description") or "")) for t in state.tasks.values()]
    notes = [base64.b64decode(str(n["Content"])).decode() for n in state.notes.values()]
    return logs + [plain(n) for n in notes]


def _pipedrive_files(state: StandInState) -> list[str]:
    assert isinstance(state, pd_sim.PipedriveState)
    return [name for name, _ in state.recordings.values()]


def _pipedrive_texts(state: StandInState) -> list[str]:
    assert isinstance(state, pd_sim.PipedriveState)
    logs = [plain(str(log.get("note") or "")) for log in state.call_logs.values()]
    return logs + [plain(str(n.get("content") or "")) for n in state.notes.values()]


def _zoho_files(state: StandInState) -> list[str]:
    assert isinstance(state, zoho_sim.ZohoState)
    return [str(a["File_Name"]) for rows in state.attachments.values() for a in rows]


def _zoho_texts(state: StandInState) -> list[str]:
    assert isinstance(state, zoho_sim.ZohoState)
    logs = [plain(str(c.get("Description") or "")) for c in state.calls.values()]
    return logs + [plain(str(n["Note_Content"])) for n in state.notes.values()]


def _dynamics_files(state: StandInState) -> list[str]:
    assert isinstance(state, dv_sim.DynamicsState)
    return [str(a["filename"]) for a in state.annotations.values() if a["isdocument"]]


def _dynamics_texts(state: StandInState) -> list[str]:
    assert isinstance(state, dv_sim.DynamicsState)
    logs = [plain(str(p.get("description") or "")) for p in state.phonecalls.values()]
    notes = [a for a in state.annotations.values() if not a["isdocument"]]
    return logs + [plain(str(a.get("notetext") or "")) for a in notes]


def _clio_files(state: StandInState) -> list[str]:
    assert isinstance(state, clio_sim.ClioState)
    # A document is a file once its bytes are up (Clio's third step).
    return [str(d["name"]) for d in state.documents.values() if d["fully_uploaded"]]


def _clio_texts(state: StandInState) -> list[str]:
    assert isinstance(state, clio_sim.ClioState)
    logs = [plain(str(c.get("body") or "")) for c in state.communications.values()]
    return logs + [plain(str(n.get("detail") or "")) for n in state.notes.values()]


def _bullhorn_files(state: StandInState) -> list[str]:
    assert isinstance(state, bh_sim.BullhornState)
    return [str(f["name"]) for f in state.files.values()]


def _bullhorn_texts(state: StandInState) -> list[str]:
    assert isinstance(state, bh_sim.BullhornState)
    # The call logs and the notes beside them alike.
    return [plain(str(n.get("comments") or "")) for n in state.notes.values()]


def _bullhorn_beside(state: StandInState) -> int:
    return sum("sscl-update:" in text for text in _bullhorn_texts(state))


MEDIA = {
    "hubspot": Media(_hubspot_files, _hubspot_texts, names_files=True),
    "salesforce": Media(_salesforce_files, _salesforce_texts, names_files=True),
    "pipedrive": Media(_pipedrive_files, _pipedrive_texts, names_files=False),
    "zoho": Media(_zoho_files, _zoho_texts, names_files=True),
    "dynamics": Media(_dynamics_files, _dynamics_texts, names_files=True),
    "clio": Media(_clio_files, _clio_texts, names_files=True),
    "bullhorn": Media(_bullhorn_files, _bullhorn_texts, True, _bullhorn_beside),
}
# Pipedrive's call-log note beside the log goes on the call's person, and Clio keeps documents
# on a matter or contact only: make a contact of callers nobody knows, so the transcription and
# the audio have somewhere to go. (Bullhorn's stand-in table asks the same: a Note needs a
# person; the person is a Candidate, whose files Bullhorn keeps -- a Lead's it links.)
EXTRA = {"pipedrive": {"no_contact": "create"}, "clio": {"no_contact": "create"}}


KINDS = {"recording", "voicemail"}  # the recorded call's update, the voicemail's


@dataclass
class World:
    sim: Simulator
    crm: standins.RunningStandIn
    daemon: DaemonProcess


@pytest.fixture(params=sorted(MEDIA))
async def world(
    request: pytest.FixtureRequest, pg_dsn: str, tmp_path: Path
) -> AsyncIterator[World]:
    kind = str(request.param)
    async with fast_simulator(seed=31) as sim, standins.running(kind) as crm:
        config = daemon_config(
            sim_url=sim.base_url, crm_url="", crm_secret="", state_dir=tmp_path / "s", dsn=pg_dsn
        )
        config["writers"] = {
            "crm": {
                **crm.writer,
                **EXTRA.get(kind, {}),
                "recordings": "upload",
                "media_first_look": 4.0,
                "retry_initial": 0.1,
                "retry_max": 1.0,
                "timeout": 5.0,
            }
        }
        daemon = DaemonProcess(write_config(tmp_path / "config.toml", config), tmp_path)
        try:
            yield World(sim, crm, daemon)
        finally:
            daemon.kill_if_running()


async def test_updates_arrive_once_across_a_sigkill_between_create_and_update(
    world: World, pg_dsn: str, tmp_path: Path
) -> None:
    sim, crm, daemon = world.sim, world.crm, world.daemon
    media = MEDIA[crm.kind]
    daemon.start()
    await daemon.ready()
    for kind in (CallKind.RECORDED, CallKind.INBOUND_VOICEMAIL):
        sim.inject(sim.factory.make(datetime.now(UTC), kind))
    expected = {log.key for call in sim.calls for log in call.expected}
    await wait_until(lambda: crm.stored() >= len(expected), 30, f"the creates in {crm.label}")
    assert media.files(crm.state) == []  # the updates are due seconds later
    assert await daemon.signal(signal.SIGKILL) == -signal.SIGKILL

    daemon.start()
    await daemon.ready()
    store = await Store.open(StoreSettings(dsn=pg_dsn), tmp_path)
    try:
        rows = Enrichments(store)

        async def settled() -> bool:
            # Both kinds: a create redone after the kill queues its update only then.
            found = await rows.rows("default", "crm")
            kinds = {r["kind"] for r in found}
            return kinds == KINDS and all(r["status"] == "sent" for r in found)

        await eventually(settled, "every update settled", 60)
        done = await rows.rows("default", "crm")
    finally:
        await store.close()
    assert {r["kind"] for r in done} == KINDS
    assert await daemon.signal(signal.SIGTERM) == 0
    assert crm.stored() - media.beside_logs(crm.state) == len(expected)
    # Each update's audio uploaded once (one file per recording or voicemail).
    files = media.files(crm.state)
    assert len(files) == len(done)
    assert Counter(files).most_common(1)[0][1] == 1
    # Each section written once: in the log's note, or -- for a log whose create answer the
    # kill lost (its note then counts as unknown) -- in a note beside it.
    text = "\n".join(media.texts(crm.state))
    voicemails = sum(r["kind"] == "voicemail" for r in done)
    assert text.count("Voicemail transcription:") == voicemails
    if media.names_files:
        for name in files:
            assert text.count(f"attached ({name})") == 1, name
