"""A call log's lifecycle end to end (issue 15 steps 4-5): the create at call end, then the
recording and the voicemail (audio and transcription) added to the same CRM record once
RingCentral has them -- with the RingCentral simulator, a CRM stand-in and a real Postgres.

Per CRM: the bytes attached equal the simulator's, each update happens once across a crash
between create and update (the claims the killed process held lapse; the rows come back
uncertain), and a note a person edited after the create is left as they wrote it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import pytest
from tests.ringcentral.harness import eventually

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction, idempotency_key
from sscl_daemon.config import (
    ContactSettings,
    HubSpotOptions,
    OAuthClientSettings,
    PipedriveOptions,
    RecordingsMode,
    RingCentralSettings,
    SalesforceOptions,
    Secret,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm.base import WriteContext, Writer
from sscl_daemon.crm.enrich import Enrichment, Kind, Updated, plain
from sscl_daemon.crm.hubspot import HubSpotWriter
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.crm.salesforce import SalesforceWriter
from sscl_daemon.dispatch import Dispatcher
from sscl_daemon.enrichment import EnrichmentRunner
from sscl_daemon.ringcentral.auth import Authenticator
from sscl_daemon.ringcentral.media import MediaClient
from sscl_daemon.ringcentral.rest import RestClient
from sscl_daemon.simulator import media as sim_media
from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.crm import hubspot as hs_sim
from sscl_daemon.simulator.crm import pipedrive as pd_sim
from sscl_daemon.simulator.crm import salesforce as sf_sim
from sscl_daemon.simulator.crm.common import serve
from sscl_daemon.simulator.profiles import PlatformProfile
from sscl_daemon.simulator.scenarios import CallKind, SimCall
from sscl_daemon.store import Store
from sscl_daemon.store.enrichments import Enrichments

ACCOUNT = "acct"
PD_TOKEN = "pd-token-123456"
WAIT = 15.0


async def until(predicate: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    """Wait for ``predicate`` (a store query) to hold, up to ``within`` seconds."""
    await eventually(predicate, "the rows to settle", within)


def completed(sim: Simulator, call: SimCall) -> CompletedCall:
    """The call log the daemon would make for the user leg of a simulated call."""
    record = next(r for r in call.call_log_records if "recording" in r or "message" in r)
    to, frm = record["to"], record["from"]
    assert isinstance(to, dict)
    assert isinstance(frm, dict)
    ext = str(to.get("extensionId") or "")
    message = record.get("message")
    if isinstance(message, dict):
        ext = str(message["uri"]).split("/extension/")[1].split("/")[0]
    recording = record.get("recording")
    start = datetime.fromisoformat(str(record["startTime"]).replace("Z", "+00:00"))
    seconds = int(str(record["duration"]))
    voicemail = record.get("result") == "Voicemail" or "message" in record
    tsid = str(record["telephonySessionId"])
    return CompletedCall(
        key=idempotency_key(tsid, ext),
        telephony_session_id=tsid,
        session_id=str(record["sessionId"]),
        account_id=sim.org.account_id,
        extension_id=ext,
        extension_number=str(to.get("extensionNumber") or "") or None,
        user_name=str(to.get("name") or "") or None,
        user_email=None,
        direction=Direction.INBOUND,
        external_number=str(frm.get("phoneNumber")),
        external_name=None,
        internal_number=None,
        result=CallResult.VOICEMAIL if voicemail else CallResult.ANSWERED,
        start_time=start,
        answer_time=None if voicemail else start,
        end_time=start + timedelta(seconds=max(seconds, 1)),
        ring_ms=0,
        queue_ms=0,
        talk_ms=0 if voicemail else seconds * 1000,
        hold_ms=0,
        total_ms=seconds * 1000,
        recording_ids=(str(recording["id"]),) if isinstance(recording, dict) else (),
    )


@dataclass
class Rig:
    sim: Simulator
    store: Store
    http: aiohttp.ClientSession
    media: MediaClient
    hs: hs_sim.HubSpotState
    hs_url: str
    sf: sf_sim.SalesforceState
    sf_url: str
    pd: pd_sim.PipedriveState
    pd_url: str

    def hubspot(self) -> tuple[HubSpotWriter, WriterSettings]:
        settings = WriterSettings(
            "hs",
            WriterType.HUBSPOT,
            HubSpotOptions(self.hs_url, Secret(hs_sim.PRIVATE_TOKEN)),
            timeout=5.0,
            contacts=ContactSettings(recordings=RecordingsMode.UPLOAD, media_first_look=0.0),
        )
        return HubSpotWriter(settings, self.http), settings

    def salesforce(self) -> tuple[SalesforceWriter, WriterSettings]:
        oauth = OAuthClientSettings(
            sf_sim.CLIENT_ID, Secret(sf_sim.CLIENT_SECRET), Secret(sf_sim.REFRESH_TOKEN)
        )
        settings = WriterSettings(
            "sf",
            WriterType.SALESFORCE,
            SalesforceOptions(instance_url=self.sf_url, login_url=self.sf_url, oauth=oauth),
            timeout=5.0,
            contacts=ContactSettings(recordings=RecordingsMode.UPLOAD, media_first_look=0.0),
        )
        return SalesforceWriter(settings, self.http), settings

    def pipedrive(self) -> tuple[PipedriveWriter, WriterSettings]:
        settings = WriterSettings(
            "pd",
            WriterType.PIPEDRIVE,
            PipedriveOptions(base_url=self.pd_url, api_token=Secret(PD_TOKEN)),
            timeout=5.0,
            contacts=ContactSettings(recordings=RecordingsMode.UPLOAD, media_first_look=0.0),
        )
        return PipedriveWriter(settings, self.http), settings

    def runner(
        self, writer: Writer, settings: WriterSettings, claimer: str = "c-1"
    ) -> EnrichmentRunner:
        runner = EnrichmentRunner(
            Enrichments(self.store),
            lambda: writer,
            lambda: settings,
            self.media,
            account=ACCOUNT,
            claimer=claimer,
            idle_poll=0.05,
        )
        return runner

    async def played(self, kind: CallKind) -> CompletedCall:
        call = self.sim.place_call(kind)
        self.sim.fast_forward()
        await self.sim.wait_idle()
        return completed(self.sim, call)

    async def create(
        self,
        writer: Writer,
        settings: WriterSettings,
        runner: EnrichmentRunner | None,
        *calls: CompletedCall,
    ) -> dict[str, str]:
        return await dispatch_until_sent(self.store, writer, settings, runner, *calls)

    async def enrich(self, runner: EnrichmentRunner, count: int) -> list[dict[str, object]]:
        return await enrich_until_settled(self.store, runner, count)


async def dispatch_until_sent(
    store: Store,
    writer: Writer,
    settings: WriterSettings,
    runner: EnrichmentRunner | None,
    *calls: CompletedCall,
) -> dict[str, str]:
    """Commit ``calls`` to the outbox and let a dispatcher create them; key -> record id."""
    await store.commit_batch(ACCOUNT, list(calls), [settings.name], None)
    dispatcher = Dispatcher(
        store,
        writer,
        settings,
        claimer="d-1",
        account=ACCOUNT,
        idle_poll=0.05,
        on_created=runner.created if runner else None,
    )
    task = asyncio.create_task(dispatcher.run())
    try:

        async def sent() -> bool:
            rows = await store.outbox_rows(ACCOUNT, settings.name)
            return all(r.crm_record_id for r in rows)

        await until(sent)
    finally:
        await dispatcher.drain(1.0)  # closes the writer (Bullhorn's own session with it)
        task.cancel()
    rows = await store.outbox_rows(ACCOUNT, settings.name)
    return {r.call_key: str(r.crm_record_id) for r in rows}


async def enrich_until_settled(
    store: Store, runner: EnrichmentRunner, count: int
) -> list[dict[str, object]]:
    """Run ``runner`` until ``count`` updates of its writer are settled."""
    rows = Enrichments(store)
    task = asyncio.create_task(runner.run())
    try:

        async def settled() -> bool:
            found = await rows.rows(ACCOUNT, runner.name)
            done = [r for r in found if r["status"] in ("sent", "dead", "expired")]
            return len(done) >= count

        await until(settled)
    finally:
        task.cancel()
    return await rows.rows(ACCOUNT, runner.name)


@pytest.fixture
async def rig(store: Store) -> AsyncIterator[Rig]:
    profile = PlatformProfile.lenient().with_changes(call_log_delay_s=0.0)
    sim = await Simulator(SimulatorConfig(seed=11, profile=profile)).start()
    hs = hs_sim.HubSpotState()
    sf = sf_sim.SalesforceState()
    sf.add_user("integration@example.com")
    pd = pd_sim.PipedriveState()
    pd.add_user("admin@example.com", api_token=PD_TOKEN)
    try:
        async with (
            aiohttp.ClientSession() as http,
            serve(hs_sim.create_app(hs)) as hs_url,
            serve(sf_sim.create_app(sf)) as sf_url,
            serve(pd_sim.create_app(pd)) as pd_url,
        ):
            settings = RingCentralSettings(
                server=sim.base_url, client_id="c", client_secret=Secret("s"), jwt=Secret("j")
            )
            rest = RestClient(http, Authenticator(http, settings), sim.base_url)
            media = MediaClient(http, rest, max_bytes=20_000_000)
            yield Rig(sim, store, http, media, hs, hs_url, sf, sf_url, pd, pd_url)
    finally:
        await sim.stop()


def hs_file_bytes(state: hs_sim.HubSpotState, call_id: str) -> list[bytes]:
    ids = state.calls[call_id].properties.get("hs_attachment_ids", "")
    return [state.files[i].data for i in ids.split(";") if i]


async def test_hubspot_recording_and_voicemail_are_attached_once(rig: Rig) -> None:
    recorded = await rig.played(CallKind.RECORDED)
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    writer, settings = rig.hubspot()
    runner = rig.runner(writer, settings)
    ids = await rig.create(writer, settings, runner, recorded, voicemail)

    rows = await rig.enrich(runner, 2)
    assert {(r["kind"], r["status"]) for r in rows} == {
        ("recording", "sent"),
        ("voicemail", "sent"),
    }
    (rid,) = recorded.recording_ids
    seconds = int((recorded.total_ms + 500) // 1000)
    assert hs_file_bytes(rig.hs, ids[recorded.key]) == [sim_media.recording_bytes(rid, seconds)]
    body = plain(rig.hs.calls[ids[recorded.key]].properties["hs_call_body"])
    assert f"Recording: attached (recording-{rid}.wav)" in body

    vm_body = plain(rig.hs.calls[ids[voicemail.key]].properties["hs_call_body"])
    (message_id,) = [
        f.name.removeprefix("voicemail-").removesuffix(".wav")
        for f in rig.hs.files.values()
        if f.name.startswith("voicemail-")
    ]
    assert f"Voicemail transcription: {sim_media.transcription_text(message_id)}" in vm_body
    (vm_audio,) = hs_file_bytes(rig.hs, ids[voicemail.key])
    assert vm_audio[:4] == b"RIFF"
    assert len(rig.hs.files) == 2
    assert rig.hs.notes == {}


async def test_hubspot_note_a_person_edited_is_left_alone(rig: Rig) -> None:
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    writer, settings = rig.hubspot()
    runner = rig.runner(writer, settings)
    ids = await rig.create(writer, settings, runner, voicemail)
    record = rig.hs.calls[ids[voicemail.key]]
    record.properties["hs_call_body"] = "<p>Called back, all sorted. -- Ann</p>"

    rows = await rig.enrich(runner, 1)
    assert rows[0]["status"] == "sent"
    assert record.properties["hs_call_body"] == "<p>Called back, all sorted. -- Ann</p>"
    (note,) = rig.hs.notes.values()
    assert note.associations == [ids[voicemail.key]]
    assert "Voicemail transcription:" in plain(note.properties["hs_note_body"])
    assert len(hs_file_bytes(rig.hs, ids[voicemail.key])) == 1  # the audio is still attached


async def test_hubspot_update_survives_a_crash_between_create_and_update(rig: Rig) -> None:
    recorded = await rig.played(CallKind.RECORDED)
    writer, settings = rig.hubspot()
    runner = rig.runner(writer, settings)
    ids = await rig.create(writer, settings, runner, recorded)
    # The process that claimed the update sent it and was killed before recording the
    # answer: its claim lapses, the row comes back uncertain to the next process.
    rows = Enrichments(rig.store)
    (item,) = await rows.claim_due(ACCOUNT, "hs", 10, "killed", 0.2)
    killed = rig.runner(writer, settings, claimer="killed")
    gathered = await killed._gather(item, RecordingsMode.UPLOAD)
    assert isinstance(gathered, Enrichment)
    await writer.enrich(gathered, WriteContext(attempt=item.attempts))

    after = await rig.enrich(rig.runner(writer, settings, claimer="c-2"), 1)
    assert after[0]["status"] == "sent"
    assert after[0]["attempts"] == 2
    assert len(hs_file_bytes(rig.hs, ids[recorded.key])) == 1
    assert len(rig.hs.files) == 1
    body = plain(rig.hs.calls[ids[recorded.key]].properties["hs_call_body"])
    assert body.count("Recording: attached") == 1
    assert rig.hs.notes == {}


async def test_updates_lost_in_a_crash_before_queueing_are_swept_without_rewriting(
    rig: Rig,
) -> None:
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    writer, settings = rig.hubspot()
    ids = await rig.create(writer, settings, None, voicemail)  # killed before queueing
    runner = rig.runner(writer, settings)
    rows = await rig.enrich(runner, 1)
    assert rows[0]["status"] == "sent"
    assert rows[0]["written"] is None
    body = rig.hs.calls[ids[voicemail.key]].properties["hs_call_body"]
    assert "Voicemail" not in plain(body).split("sscl-key")[-1]
    (note,) = rig.hs.notes.values()
    assert "Voicemail transcription:" in plain(note.properties["hs_note_body"])


# -- Salesforce --------------------------------------------------------------------------------


def sf_files(state: sf_sim.SalesforceState, task_id: str) -> dict[str, bytes]:
    """PathOnClient -> bytes of the files linked to the Task."""
    return {
        str(v["PathOnClient"]): state.version_data[vid]
        for vid, v in state.versions.items()
        if v.get("FirstPublishLocationId") == task_id
    }


async def test_salesforce_recording_and_voicemail_are_files_of_the_task(rig: Rig) -> None:
    recorded = await rig.played(CallKind.RECORDED)
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    writer, settings = rig.salesforce()
    runner = rig.runner(writer, settings)
    ids = await rig.create(writer, settings, runner, recorded, voicemail)

    rows = await rig.enrich(runner, 2)
    assert {(r["kind"], r["status"]) for r in rows} == {
        ("recording", "sent"),
        ("voicemail", "sent"),
    }
    (rid,) = recorded.recording_ids
    seconds = int((recorded.total_ms + 500) // 1000)
    assert sf_files(rig.sf, ids[recorded.key]) == {
        f"recording-{rid}.wav": sim_media.recording_bytes(rid, seconds)
    }
    task = rig.sf.tasks[ids[recorded.key]]
    assert f"Recording: attached (recording-{rid}.wav)" in str(task["Description"])
    (vm_name,) = sf_files(rig.sf, ids[voicemail.key])
    message_id = vm_name.removeprefix("voicemail-").removesuffix(".wav")
    vm_task = rig.sf.tasks[ids[voicemail.key]]
    expected = f"Voicemail transcription: {sim_media.transcription_text(message_id)}"
    assert expected in str(vm_task["Description"])
    assert rig.sf.notes == {}


async def test_salesforce_description_a_person_edited_is_left_alone(rig: Rig) -> None:
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    writer, settings = rig.salesforce()
    runner = rig.runner(writer, settings)
    ids = await rig.create(writer, settings, runner, voicemail)
    task = rig.sf.tasks[ids[voicemail.key]]
    task["Description"] = "Spoke to her on the mobile, resolved."

    rows = await rig.enrich(runner, 1)
    assert rows[0]["status"] == "sent"
    assert task["Description"] == "Spoke to her on the mobile, resolved."
    (note_id,) = rig.sf.notes
    (link,) = rig.sf.links.values()
    assert link["ContentDocumentId"] == note_id
    assert link["LinkedEntityId"] == ids[voicemail.key]
    content = base64.b64decode(str(rig.sf.notes[note_id]["Content"])).decode()
    assert "Voicemail transcription:" in plain(content)


async def test_salesforce_update_survives_a_crash_between_create_and_update(rig: Rig) -> None:
    recorded = await rig.played(CallKind.RECORDED)
    writer, settings = rig.salesforce()
    runner = rig.runner(writer, settings)
    ids = await rig.create(writer, settings, runner, recorded)
    rows = Enrichments(rig.store)
    (item,) = await rows.claim_due(ACCOUNT, "sf", 10, "killed", 0.2)
    gathered = await rig.runner(writer, settings, claimer="killed")._gather(
        item, RecordingsMode.UPLOAD
    )
    assert isinstance(gathered, Enrichment)
    await writer.enrich(gathered, WriteContext(attempt=item.attempts))

    after = await rig.enrich(rig.runner(writer, settings, claimer="c-2"), 1)
    assert after[0]["status"] == "sent"
    assert len(sf_files(rig.sf, ids[recorded.key])) == 1
    assert str(rig.sf.tasks[ids[recorded.key]]["Description"]).count("Recording: attached") == 1


# -- Pipedrive ---------------------------------------------------------------------------------


async def test_pipedrive_recording_and_voicemail_on_the_call_log_and_a_note(rig: Rig) -> None:
    recorded = await rig.played(CallKind.RECORDED)
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    person = rig.pd.add_person("Caller", [str(voicemail.external_number)])
    writer, settings = rig.pipedrive()
    runner = rig.runner(writer, settings)
    ids = await rig.create(writer, settings, runner, recorded, voicemail)
    # Pipedrive has no call-log update: what anyone wrote in the log stays as it is.
    before = {k: dict(v) for k, v in rig.pd.call_logs.items()}

    rows = await rig.enrich(runner, 2)
    assert {(r["kind"], r["status"]) for r in rows} == {
        ("recording", "sent"),
        ("voicemail", "sent"),
    }
    assert {k: v["note"] for k, v in rig.pd.call_logs.items()} == {
        k: v["note"] for k, v in before.items()
    }
    (rid,) = recorded.recording_ids
    seconds = int((recorded.total_ms + 500) // 1000)
    assert rig.pd.recordings[ids[recorded.key]] == (
        f"recording-{rid}.wav",
        sim_media.recording_bytes(rid, seconds),
    )
    assert rig.pd.call_logs[ids[recorded.key]]["has_recording"] is True
    name, audio = rig.pd.recordings[ids[voicemail.key]]
    message_id = name.removeprefix("voicemail-").removesuffix(".wav")
    assert audio[:4] == b"RIFF"
    (note,) = rig.pd.notes.values()
    assert note["person_id"] == person
    expected = f"Voicemail transcription: {sim_media.transcription_text(message_id)}"
    assert expected in plain(str(note["content"]))


async def test_pipedrive_update_survives_a_crash_between_create_and_update(rig: Rig) -> None:
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    rig.pd.add_person("Caller", [str(voicemail.external_number)])
    writer, settings = rig.pipedrive()
    runner = rig.runner(writer, settings)
    ids = await rig.create(writer, settings, runner, voicemail)
    rows = Enrichments(rig.store)
    (item,) = await rows.claim_due(ACCOUNT, "pd", 10, "killed", 0.2)
    gathered = await rig.runner(writer, settings, claimer="killed")._gather(
        item, RecordingsMode.UPLOAD
    )
    assert isinstance(gathered, Enrichment)
    await writer.enrich(gathered, WriteContext(attempt=item.attempts))

    after = await rig.enrich(rig.runner(writer, settings, claimer="c-2"), 1)
    assert after[0]["status"] == "sent"
    assert list(rig.pd.recordings) == [ids[voicemail.key]]
    assert len(rig.pd.notes) == 1


# -- a note left beside a person's edit, once across a retry --------------------------------


async def test_beside_notes_are_left_once_across_an_uncertain_retry(rig: Rig) -> None:
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    for make in (rig.hubspot, rig.salesforce):
        writer, settings = make()
        ids = await rig.create(writer, settings, None, voicemail)
        record = ids[voicemail.key]
        e = Enrichment(Kind.VOICEMAIL, voicemail, record, None)  # what was written: unknown
        e.transcription = "call me back"
        first = await writer.enrich(e, WriteContext())
        again = await writer.enrich(e, WriteContext(attempt=2, uncertain=True))
        assert isinstance(first, Updated)
        assert isinstance(again, Updated)
    assert len(rig.hs.notes) == 1
    assert "sscl-update: " in plain(next(iter(rig.hs.notes.values())).properties["hs_note_body"])
    assert len(rig.sf.notes) == 1
    assert len(rig.sf.links) == 1
