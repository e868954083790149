"""The simulator serves call recordings and voicemail as RingCentral's API documents them:
recording metadata and content, the message store's voicemail with audio and transcription,
in their rate groups, only once the call's record is published."""

from __future__ import annotations

import aiohttp
from tests.simulator.conftest import Platform

from sscl_daemon.simulator import media
from sscl_daemon.simulator.scenarios import CallKind


async def _bytes(platform: Platform, path: str) -> tuple[int, dict[str, str], bytes]:
    url = platform.sim.base_url + path
    async with aiohttp.ClientSession() as session, session.get(url, headers=platform.auth()) as r:
        return r.status, dict(r.headers), await r.read()


async def test_recording_metadata_and_content_after_the_record(platform: Platform) -> None:
    await platform.login()
    call = platform.sim.place_call(CallKind.RECORDED)
    record = next(r for r in call.call_log_records if "recording" in r)
    recording = record["recording"]
    assert isinstance(recording, dict)
    rid = str(recording["id"])
    path = f"/restapi/v1.0/account/~/recording/{rid}"
    code, _, body = await platform.get(path)
    assert code == 404  # not before RingCentral has the call's record
    assert body["errorCode"] == "CMN-102"

    platform.sim.fast_forward()
    await platform.sim.wait_idle()
    code, _, body = await platform.get(path)
    assert code == 200
    assert body["id"] == rid
    assert body["contentType"] == "audio/wav"
    assert body["contentUri"].endswith(f"/recording/{rid}/content")
    assert body["contentUri"].startswith(platform.sim.base_url)
    status, headers, audio = await _bytes(platform, path + "/content")
    assert status == 200
    assert headers["Content-Type"] == "audio/wav"
    assert headers["X-Rate-Limit-Group"] == "heavy"
    assert audio[:4] == b"RIFF"
    assert audio[8:12] == b"WAVE"
    assert audio == media.recording_bytes(rid, int(body["duration"]))
    assert int(headers["Content-Length"]) == len(audio)


async def test_voicemail_message_audio_and_transcription(platform: Platform) -> None:
    await platform.login()
    call = platform.sim.place_call(CallKind.INBOUND_VOICEMAIL)
    platform.sim.fast_forward()
    await platform.sim.wait_idle()
    record = next(r for r in call.call_log_records if "message" in r)
    message = record["message"]
    assert isinstance(message, dict)
    ext = str(message["uri"]).split("/extension/")[1].split("/")[0]
    store = f"/restapi/v1.0/account/~/extension/{ext}/message-store"
    code, _, page = await platform.get(store, messageType="VoiceMail")
    assert code == 200
    (found,) = [m for m in page["records"] if m["id"] == message["id"]]
    assert found["type"] == "VoiceMail"
    assert found["from"] == record["from"]
    assert found["vmTranscriptionStatus"] == "Completed"
    audio_att, text_att = found["attachments"]
    assert audio_att["type"] == "AudioRecording"
    assert audio_att["vmDuration"] >= 1
    assert text_att["type"] == "AudioTranscription"
    assert text_att["contentType"] == "text/plain"

    content = f"{store}/{found['id']}/content"
    status, headers, audio = await _bytes(platform, f"{content}/{audio_att['id']}")
    assert status == 200
    assert headers["X-Rate-Limit-Group"] == "medium"
    assert audio == media.recording_bytes(str(found["id"]), int(audio_att["vmDuration"]))
    status, _, text = await _bytes(platform, f"{content}/{text_att['id']}")
    assert status == 200
    assert text.decode() == media.transcription_text(str(found["id"]))

    code, _, none = await platform.get(
        store, dateFrom="2000-01-01T00:00:00Z", dateTo="2000-01-02T00:00:00Z"
    )
    assert code == 200
    assert none["records"] == []
    code, _, _ = await platform.get(f"{store}/999")
    assert code == 404
