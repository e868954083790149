"""Recordings and voicemail of a call, fetched from RingCentral for the CRM writers
(enrichment -> here -> RingCentral; the audio then goes to a writer's upload).

* :meth:`MediaClient.recording` -- ``GET /restapi/v1.0/account/~/recording/{id}`` (Light) for
  the ``contentUri``, then the content (Heavy group) streamed into an :class:`Audio`: a
  spooled temporary file that stays in memory up to :data:`SPOOL_BYTES` and moves to disk
  beyond, never held whole in memory, refused past ``max_bytes`` (:class:`TooLarge`).
  RingCentral answers 404 ``CMN-102`` until a recording is ready: :class:`NotReady`.
* :meth:`MediaClient.voicemail` -- the user's message store (``GET /restapi/v1.0/account/~/
  extension/{extensionId}/message-store?messageType=VoiceMail&dateFrom&dateTo``, Light):
  the message the caller left during the call (same caller number, created between the call's
  start and :data:`VOICEMAIL_WINDOW` after its end), with its transcription text when
  ``vmTranscriptionStatus`` is ``Completed`` (the ``AudioTranscription`` attachment, Medium).
  :meth:`MediaClient.attachment` streams its audio like a recording.

Every request shares the REST client's token and rate-group limiter, so media never pushes
the account past RingCentral's budgets. Links a person can open in a browser are built by
``crm/content.player_link`` (RingCentral's media reader: it signs the person in and plays it).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO
from urllib.parse import quote

import aiohttp
import msgspec

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.ringcentral.ratelimit import RateGroup, throttle_delay
from sscl_daemon.ringcentral.rest import ApiError, RestClient, iso
from sscl_daemon.ringcentral.retry import Retryable

# In memory up to this size, then on disk (the temporary directory).
SPOOL_BYTES = 1024 * 1024
READ_CHUNK = 64 * 1024
TRANSCRIPTION_MAX = 64 * 1024
# A voicemail message is created when the caller hangs up; look a little past the call.
VOICEMAIL_WINDOW = timedelta(minutes=15)


@dataclass
class Audio:
    """An audio file fetched from RingCentral: read it from ``file`` (at position 0), then
    :meth:`close` it. ``filename`` is a safe name for the CRM."""

    file: IO[bytes] = field(repr=False)
    size: int
    content_type: str
    filename: str

    def close(self) -> None:
        self.file.close()


@dataclass(frozen=True)
class NotReady:
    """RingCentral does not have it (yet): ask again later."""

    reason: str


@dataclass(frozen=True)
class TooLarge:
    """Bigger than the configured limit: never fetched whole."""

    size: int
    limit: int


@dataclass(frozen=True)
class Voicemail:
    message_id: str
    audio_uri: str
    audio_type: str
    seconds: int
    # None while RingCentral transcribes, or when it has no transcription for the message.
    transcription: str | None
    transcription_status: str


class _Party(msgspec.Struct, kw_only=True):
    phoneNumber: str | None = None


class _Attachment(msgspec.Struct, kw_only=True):
    id: str = ""
    uri: str = ""
    type: str = ""
    contentType: str = ""
    vmDuration: int | None = None


class _Message(msgspec.Struct, kw_only=True):
    id: str
    type: str = ""
    creationTime: datetime | None = None
    vmTranscriptionStatus: str = ""
    attachments: list[_Attachment] = msgspec.field(default_factory=list)
    from_: _Party | None = msgspec.field(default=None, name="from")


class _MessagePage(msgspec.Struct, kw_only=True):
    records: list[_Message] = msgspec.field(default_factory=list)


class _Recording(msgspec.Struct, kw_only=True):
    id: str
    contentUri: str
    contentType: str = "audio/mpeg"


_EXTENSIONS = {"audio/mpeg": "mp3", "audio/wav": "wav", "audio/x-wav": "wav", "audio/mp4": "m4a"}


def file_name(stem: str, content_type: str) -> str:
    """``stem.ext`` from the content type (``.audio`` when it is unknown)."""
    ext = _EXTENSIONS.get(content_type.split(";")[0].strip().lower(), "audio")
    return f"{stem}.{ext}"


class MediaClient:
    """Fetches recordings and voicemail with the account's REST client (token, limiter)."""

    def __init__(self, http: aiohttp.ClientSession, rest: RestClient, *, max_bytes: int) -> None:
        self._http = http
        self._rest = rest
        self.max_bytes = max_bytes
        self.fetched_bytes = 0

    async def recording(self, recording_id: str) -> Audio | NotReady | TooLarge:
        path = f"/restapi/v1.0/account/~/recording/{quote(recording_id, safe='')}"
        reply = await self._rest.request("GET", path, RateGroup.LIGHT, allow=(404,))
        if reply.status == 404:
            return NotReady(f"recording {recording_id} is not available yet")
        meta = msgspec.json.decode(reply.body, type=_Recording)
        return await self.download(
            meta.contentUri, file_name(f"recording-{recording_id}", meta.contentType)
        )

    async def voicemail(self, call: CompletedCall) -> Voicemail | NotReady:
        """The voicemail the caller left on this call, with its transcription if done."""
        if not call.extension_id:
            return NotReady("the call has no user whose message store could hold a voicemail")
        path = (
            f"/restapi/v1.0/account/~/extension/{quote(call.extension_id, safe='')}/message-store"
        )
        params = {
            "messageType": "VoiceMail",
            "dateFrom": iso(call.start_time),
            "dateTo": iso(call.end_time + VOICEMAIL_WINDOW),
            "perPage": "100",
        }
        reply = await self._rest.request("GET", path, RateGroup.LIGHT, params)
        page = msgspec.json.decode(reply.body, type=_MessagePage)
        message = pick_voicemail(call, page.records)
        if message is None:
            return NotReady("no voicemail message for the call in the message store yet")
        audio = next((a for a in message.attachments if a.type == "AudioRecording"), None)
        if audio is None:
            return NotReady(f"voicemail {message.id} has no audio yet")
        text: str | None = None
        if message.vmTranscriptionStatus == "Completed":
            text = await self._transcription(message)
        return Voicemail(
            message.id,
            audio.uri,
            audio.contentType or "audio/mpeg",
            audio.vmDuration or 0,
            text,
            message.vmTranscriptionStatus or "NotAvailable",
        )

    async def _transcription(self, message: _Message) -> str | None:
        attachment = next((a for a in message.attachments if a.type == "AudioTranscription"), None)
        if attachment is None:
            return None
        audio = await self.download(attachment.uri, "transcription.txt", TRANSCRIPTION_MAX)
        if not isinstance(audio, Audio):
            return None
        try:
            return audio.file.read().decode("utf-8", errors="replace").strip() or None
        finally:
            audio.close()

    async def attachment(self, voicemail: Voicemail) -> Audio | NotReady | TooLarge:
        return await self.download(
            voicemail.audio_uri,
            file_name(f"voicemail-{voicemail.message_id}", voicemail.audio_type),
        )

    async def download(
        self, uri: str, filename: str, limit: int | None = None
    ) -> Audio | NotReady | TooLarge:
        """Stream ``uri`` (a RingCentral content URI) into a spooled file (Heavy for recording
        content, Medium for message content, as RingCentral groups them)."""
        limit = self.max_bytes if limit is None else limit
        group = RateGroup.MEDIUM if "/message-store/" in uri else RateGroup.HEAVY
        await self._rest.limiter.acquire(group)
        token = await self._rest.auth.access_token()
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        try:
            async with self._http.get(
                uri, headers={"Authorization": f"Bearer {token}"}, allow_redirects=True
            ) as response:
                self._rest.limiter.observe(group, dict(response.headers))
                if response.status == 404:
                    spool.close()
                    return NotReady(f"{uri.rsplit('/', 3)[-3]} content is not available yet")
                if response.status == 401:
                    await self._rest.auth.invalidate(token)
                    spool.close()
                    raise Retryable("media content answered 401; token renewed")
                if response.status >= 300:
                    spool.close()
                    delay = throttle_delay(response.status, response.headers)
                    if delay is not None:
                        self._rest.limiter.close_for(group, delay)
                        raise Retryable(f"media content answered {response.status}", delay)
                    raise _failed(response.status, uri)
                declared = response.content_length
                if declared is not None and declared > limit:
                    spool.close()
                    return TooLarge(declared, limit)
                size = 0
                async for chunk in response.content.iter_chunked(READ_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        spool.close()
                        return TooLarge(size, limit)
                    spool.write(chunk)
                content_type = response.headers.get("Content-Type", "application/octet-stream")
        except (aiohttp.ClientError, TimeoutError) as exc:
            spool.close()
            raise Retryable(f"media download failed: {type(exc).__name__}") from None
        self.fetched_bytes += size
        spool.seek(0)
        return Audio(spool, size, content_type.split(";")[0].strip(), filename)


def pick_voicemail(call: CompletedCall, messages: list[_Message]) -> _Message | None:
    """The message left on this call: a voicemail from the caller's number created between
    the call's start and the window after its end (pure; the oldest such)."""
    found = [
        m
        for m in messages
        if m.type == "VoiceMail"
        and m.creationTime is not None
        and call.start_time <= m.creationTime <= call.end_time + VOICEMAIL_WINDOW
        and (
            call.external_number is None
            or (m.from_ and m.from_.phoneNumber) == call.external_number
        )
    ]
    return min(found, key=lambda m: m.creationTime or call.start_time) if found else None


def _failed(status: int, uri: str) -> Exception:
    if status >= 500:
        return Retryable(f"media content answered {status}")
    return ApiError("GET", uri.split("/restapi", 1)[-1], status, "", "media content refused")
