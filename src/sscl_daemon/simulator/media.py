"""Call recordings and voicemail of the simulated platform: recording metadata and content,
the message store's voicemail messages, their audio and transcription (simulator -> the
daemon's ``ringcentral/media.py``, the demo, the tests).

What exists follows the published call log (``engine.call_log``): a recording is served once
a call-log record that names it is published (RingCentral makes recordings available some
seconds after the call, as it does the record), and a voicemail message exists for every
published record that carries a ``message`` of type ``VoiceMail``. Shapes as the API
reference documents them:

* ``GET /restapi/v1.0/account/{accountId}/recording/{recordingId}`` -- ``id``, ``uri``,
  ``contentUri``, ``contentType``, ``duration``; 404 ``CMN-102`` while unknown;
* ``GET .../recording/{recordingId}/content`` -- the audio (``audio/wav``, with
  ``Content-Length``); counted in the Heavy rate group, message content in Medium;
* ``GET /restapi/v1.0/account/{accountId}/extension/{extensionId}/message-store`` with
  ``messageType=VoiceMail``, ``dateFrom``/``dateTo`` -- ``records`` of messages (``id``,
  ``type``, ``direction``, ``from``, ``to``, ``creationTime``, ``vmTranscriptionStatus``,
  ``attachments``: one ``AudioRecording`` with ``vmDuration``, one ``AudioTranscription``
  ``text/plain`` once the transcription is done);
* ``GET .../message-store/{messageId}`` and ``.../message-store/{messageId}/content/
  {attachmentId}`` -- one message, an attachment's bytes.

``~`` stands for the account / the token's extension as on the platform. The audio is a valid
8 kHz 8-bit mono WAV whose bytes are a pure function of the id (so a test compares what a CRM
received with :func:`recording_bytes`); its length follows the call's duration.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from sscl_daemon.simulator.engine import Engine
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.wsframes import ENCODER, rest_error

SAMPLE_RATE = 8000
# A recording or voicemail is at most this long in the simulation (keeps memory in check).
MAX_SECONDS = 600
AUDIO_TYPE = "audio/wav"
TEXT_TYPE = "text/plain"


def recording_bytes(key: str, seconds: int) -> bytes:
    """The WAV the simulator serves for ``key`` (a recording or message id), ``seconds`` long."""
    seconds = max(1, min(seconds, MAX_SECONDS))
    samples = bytearray()
    seed = hashlib.sha256(key.encode()).digest()
    block = seed
    while len(samples) < seconds * SAMPLE_RATE:
        block = hashlib.sha256(block).digest()
        samples.extend(block)
    data = bytes(samples[: seconds * SAMPLE_RATE])
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE, 1, 8)
    return header + fmt + b"data" + struct.pack("<I", len(data)) + data


def transcription_text(message_id: str) -> str:
    """The transcription the simulator gives a voicemail (words chosen by the id)."""
    words = ("please", "call", "me", "back", "about", "the", "order", "invoice", "today")
    digest = hashlib.sha256(message_id.encode()).digest()
    chosen = " ".join(words[b % len(words)] for b in digest[:8])
    return f"Hi, this is a message for you: {chosen}. Thanks."


@dataclass(frozen=True)
class _Message:
    id: str
    extension_id: str
    record: dict[str, object]
    created: datetime
    seconds: int


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=ENCODER.encode(body), status=status, content_type="application/json")


def _not_found(what: str, value: str) -> web.Response:
    return _json(rest_error("CMN-102", f"Resource for parameter [{what}] is not found"), 404)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class MediaRest:
    """The media handlers over the engine's published call log."""

    org: Organisation
    engine: Engine
    # Where contentUri links point (the simulator's own base URL once known).
    media_base: str = ""

    def routes(self) -> list[web.RouteDef]:
        account = "/restapi/v1.0/account/{account}"
        store = account + "/extension/{extension}/message-store"
        return [
            web.get(account + "/recording/{recording}", self.recording),
            web.get(account + "/recording/{recording}/content", self.recording_content),
            web.get(store, self.messages),
            web.get(store + "/{message}", self.message),
            web.get(store + "/{message}/content/{attachment}", self.attachment),
        ]

    # -- what exists -----------------------------------------------------------------------

    def _recordings(self) -> dict[str, int]:
        """Recording id -> seconds, for every recording a published record names."""
        found: dict[str, int] = {}
        for entry in self.engine.call_log:
            record = entry.record
            sources = [record, *[leg for leg in _list(record.get("legs")) if isinstance(leg, dict)]]
            for source in sources:
                rec = source.get("recording")
                if isinstance(rec, dict) and rec.get("id"):
                    found.setdefault(str(rec["id"]), _seconds(source.get("duration")))
        return found

    def _messages(self) -> dict[str, _Message]:
        found: dict[str, _Message] = {}
        for entry in self.engine.call_log:
            message = entry.record.get("message")
            if not (isinstance(message, dict) and message.get("type") == "VoiceMail"):
                continue
            uri = str(message.get("uri", ""))
            ext = uri.split("/extension/", 1)[-1].split("/", 1)[0]
            seconds = _seconds(entry.record.get("duration"))
            created = entry.start + timedelta(seconds=seconds)
            found[str(message["id"])] = _Message(
                str(message["id"]), ext, entry.record, created, min(seconds, MAX_SECONDS)
            )
        return found

    def _base(self, account: str) -> str:
        return f"{self.media_base}/restapi/v1.0/account/{account}"

    def _message_body(self, m: _Message) -> dict[str, object]:
        base = f"{self._base(self.org.account_id)}/extension/{m.extension_id}/message-store/{m.id}"
        record = m.record
        to = record.get("to")
        return {
            "uri": base,
            "id": m.id,
            "type": "VoiceMail",
            "direction": "Inbound",
            "availability": "Alive",
            "messageStatus": "Received",
            "readStatus": "Unread",
            "priority": "Normal",
            "creationTime": _iso(m.created),
            "lastModifiedTime": _iso(m.created),
            "from": record.get("from", {}),
            "to": [to] if isinstance(to, dict) else [],
            "vmTranscriptionStatus": "Completed",
            "attachments": [
                {
                    "id": f"{m.id}1",
                    "uri": f"{base}/content/{m.id}1",
                    "type": "AudioRecording",
                    "contentType": AUDIO_TYPE,
                    "vmDuration": m.seconds,
                    "fileName": f"voicemail-{m.id}.wav",
                },
                {
                    "id": f"{m.id}2",
                    "uri": f"{base}/content/{m.id}2",
                    "type": "AudioTranscription",
                    "contentType": TEXT_TYPE,
                },
            ],
        }

    # -- handlers --------------------------------------------------------------------------

    def _account_ok(self, request: web.Request) -> bool:
        return request.match_info["account"] in ("~", self.org.account_id)

    async def recording(self, request: web.Request) -> web.Response:
        rid = request.match_info["recording"]
        seconds = self._recordings().get(rid)
        if seconds is None or not self._account_ok(request):
            return _not_found("recordingId", rid)
        uri = f"{self._base(self.org.account_id)}/recording/{rid}"
        return _json(
            {
                "uri": uri,
                "id": rid,
                "contentUri": f"{uri}/content",
                "contentType": AUDIO_TYPE,
                "duration": seconds,
            }
        )

    async def recording_content(self, request: web.Request) -> web.Response:
        rid = request.match_info["recording"]
        seconds = self._recordings().get(rid)
        if seconds is None or not self._account_ok(request):
            return _not_found("recordingId", rid)
        return await _stream(request, recording_bytes(rid, seconds), AUDIO_TYPE)

    def _extension_messages(self, request: web.Request) -> list[_Message]:
        ext = request.match_info["extension"]
        return [m for m in self._messages().values() if ext in ("~", m.extension_id)]

    async def messages(self, request: web.Request) -> web.Response:
        if not self._account_ok(request):
            return _not_found("accountId", request.match_info["account"])
        kinds = set(request.query.getall("messageType", []))
        try:
            low = _when(request.query.get("dateFrom")) or datetime.now(UTC) - timedelta(hours=24)
            high = _when(request.query.get("dateTo")) or datetime.now(UTC) + timedelta(days=1)
        except ValueError:
            return _json(rest_error("CMN-101", "Parameter [dateFrom/dateTo] is invalid"), 400)
        found = [
            self._message_body(m)
            for m in sorted(self._extension_messages(request), key=lambda m: m.created)
            if (not kinds or "VoiceMail" in kinds) and low <= m.created < high
        ]
        found.reverse()  # newest first, as the message store lists them
        return _json(
            {
                "uri": str(request.url),
                "records": found,
                "paging": {"page": 1, "perPage": 100, "pageStart": 0, "pageEnd": len(found)},
                "navigation": {},
            }
        )

    async def message(self, request: web.Request) -> web.Response:
        mid = request.match_info["message"]
        found = {m.id: m for m in self._extension_messages(request)}.get(mid)
        if found is None or not self._account_ok(request):
            return _not_found("messageId", mid)
        return _json(self._message_body(found))

    async def attachment(self, request: web.Request) -> web.Response:
        mid, aid = request.match_info["message"], request.match_info["attachment"]
        found = {m.id: m for m in self._extension_messages(request)}.get(mid)
        if found is None or not self._account_ok(request):
            return _not_found("messageId", mid)
        if aid == f"{mid}1":
            return await _stream(request, recording_bytes(mid, found.seconds), AUDIO_TYPE)
        if aid == f"{mid}2":
            return web.Response(text=transcription_text(mid), content_type=TEXT_TYPE)
        return _not_found("attachmentId", aid)


async def _stream(request: web.Request, data: bytes, content_type: str) -> web.Response:
    """The bytes as one answer with its length (aiohttp writes a large body in parts)."""
    return web.Response(body=data, headers={"Content-Type": content_type})


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _seconds(value: object) -> int:
    """A record's whole seconds, at least one (a recording or message is never empty)."""
    return max(value, 1) if isinstance(value, int) and not isinstance(value, bool) else 1
