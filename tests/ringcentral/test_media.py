"""Fetching recordings and voicemail from RingCentral (ringcentral/media.py) against the
simulator: streamed into a spooled file, size-limited, shared rate groups, voicemail matched
to its call with its transcription."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import pytest

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction
from sscl_daemon.config import RingCentralSettings, Secret
from sscl_daemon.ringcentral import media
from sscl_daemon.ringcentral.auth import Authenticator
from sscl_daemon.ringcentral.ratelimit import RateGroup
from sscl_daemon.ringcentral.rest import RestClient
from sscl_daemon.simulator import media as sim_media
from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.profiles import PlatformProfile
from sscl_daemon.simulator.scenarios import CallKind, SimCall


@dataclass
class Rig:
    sim: Simulator
    client: media.MediaClient
    rest: RestClient


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    profile = PlatformProfile.lenient().with_changes(call_log_delay_s=0.0)
    sim = await Simulator(SimulatorConfig(seed=7, profile=profile)).start()
    try:
        async with aiohttp.ClientSession() as http:
            settings = RingCentralSettings(
                server=sim.base_url, client_id="c", client_secret=Secret("s"), jwt=Secret("j")
            )
            auth = Authenticator(http, settings)
            rest = RestClient(http, auth, sim.base_url)
            yield Rig(sim, media.MediaClient(http, rest, max_bytes=10 * 1024 * 1024), rest)
    finally:
        await sim.stop()


async def _played(rig: Rig, kind: CallKind) -> SimCall:
    call = rig.sim.place_call(kind)
    rig.sim.fast_forward()
    await rig.sim.wait_idle()
    return call


async def test_recording_streams_into_a_spooled_file(rig: Rig) -> None:
    call = await _played(rig, CallKind.RECORDED)
    record = next(r for r in call.call_log_records if "recording" in r)
    recording = record["recording"]
    assert isinstance(recording, dict)
    rid = str(recording["id"])
    audio = await rig.client.recording(rid)
    assert isinstance(audio, media.Audio)
    try:
        expected = sim_media.recording_bytes(rid, int(str(record["duration"])) or 1)
        assert audio.size == len(expected)
        assert audio.file.read() == expected
        assert audio.content_type == "audio/wav"
        assert audio.filename == f"recording-{rid}.wav"
    finally:
        audio.close()
    assert rig.rest.limiter.waited[RateGroup.HEAVY] == 0.0
    assert rig.client.fetched_bytes == len(expected)


async def test_missing_recording_is_not_ready_and_big_ones_are_refused(rig: Rig) -> None:
    assert isinstance(await rig.client.recording("1234567890"), media.NotReady)
    call = await _played(rig, CallKind.RECORDED)
    record = next(r for r in call.call_log_records if "recording" in r)
    recording = record["recording"]
    assert isinstance(recording, dict)
    rig.client.max_bytes = 1000
    too_big = await rig.client.recording(str(recording["id"]))
    assert isinstance(too_big, media.TooLarge)
    assert too_big.limit == 1000
    assert too_big.size > 1000


def _completed(record: dict[str, object], ext: str) -> CompletedCall:
    start = datetime.fromisoformat(str(record["startTime"]).replace("Z", "+00:00"))
    caller = record["from"]
    assert isinstance(caller, dict)
    return CompletedCall(
        key=f"{record['telephonySessionId']}:{ext}",
        telephony_session_id=str(record["telephonySessionId"]),
        session_id=str(record["sessionId"]),
        account_id="~",
        extension_id=ext,
        extension_number=None,
        user_name=None,
        user_email=None,
        direction=Direction.INBOUND,
        external_number=str(caller.get("phoneNumber")),
        external_name=None,
        internal_number=None,
        result=CallResult.VOICEMAIL,
        start_time=start,
        answer_time=None,
        end_time=start + timedelta(seconds=int(str(record["duration"]))),
        ring_ms=0,
        queue_ms=0,
        talk_ms=0,
        hold_ms=0,
        total_ms=0,
    )


async def test_voicemail_of_the_call_with_transcription_and_audio(rig: Rig) -> None:
    call = await _played(rig, CallKind.INBOUND_VOICEMAIL)
    record = next(r for r in call.call_log_records if "message" in r)
    message = record["message"]
    assert isinstance(message, dict)
    ext = str(message["uri"]).split("/extension/")[1].split("/")[0]
    completed = _completed(record, ext)
    found = await rig.client.voicemail(completed)
    assert isinstance(found, media.Voicemail)
    assert found.message_id == str(message["id"])
    assert found.transcription == sim_media.transcription_text(found.message_id)
    audio = await rig.client.attachment(found)
    assert isinstance(audio, media.Audio)
    try:
        assert audio.file.read() == sim_media.recording_bytes(found.message_id, found.seconds)
    finally:
        audio.close()
    # Another caller's call at the same time has no voicemail of its own.
    other = _completed({**record, "from": {"phoneNumber": "+15550000000"}}, ext)
    assert isinstance(await rig.client.voicemail(other), media.NotReady)
