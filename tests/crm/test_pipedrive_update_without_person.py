"""A Pipedrive call log without a person (no contact matched, ``no_contact`` not "create")
still gets its voicemail transcription and links (issue 15 follow-up; they were dropped):
call logs cannot be updated and a note needs a person, deal, lead or organization, so the
text goes into the note of the call log's own activity (Pipedrive keeps one per call log) --
unless a person edited that note, when the update is parked as dead with the reason and a
warning instead of being dropped silently. The same for an activity (``log_as = "activity"``)
without participant whose note a person edited. Against the Pipedrive stand-in.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from structlog.testing import capture_logs
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CallResult
from sscl_daemon.config import PipedriveLog, PipedriveOptions, Secret, WriterSettings, WriterType
from sscl_daemon.crm.base import Created, PermanentFailure, WriteContext
from sscl_daemon.crm.enrich import Enrichment, Kind, Updated, plain
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.crm.pipedrive_activities import build
from sscl_daemon.ringcentral.media import Audio
from sscl_daemon.simulator.crm import pipedrive as pd_sim
from sscl_daemon.simulator.crm.common import serve

TOKEN = "pd-token-888888"
LINK = "https://ringcentral.github.io/ringcentral-media-reader/index.html?media=x"
Portal = tuple[pd_sim.PipedriveState, str, aiohttp.ClientSession]


@pytest.fixture
async def portal() -> AsyncIterator[Portal]:
    """A company where nobody has the caller's number."""
    state = pd_sim.PipedriveState()
    state.add_user("admin@example.com", api_token=TOKEN)
    async with serve(pd_sim.create_app(state)) as url, aiohttp.ClientSession() as session:
        yield state, url, session


async def logged(portal: Portal, log_as: PipedriveLog) -> tuple[PipedriveWriter, Created]:
    """A writer of ``log_as`` and its log of :data:`VOICEMAIL_CALL` (no person matches)."""
    _, url, session = portal
    options = PipedriveOptions(base_url=url, api_token=Secret(TOKEN), log_as=log_as)
    writer = build(WriterSettings("pd", WriterType.PIPEDRIVE, options), session)
    assert isinstance(writer, PipedriveWriter)
    created = await writer.write(VOICEMAIL_CALL, WriteContext())
    assert isinstance(created, Created)
    return writer, created


VOICEMAIL_CALL = make_call(result=CallResult.VOICEMAIL, talk_ms=0, answer_time=None)


def voicemail(record: str, written: str | None, *audio: Audio) -> Enrichment:
    """The voicemail update of :data:`VOICEMAIL_CALL`'s record, with its transcription."""
    e = Enrichment(Kind.VOICEMAIL, VOICEMAIL_CALL, record, written, audio=audio)
    e.transcription = "please call me back"
    return e


async def test_the_text_goes_into_the_call_logs_activity_once(
    portal: Portal,
) -> None:
    state = portal[0]
    writer, created = await logged(portal, PipedriveLog.CALL_LOG)
    log = state.call_logs[created.record_id]
    assert log["person_id"] is None
    audio = Audio(io.BytesIO(b"RIFF-voicemail"), 14, "audio/wav", "voicemail-42.wav")

    result = await writer.enrich(
        voicemail(created.record_id, created.written, audio), WriteContext()
    )

    assert isinstance(result, Updated)
    assert state.recordings[created.record_id] == ("voicemail-42.wav", b"RIFF-voicemail")
    activity = state.activities[int(str(log["activity_id"]))]
    assert plain(str(activity["note"])).endswith("Voicemail transcription: please call me back")
    assert result.written == activity["note"]
    assert state.call_logs[created.record_id]["note"] == created.written  # the log untouched
    assert state.notes == {}
    # A retry after a lost answer adds nothing twice; a later update of the same call
    # (given what this one wrote) appends after it.
    again = await writer.enrich(
        voicemail(created.record_id, created.written), WriteContext(attempt=2, uncertain=True)
    )
    assert isinstance(again, Updated)
    assert plain(str(activity["note"])).count("please call me back") == 1
    later = Enrichment(Kind.RECORDING, VOICEMAIL_CALL, created.record_id, result.written)
    later.links = [LINK]
    assert isinstance(await writer.enrich(later, WriteContext()), Updated)
    assert plain(str(activity["note"])).endswith(f"Recording: {LINK}")
    assert plain(str(activity["note"])).count("please call me back") == 1


async def test_an_edited_activity_note_parks_the_update_with_its_reason(
    portal: Portal,
) -> None:
    state = portal[0]
    writer, created = await logged(portal, PipedriveLog.CALL_LOG)
    activity = state.activities[int(str(state.call_logs[created.record_id]["activity_id"]))]
    activity["note"] = "Unknown caller, asked for Bob"

    with capture_logs() as logs:
        result = await writer.enrich(voicemail(created.record_id, created.written), WriteContext())

    assert isinstance(result, PermanentFailure)
    assert "a person edited the note of its activity" in result.reason
    assert "no person, deal, lead or organization" in result.reason
    assert activity["note"] == "Unknown caller, asked for Bob"
    assert state.notes == {}
    (warning,) = [e for e in logs if e["event"] == "pipedrive.update.unplaced"]
    assert warning["log_level"] == "warning"
    assert warning["reason"] == result.reason


async def test_an_edited_activity_without_participant_is_not_passed_off_as_updated(
    portal: Portal,
) -> None:
    state = portal[0]
    writer, created = await logged(portal, PipedriveLog.ACTIVITY)
    state.activities[int(created.record_id)]["note"] = "Unknown caller"

    result = await writer.enrich(voicemail(created.record_id, created.written), WriteContext())

    assert isinstance(result, PermanentFailure)
    assert "the activity has no person, deal, lead or organization" in result.reason
    assert state.activities[int(created.record_id)]["note"] == "Unknown caller"
    assert state.notes == {}
