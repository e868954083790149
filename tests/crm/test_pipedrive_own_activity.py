"""A Pipedrive retry that finds the daemon's own key in a call log's activity (found by H12):
Pipedrive keeps an activity per call log, and ``GET /v1/callLogs`` lists only the logs
assigned to the token's user, so a log made for another owner escapes the retry's call-log
scan and turns up in the person's activities instead. That match must count as our own log
(``AlreadyExisted.ours``, named so its updates go to that activity), not a client's
``activity:<id>`` (never updated: the call's recording and voicemail would be lost).
Against the Pipedrive stand-in.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import pytest
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CallResult, CompletedCall
from sscl_daemon.config import ContactSettings, PipedriveOptions, Secret, WriterSettings, WriterType
from sscl_daemon.crm.base import AlreadyExisted, Created, RetryLater, WriteContext
from sscl_daemon.crm.enrich import Enrichment, Kind, Updated, plain
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.crm.pipedrive_enrich import LOG_ACTIVITY
from sscl_daemon.ringcentral.media import Audio
from sscl_daemon.simulator.crm import pipedrive as standin
from sscl_daemon.simulator.crm.common import serve

TOKEN = "pd-api-token-own-activity"
NUMBER = "+14155550123"
CALL = make_call(result=CallResult.VOICEMAIL, talk_ms=0, answer_time=None)


@dataclass
class Company:
    state: standin.PipedriveState
    writer: PipedriveWriter
    alice: int
    person: int


@pytest.fixture
async def company(http_session: aiohttp.ClientSession) -> AsyncIterator[Company]:
    """The token is the admin's; the caller's person exists; calls of extension 101 are
    Alice's (``contacts.owners``), so their logs are assigned to her."""
    state = standin.PipedriveState(clock=lambda: datetime(2026, 11, 24, 9, 33, tzinfo=UTC))
    state.add_user("admin@example.com", "Admin", api_token=TOKEN)
    alice = state.add_user("alice@example.com", "Alice")
    person = state.add_person("Bob", [NUMBER])
    async with serve(standin.create_app(state)) as base:
        options = PipedriveOptions(base_url=base, api_token=Secret(TOKEN))
        contacts = ContactSettings(owners={"101": str(alice)})
        settings = WriterSettings("pd", WriterType.PIPEDRIVE, options, contacts=contacts)
        yield Company(state, PipedriveWriter(settings, http_session), alice, person)


async def test_a_retry_finding_our_key_in_the_logs_activity_keeps_the_updates(
    company: Company,
) -> None:
    state, writer = company.state, company.writer
    created = await writer.write(CALL, WriteContext())
    assert isinstance(created, Created)
    call_log = state.call_logs[created.record_id]
    assert call_log["user_id"] == company.alice
    activity = int(str(call_log["activity_id"]))

    again = await writer.write(CALL, WriteContext(attempt=2, uncertain=True))

    # Our own log, not a client's: no duplicate, and its updates are ours to make.
    assert isinstance(again, AlreadyExisted)
    assert again.ours
    assert again.record_id == f"{LOG_ACTIVITY}{activity}"
    assert len(state.call_logs) == 1
    # The voicemail update as the enrichment runner hands it (no known note): the audio as a
    # file of the call log's activity, the transcription in a note on the person -- once,
    # across a retry after a lost answer.
    audio = Audio(io.BytesIO(b"RIFF-voicemail"), 14, "audio/wav", "voicemail-7.wav")
    update = Enrichment(Kind.VOICEMAIL, CALL, again.record_id, None, audio=(audio,))
    update.transcription = "please call me back"
    for ctx in (WriteContext(), WriteContext(attempt=2, uncertain=True)):
        result = await writer.enrich(update, ctx)
        assert isinstance(result, Updated), result
    ((file_record, data),) = state.files.values()
    assert (file_record["activity_id"], file_record["name"], data) == (
        activity,
        "voicemail-7.wav",
        b"RIFF-voicemail",
    )
    (note,) = state.notes.values()
    assert note["person_id"] == company.person
    assert "Voicemail transcription: please call me back" in plain(str(note["content"]))
    assert state.call_logs[created.record_id]["note"] == created.written  # the log untouched


async def test_our_key_in_an_activity_names_the_call_log_when_the_users_logs_show_it(
    company: Company, http_session: aiohttp.ClientSession
) -> None:
    """A first attempt (no scan yet) meeting its own earlier log among the activities gets
    the call log's id when the token user's logs show it (a log assigned to that user: no
    owner mapped for extension 102), so the recording plays there."""
    writer = writer_of(company, http_session, owner_by_email=False)
    call = make_call(extension_number="102")
    created = await writer.write(call, WriteContext())
    assert isinstance(created, Created)

    again = await writer.write(call, WriteContext())

    assert again == AlreadyExisted(created.record_id)
    assert isinstance(again, AlreadyExisted)
    assert again.ours
    assert len(company.state.call_logs) == 1


STRANGER = "+14155550999"  # a number no person has


def writer_of(
    company: Company, http_session: aiohttp.ClientSession, **contacts: object
) -> PipedriveWriter:
    """Another writer on the company (Alice owns extension 101), with ``contacts``."""
    base = company.writer.api.base
    options = PipedriveOptions(base_url=base, api_token=Secret(TOKEN))
    settings = ContactSettings(owners={"101": str(company.alice)}, **contacts)  # type: ignore[arg-type]
    return PipedriveWriter(
        WriterSettings("pd", WriterType.PIPEDRIVE, options, contacts=settings), http_session
    )


async def lost_create(company: Company, writer: PipedriveWriter, call: CompletedCall) -> str:
    """The create of ``call`` stored, then its connection reset before the answer: the
    dispatcher's uncertain attempt. The stored log's activity id."""
    company.state.faults.drop(path="/callLogs", method="POST")
    lost = await writer.write(call, WriteContext())
    assert isinstance(lost, RetryLater)
    assert lost.uncertain
    (stored,) = company.state.call_logs.values()
    assert stored["user_id"] == company.alice  # another owner than the token's user
    return str(stored["activity_id"])


@pytest.mark.parametrize(
    ("number", "detect"),
    [(STRANGER, True), (NUMBER, False), (NUMBER, True)],
    ids=["no-person", "person-no-client-check", "person"],
)
async def test_a_retry_after_a_lost_create_for_another_owner_makes_no_second_log(
    company: Company, http_session: aiohttp.ClientSession, number: str, detect: bool
) -> None:
    """Exactly once though ``GET /v1/callLogs`` does not show the log (Alice's, the token is
    the admin's): the retry finds our key in the activities updated since an hour before the
    call, whether a person matched or not, whether the client-log check runs or not."""
    writer = writer_of(company, http_session, detect_client_logs=detect)
    call = make_call(external_number=number, telephony_session_id=f"s-{number[-4:]}-{detect}")
    activity = await lost_create(company, writer, call)
    before = len(company.state.requests)

    again = await writer.write(call, WriteContext(attempt=2, uncertain=True))

    assert isinstance(again, AlreadyExisted)
    assert again.ours
    assert again.record_id == f"{LOG_ACTIVITY}{activity}"
    assert len(company.state.call_logs) == 1
    assert company.state.count("POST", "/callLogs") == 1
    # Bounded: one page of the hour's activities, one of the token user's call logs.
    retry = [(r.method, r.path) for r in company.state.requests[before:]]
    assert retry == [("GET", "/api/v2/activities"), ("GET", "/api/v1/callLogs")]


async def test_a_retry_names_the_call_log_when_the_token_users_logs_show_it(
    company: Company, http_session: aiohttp.ClientSession
) -> None:
    """A log assigned to the token's user (no owner mapped): found by its activity, then
    named by its own id from the token user's call logs, where its recording can go."""
    writer = writer_of(company, http_session, owner_by_email=False)
    call = make_call(external_number=STRANGER, extension_number="102")
    company.state.faults.drop(path="/callLogs", method="POST")
    assert isinstance(await writer.write(call, WriteContext()), RetryLater)
    (log_id,) = company.state.call_logs

    again = await writer.write(call, WriteContext(attempt=2, uncertain=True))

    assert again == AlreadyExisted(log_id)
    assert isinstance(again, AlreadyExisted)
    assert again.ours
    assert len(company.state.call_logs) == 1


async def test_a_batch_retry_finds_its_log_in_the_batchs_one_activity_read(
    company: Company, http_session: aiohttp.ClientSession
) -> None:
    """In a batch the retry's activity check is the batch's read of recent activities (no
    read of its own), even with the client-log check off."""
    writer = writer_of(company, http_session, detect_client_logs=False)
    retried = make_call(external_number=STRANGER, telephony_session_id="s-retried")
    activity = await lost_create(company, writer, retried)
    fresh = make_call(external_number=STRANGER, telephony_session_id="s-fresh")
    before = company.state.count("GET", "/api/v2/activities")

    results = await writer.write_batch(
        [(retried, WriteContext(attempt=2, uncertain=True)), (fresh, WriteContext())]
    )

    assert results[0] == AlreadyExisted(f"{LOG_ACTIVITY}{activity}")
    assert isinstance(results[1], Created)
    assert len(company.state.call_logs) == 2
    assert company.state.count("GET", "/api/v2/activities") - before == 1
