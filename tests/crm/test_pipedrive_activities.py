"""Pipedrive calls as activities (issue 15 step 6, ``log_as = "activity"``): a done
activity of the call type, exactly once across an uncertain attempt, and updated later with
the recording or voicemail (file of the activity, note appended unless a person edited it)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CallResult
from sscl_daemon.config import (
    ConfigError,
    PipedriveLog,
    PipedriveOptions,
    Secret,
    WriterSettings,
    WriterType,
    parse_config,
)
from sscl_daemon.crm.base import AlreadyExisted, Created, WriteContext
from sscl_daemon.crm.enrich import Enrichment, Kind, Updated, plain
from sscl_daemon.crm.pipedrive_activities import PipedriveActivityWriter, build, duration
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.ringcentral.media import Audio
from sscl_daemon.simulator.crm import pipedrive as pd_sim
from sscl_daemon.simulator.crm.common import serve

TOKEN = "pd-token-777777"
NUMBER = "+14155550123"


@pytest.fixture
async def portal() -> AsyncIterator[tuple[pd_sim.PipedriveState, PipedriveActivityWriter, int]]:
    state = pd_sim.PipedriveState()
    state.add_user("admin@example.com", api_token=TOKEN)
    person = state.add_person("Bob", [NUMBER])
    async with serve(pd_sim.create_app(state)) as url, aiohttp.ClientSession() as session:
        options = PipedriveOptions(
            base_url=url, api_token=Secret(TOKEN), log_as=PipedriveLog.ACTIVITY
        )
        writer = build(WriterSettings("pd", WriterType.PIPEDRIVE, options), session)
        assert isinstance(writer, PipedriveActivityWriter)
        yield state, writer, person


def test_duration_is_whole_minutes_rounded_up() -> None:
    assert duration(make_call(talk_ms=0)) == "00:00"
    assert duration(make_call(talk_ms=10_000)) == "00:01"
    assert duration(make_call(talk_ms=3_601_000)) == "01:01"


def test_log_as_is_read_and_checked() -> None:
    rc = {"client_id": "c", "client_secret": "s", "jwt": "j"}
    table = {"type": "pipedrive", "api_token": "pd-1", "log_as": "activity", "activity_type": "c2"}
    settings = parse_config({"ringcentral": rc, "writers": {"pd": table}}, "t.toml")
    writer = settings.account().writers[0]
    assert writer.options.log_as is PipedriveLog.ACTIVITY
    assert writer.options.activity_type == "c2"
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"ringcentral": rc, "writers": {"pd": {**table, "log_as": "calendar"}}}, "t.toml"
        )
    assert [i.path for i in info.value.issues] == ["writers.pd.log_as"]


async def test_a_call_is_a_done_activity_logged_once(
    portal: tuple[pd_sim.PipedriveState, PipedriveActivityWriter, int],
) -> None:
    state, writer, person = portal
    created = await writer.write(make_call(), WriteContext())
    assert isinstance(created, Created)
    activity = state.activities[int(created.record_id)]
    assert activity["type"] == "call"
    assert activity["done"] is True
    assert activity["due_date"] == "2026-11-24"
    assert activity["due_time"] == "09:30"
    assert activity["duration"] == "00:03"
    assert activity["participants"] == [{"person_id": person, "primary": True}]
    assert "sscl-key: s-1001:62001" in str(activity["note"])
    again = await writer.write(make_call(), WriteContext(attempt=2, uncertain=True))
    assert again == AlreadyExisted(created.record_id)
    assert state.call_logs == {}
    assert len(state.activities) == 1


async def test_voicemail_update_attaches_the_audio_and_appends_the_transcription(
    portal: tuple[pd_sim.PipedriveState, PipedriveActivityWriter, int],
) -> None:
    state, writer, _ = portal
    call = make_call(result=CallResult.VOICEMAIL, talk_ms=0, answer_time=None)
    created = await writer.write(call, WriteContext())
    assert isinstance(created, Created)
    audio = Audio(io.BytesIO(b"RIFF-voicemail"), 14, "audio/wav", "voicemail-42.wav")
    e = Enrichment(Kind.VOICEMAIL, call, created.record_id, created.written, audio=[audio])
    e.transcription = "please call me back"
    result = await writer.enrich(e, WriteContext())
    assert isinstance(result, Updated)
    assert result.written is not None
    ((record, data),) = state.files.values()
    assert record["activity_id"] == int(created.record_id)
    assert data == b"RIFF-voicemail"
    note = plain(str(state.activities[int(created.record_id)]["note"]))
    assert note.endswith(
        "Voicemail: attached (voicemail-42.wav) Voicemail transcription: please call me back"
    )
    # A retry after a lost answer adds nothing twice.
    retry = await writer.enrich(e, WriteContext(attempt=2, uncertain=True))
    assert isinstance(retry, Updated)
    assert len(state.files) == 1
    assert plain(str(state.activities[int(created.record_id)]["note"])).count("please call") == 1


async def test_an_edited_activity_note_is_left_alone(
    portal: tuple[pd_sim.PipedriveState, PipedriveActivityWriter, int],
) -> None:
    state, writer, person = portal
    call = make_call(result=CallResult.VOICEMAIL, talk_ms=0, answer_time=None)
    created = await writer.write(call, WriteContext())
    assert isinstance(created, Created)
    state.activities[int(created.record_id)]["note"] = "Bob wants a quote"
    e = Enrichment(Kind.VOICEMAIL, call, created.record_id, created.written)
    e.transcription = "please call me back"
    assert isinstance(await writer.enrich(e, WriteContext()), Updated)
    assert state.activities[int(created.record_id)]["note"] == "Bob wants a quote"
    (note,) = state.notes.values()
    assert note["person_id"] == person
    assert "please call me back" in str(note["content"])


async def test_the_registry_builds_the_writer_log_as_asks_for(
    http_session: aiohttp.ClientSession,
) -> None:
    rc = {"client_id": "c", "client_secret": "s", "jwt": "j"}
    for log_as, cls in (("activity", PipedriveActivityWriter), ("call-log", None)):
        table = {"type": "pipedrive", "api_token": "pd-1", "log_as": log_as}
        settings = parse_config({"ringcentral": rc, "writers": {"pd": table}}, "t.toml")
        writer = build_writer(settings.account().writers[0], http_session)
        assert isinstance(writer, PipedriveActivityWriter) is (cls is not None)
