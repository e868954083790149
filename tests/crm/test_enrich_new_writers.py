"""A call log's lifecycle for the plug-in writers Zoho CRM, Dynamics 365, Clio and Bullhorn
(issue 15): created at call end, then the recording and the voicemail (audio and
transcription) added to the same record once RingCentral has them -- with the RingCentral
simulator, the CRM's stand-in and a real Postgres.

Per CRM (one :class:`Crm` adapter each, reading the stand-in's state): the bytes attached equal
the simulator's, the voicemail brings its audio and transcription, an update happens once
across a crash between create and update (the killed process's claim lapses, the row comes
back uncertain), and a note a person edited after the create is left as they wrote it.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import pytest
from tests.crm.conftest import make_call
from tests.crm.test_call_log_lifecycle import (
    completed,
    dispatch_until_sent,
    enrich_until_settled,
)

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import (
    ContactSettings,
    OAuthClientSettings,
    RecordingsMode,
    RingCentralSettings,
    Secret,
    WriterSettings,
)
from sscl_daemon.crm import bullhorn as bh
from sscl_daemon.crm import clio as cl
from sscl_daemon.crm import content
from sscl_daemon.crm import dynamics as dv
from sscl_daemon.crm import dynamics_enrich as dv_enrich
from sscl_daemon.crm import zoho as zc
from sscl_daemon.crm.base import WriteContext, Writer
from sscl_daemon.crm.contacts import Contact
from sscl_daemon.crm.enrich import Enrichment, Kind, Updated, plain
from sscl_daemon.enrichment import EnrichmentRunner
from sscl_daemon.ringcentral.auth import Authenticator
from sscl_daemon.ringcentral.media import Audio, MediaClient
from sscl_daemon.ringcentral.rest import RestClient
from sscl_daemon.simulator import media as sim_media
from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.crm import bullhorn as bh_sim
from sscl_daemon.simulator.crm import clio as clio_sim
from sscl_daemon.simulator.crm import dynamics as dv_sim
from sscl_daemon.simulator.crm import zoho as zoho_sim
from sscl_daemon.simulator.crm.common import serve
from sscl_daemon.simulator.profiles import PlatformProfile
from sscl_daemon.simulator.scenarios import CallKind
from sscl_daemon.store import Store
from sscl_daemon.store.enrichments import Enrichments

ACCOUNT = "acct"
CONTACTS = ContactSettings(
    recordings=RecordingsMode.UPLOAD,
    media_first_look=0.0,
    detect_client_logs=False,
    owner_by_email=False,
)


class Crm(Protocol):
    """One CRM's stand-in, seen the way the tests need it."""

    name: str

    def writer(self, http: aiohttp.ClientSession) -> Writer: ...

    def caller(self, call: CompletedCall) -> None:
        """The CRM knows the caller (as the CRM's users would have entered them)."""
        ...

    def note(self, record: str) -> str:
        """The record's note as stored."""
        ...

    def edit(self, record: str, text: str) -> None:
        """A person rewrites the record's note."""
        ...

    def files(self, record: str) -> dict[str, bytes]:
        """The files the record has (name -> bytes)."""
        ...

    def beside(self, record: str) -> list[str]:
        """The notes left beside the record."""
        ...


@dataclass
class Zoho:
    state: zoho_sim.ZohoState
    url: str
    name: str = "zoho"

    def writer(self, http: aiohttp.ClientSession) -> Writer:
        oauth = OAuthClientSettings(
            zoho_sim.CLIENT_ID, Secret(zoho_sim.CLIENT_SECRET), Secret(zoho_sim.REFRESH_TOKEN)
        )
        settings = WriterSettings(
            self.name,
            "zoho",
            zc.ZohoOptions(oauth, accounts_url=self.url),
            timeout=5.0,
            contacts=CONTACTS,
        )
        return zc.ZohoWriter(settings, http)

    def caller(self, call: CompletedCall) -> None:
        self.state.add_contact("Caller", str(call.external_number))

    def note(self, record: str) -> str:
        return str(self.state.calls[record]["Description"])

    def edit(self, record: str, text: str) -> None:
        self.state.calls[record]["Description"] = text

    def files(self, record: str) -> dict[str, bytes]:
        rows = self.state.attachments.get(record, [])
        return {str(r["File_Name"]): bytes(r["data"]) for r in rows}  # type: ignore[call-overload]

    def beside(self, record: str) -> list[str]:
        return [
            str(n["Note_Content"]) for n in self.state.notes.values() if n["Parent_Id"] == record
        ]


async def zoho_crm(stack: AsyncExitStack) -> Crm:
    state = zoho_sim.ZohoState(rate_limit=10**6)
    url = await stack.enter_async_context(serve(zoho_sim.create_app(state)))
    return Zoho(state, url)


@dataclass
class Clio:
    state: clio_sim.ClioState
    url: str
    name: str = "clio"

    def writer(self, http: aiohttp.ClientSession) -> Writer:
        oauth = OAuthClientSettings(
            clio_sim.CLIENT_ID, Secret(clio_sim.CLIENT_SECRET), Secret(clio_sim.REFRESH_TOKEN)
        )
        settings = WriterSettings(
            self.name, "clio", cl.ClioOptions(oauth, region_url=self.url), 5.0, contacts=CONTACTS
        )
        return cl.ClioWriter(settings, http)

    def caller(self, call: CompletedCall) -> None:
        # The caller is a client with one open matter: the communication and its documents
        # are the matter's.
        self.state.add_matter(self.state.add_contact("Caller", str(call.external_number)))

    def note(self, record: str) -> str:
        return str(self.state.communications[int(record)]["body"])

    def edit(self, record: str, text: str) -> None:
        self.state.communications[int(record)]["body"] = text

    def _matter(self, record: str) -> tuple[str, object]:
        matter = self.state.communications[int(record)]["matter"]
        assert isinstance(matter, dict)
        return ("Matter", matter["id"])

    def files(self, record: str) -> dict[str, bytes]:
        return {
            str(d["name"]): bytes(d["data"])  # type: ignore[call-overload]
            for d in self.state.documents.values()
            if d["parent"] == self._matter(record) and d["fully_uploaded"]
        }

    def beside(self, record: str) -> list[str]:
        parent = self._matter(record)
        return [str(n["detail"]) for n in self.state.notes.values() if n["parent"] == parent]


async def clio_crm(stack: AsyncExitStack) -> Crm:
    state = clio_sim.ClioState(rate_limit=10**6)
    url = await stack.enter_async_context(serve(clio_sim.create_app(state)))
    return Clio(state, url)


@dataclass
class Dynamics:
    state: dv_sim.DynamicsState
    url: str
    name: str = "dynamics"

    def writer(self, http: aiohttp.ClientSession) -> Writer:
        options = dv.DynamicsOptions(
            self.url, dv_sim.TENANT_ID, dv_sim.CLIENT_ID, Secret(dv_sim.CLIENT_SECRET), self.url
        )
        settings = WriterSettings(self.name, "dynamics", options, 5.0, contacts=CONTACTS)
        return dv.DynamicsWriter(settings, http)

    def caller(self, call: CompletedCall) -> None:
        self.state.add_contact("Caller", str(call.external_number))

    def note(self, record: str) -> str:
        return str(self.state.phonecalls[record]["description"])

    def edit(self, record: str, text: str) -> None:
        self.state.phonecalls[record]["description"] = text

    def _notes(self, record: str) -> list[dict[str, object]]:
        return [a for a in self.state.annotations.values() if a["_objectid_value"] == record]

    def files(self, record: str) -> dict[str, bytes]:
        return {
            str(a["filename"]): base64.b64decode(str(a["documentbody"]))
            for a in self._notes(record)
            if a["isdocument"]
        }

    def beside(self, record: str) -> list[str]:
        return [str(a["notetext"]) for a in self._notes(record) if not a["isdocument"]]


async def dynamics_crm(stack: AsyncExitStack) -> Crm:
    state = dv_sim.DynamicsState(rate_limit=10**6)
    url = await stack.enter_async_context(serve(dv_sim.create_app(state)))
    return Dynamics(state, url)


@dataclass
class Bullhorn:
    state: bh_sim.BullhornState
    url: str
    name: str = "bullhorn"
    entity: str = "ClientContact"

    def writer(self, http: aiohttp.ClientSession) -> Writer:
        # Bullhorn's refresh tokens are single use: a writer made after another one signed
        # in starts from the current one (the daemon keeps it in its vault).
        refresh = self.state.current_refresh_token() or bh_sim.REFRESH_TOKEN
        oauth = OAuthClientSettings(bh_sim.CLIENT_ID, Secret(bh_sim.CLIENT_SECRET), Secret(refresh))
        options = bh.BullhornOptions(oauth, auth_url=self.url, login_url=self.url)
        settings = WriterSettings(self.name, "bullhorn", options, 5.0, contacts=CONTACTS)
        return bh.BullhornWriter(settings, http)

    def caller(self, call: CompletedCall) -> None:
        self.state.add_person(self.entity, "Caller", str(call.external_number))

    def note(self, record: str) -> str:
        return str(self.state.notes[int(record)]["comments"])

    def edit(self, record: str, text: str) -> None:
        self.state.notes[int(record)]["comments"] = text

    def _person(self, record: str) -> object:
        ref = self.state.notes[int(record)]["personReference"]
        assert isinstance(ref, dict)
        return ref["id"]

    def files(self, record: str) -> dict[str, bytes]:
        person = (self.entity, self._person(record))
        return {
            str(f["name"]): bytes(f["data"])  # type: ignore[call-overload]
            for f in self.state.files.values()
            if f["entity"] == person
        }

    def beside(self, record: str) -> list[str]:
        person = self._person(record)
        return [
            str(n["comments"])
            for nid, n in self.state.notes.items()
            if nid != int(record)
            and isinstance(ref := n["personReference"], dict)
            and ref["id"] == person
        ]


async def bullhorn_crm(stack: AsyncExitStack) -> Crm:
    state = bh_sim.BullhornState(rate_limit=10**6)
    url = await stack.enter_async_context(serve(bh_sim.create_app(state)))
    return Bullhorn(state, url)


MAKERS: dict[str, Callable[[AsyncExitStack], Awaitable[Crm]]] = {
    "bullhorn": bullhorn_crm,
    "clio": clio_crm,
    "dynamics": dynamics_crm,
    "zoho": zoho_crm,
}


@dataclass
class Rig:
    sim: Simulator
    store: Store
    http: aiohttp.ClientSession
    media: MediaClient
    crm: Crm
    writer: Writer

    @property
    def settings(self) -> WriterSettings:
        return self.writer._settings  # type: ignore[attr-defined, no-any-return]

    def runner(self, claimer: str = "c-1") -> EnrichmentRunner:
        return EnrichmentRunner(
            Enrichments(self.store),
            lambda: self.writer,
            lambda: self.settings,
            self.media,
            account=ACCOUNT,
            claimer=claimer,
            idle_poll=0.05,
        )

    async def played(self, kind: CallKind) -> CompletedCall:
        call = self.sim.place_call(kind)
        self.sim.fast_forward()
        await self.sim.wait_idle()
        made = completed(self.sim, call)
        self.crm.caller(made)
        return made

    async def create(
        self, runner: EnrichmentRunner | None, *calls: CompletedCall
    ) -> dict[str, str]:
        """Commit ``calls`` and let a dispatcher create them; key -> record id."""
        made = await dispatch_until_sent(self.store, self.writer, self.settings, runner, *calls)
        # The dispatcher's drain closed the writer (Bullhorn's own session with it).
        self.writer = self.crm.writer(self.http)
        return made

    async def enrich(self, runner: EnrichmentRunner, count: int) -> list[dict[str, object]]:
        return await enrich_until_settled(self.store, runner, count)


@pytest.fixture(params=sorted(MAKERS))
async def rig(request: pytest.FixtureRequest, store: Store) -> AsyncIterator[Rig]:
    profile = PlatformProfile.lenient().with_changes(call_log_delay_s=0.0)
    sim = await Simulator(SimulatorConfig(seed=11, profile=profile)).start()
    try:
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            crm = await MAKERS[request.param](stack)
            settings = RingCentralSettings(
                server=sim.base_url, client_id="c", client_secret=Secret("s"), jwt=Secret("j")
            )
            rest = RestClient(http, Authenticator(http, settings), sim.base_url)
            media = MediaClient(http, rest, max_bytes=20_000_000)
            rig = Rig(sim, store, http, media, crm, crm.writer(http))
            yield rig
            await rig.writer.close()
    finally:
        await sim.stop()


async def test_recording_and_voicemail_are_attached_with_the_transcription(rig: Rig) -> None:
    recorded = await rig.played(CallKind.RECORDED)
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    runner = rig.runner()
    ids = await rig.create(runner, recorded, voicemail)

    rows = await rig.enrich(runner, 2)
    assert {(r["kind"], r["status"]) for r in rows} == {
        ("recording", "sent"),
        ("voicemail", "sent"),
    }
    (rid,) = recorded.recording_ids
    seconds = int((recorded.total_ms + 500) // 1000)
    assert rig.crm.files(ids[recorded.key]) == {
        f"recording-{rid}.wav": sim_media.recording_bytes(rid, seconds)
    }
    assert f"Recording: attached (recording-{rid}.wav)" in plain(rig.crm.note(ids[recorded.key]))
    ((vm_name, vm_audio),) = rig.crm.files(ids[voicemail.key]).items()
    assert vm_audio[:4] == b"RIFF"
    message_id = vm_name.removeprefix("voicemail-").removesuffix(".wav")
    expected = f"Voicemail transcription: {sim_media.transcription_text(message_id)}"
    assert expected in plain(rig.crm.note(ids[voicemail.key]))
    assert rig.crm.beside(ids[recorded.key]) == rig.crm.beside(ids[voicemail.key]) == []


async def test_a_note_a_person_edited_is_left_alone(rig: Rig) -> None:
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    runner = rig.runner()
    ids = await rig.create(runner, voicemail)
    record = ids[voicemail.key]
    rig.crm.edit(record, "Called back, all sorted. -- Ann")

    rows = await rig.enrich(runner, 1)
    assert rows[0]["status"] == "sent"
    assert plain(rig.crm.note(record)) == "Called back, all sorted. -- Ann"
    (note,) = rig.crm.beside(record)
    assert "Voicemail transcription:" in plain(note)
    assert f"sscl-update: {voicemail.key}#voicemail" in plain(note)
    assert len(rig.crm.files(record)) == 1  # the audio is attached all the same


async def test_an_update_happens_once_across_a_crash_between_create_and_update(
    rig: Rig,
) -> None:
    recorded = await rig.played(CallKind.RECORDED)
    runner = rig.runner()
    ids = await rig.create(runner, recorded)
    # The process that claimed the update sent it and was killed before recording the
    # answer: its claim lapses, the row comes back uncertain to the next process.
    (item,) = await Enrichments(rig.store).claim_due(ACCOUNT, rig.settings.name, 10, "killed", 0.2)
    gathered = await rig.runner("killed")._gather(item, RecordingsMode.UPLOAD)
    assert isinstance(gathered, Enrichment)
    assert isinstance(await rig.writer.enrich(gathered, WriteContext()), Updated)  # type: ignore[attr-defined]

    after = await rig.enrich(rig.runner("c-2"), 1)
    assert (after[0]["status"], after[0]["attempts"]) == ("sent", 2)
    assert len(rig.crm.files(ids[recorded.key])) == 1
    assert plain(rig.crm.note(ids[recorded.key])).count("Recording: attached") == 1
    assert rig.crm.beside(ids[recorded.key]) == []


async def test_a_note_beside_is_left_once_across_an_uncertain_retry(rig: Rig) -> None:
    voicemail = await rig.played(CallKind.INBOUND_VOICEMAIL)
    ids = await rig.create(None, voicemail)
    record = ids[voicemail.key]
    e = Enrichment(Kind.VOICEMAIL, voicemail, record, None)  # what was written: unknown
    e.transcription = "call me back"
    enrich = rig.writer.enrich  # type: ignore[attr-defined]
    assert isinstance(await enrich(e, WriteContext()), Updated)
    assert isinstance(await enrich(e, WriteContext(attempt=2, uncertain=True)), Updated)
    (note,) = rig.crm.beside(record)
    assert "call me back" in plain(note)
    assert "call me back" not in plain(rig.crm.note(record))


# -- a file the CRM cannot take is linked instead ------------------------------------------------


async def linked_instead(rig: Rig, reason: str) -> str:
    """A recorded call's update when the CRM takes no file: the note links the recording and
    says why it is not attached; answers the record id."""
    recorded = await rig.played(CallKind.RECORDED)
    runner = rig.runner()
    ids = await rig.create(runner, recorded)
    rows = await rig.enrich(runner, 1)
    assert rows[0]["status"] == "sent"
    record = ids[recorded.key]
    assert rig.crm.files(record) == {}
    note = plain(rig.crm.note(record))
    (rid,) = recorded.recording_ids
    assert f"recording-{rid}.wav not attached: {reason}" in note
    assert "Recording: https://" in note  # a link a RingCentral user can open
    return record


@pytest.mark.parametrize("rig", ["dynamics"], indirect=True)
async def test_dynamics_links_a_file_over_the_organisations_upload_limit(rig: Rig) -> None:
    assert isinstance(rig.crm, Dynamics)
    rig.crm.state.maxuploadfilesize = 1_000  # an administrator's (very) low limit
    record = await linked_instead(rig, "larger than the organisation's upload limit")
    assert rig.crm.state.phonecalls[record]["statecode"] == 1  # completed again


@pytest.mark.parametrize("rig", ["bullhorn"], indirect=True)
async def test_bullhorn_links_a_leads_audio_in_the_note(rig: Rig) -> None:
    assert isinstance(rig.crm, Bullhorn)
    rig.crm.entity = "Lead"
    await linked_instead(rig, "Bullhorn keeps no files for a Lead")
    assert rig.crm.state.files == {}


def test_dynamics_streamed_note_is_the_json_of_the_whole_file() -> None:
    data = random.Random(7).randbytes(dv_enrich.SLICE * 2 + 5)  # three slices, a short last
    audio = Audio(io.BytesIO(data), len(data), "audio/wav", "a.wav")
    streamed = dv_enrich.StreamedNote({"filename": "a.wav", "subject": 'say "hi"'}, audio)

    async def body() -> bytes:
        return b"".join([chunk async for chunk in streamed.chunks()])

    raw = asyncio.run(body())
    assert len(raw) == streamed.length
    assert json.loads(raw) == {
        "filename": "a.wav",
        "subject": 'say "hi"',
        "documentbody": base64.b64encode(data).decode(),
    }


# -- the create's note and recordings --------------------------------------------------------------


@pytest.mark.parametrize("mode", list(RecordingsMode))
def test_the_creates_note_follows_recordings(mode: RecordingsMode) -> None:
    call = make_call(recording_ids=("rec-1",))
    person = Contact("7", "Ann", "contact")
    oauth = OAuthClientSettings("c", Secret("s"), Secret("r"))
    notes = [
        str(zc.call_record(call, person, None, recordings=mode)["Description"]),
        str(dv.phonecall(call, person, None, recordings=mode)["description"]),
        str(cl.communication(call, person, 1, None, recordings=mode)["body"]),
        str(bh.note(call, person, None, bh.BullhornOptions(oauth), recordings=mode)["comments"]),
    ]
    reader = content.player_link(content.recording_urls(call)[0])
    for note in notes:
        # A link a RingCentral user can open; upload attaches the file later, off: neither.
        assert (html.unescape(reader) in html.unescape(note)) is (mode is RecordingsMode.LINK)
        assert content.RECORDING_BASE not in html.unescape(note)  # never the raw, token-only URL
