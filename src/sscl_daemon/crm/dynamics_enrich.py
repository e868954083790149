"""Dynamics 365 updates after the create: recording and voicemail added to a logged phone call
(``crm/plugin_enrich.py`` -> here -> the environment's Web API v9.2).

* ``GET phonecalls({id})?$select=description,statuscode`` -- the note (404: gone);
* the audio is a *note with a file* of the phone call: ``PATCH annotations({annotationid})``
  with ``If-None-Match: *`` (create only) carrying ``subject``, ``filename``, ``mimetype``,
  ``documentbody`` (the file in base64) and ``objectid_phonecall@odata.bind``. The
  ``annotationid`` is derived from the phone call and the file name, so a retry's create is
  refused with 412 -- the file is there -- and no lookup is needed. The JSON body is
  produced as it is sent, the file read and base64-encoded a slice at a time (never held
  whole), with its exact ``Content-Length``. Dataverse refuses a file over the
  organisation's ``maxuploadfilesize`` (5 MB unless an administrator changed it), read once
  from ``GET organizations?$select=maxuploadfilesize``: such a file is linked instead, with
  the reason in the section;
* the section appended to ``description`` when it is still what the daemon wrote and the
  whole stays within 2,000 characters. A completed phone call is read-only, so the update
  is one ``$batch`` change set, applied atomically: reopen (``statecode`` 0, ``statuscode``
  1), set the description, complete it again with its own status (Made or Received);
* else a note of the phone call (``notetext``) carrying the update's ``sscl-update`` line,
  created the same create-only way under an id derived from the update.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final

import aiohttp

from sscl_daemon.crm.base import PermanentFailure, RetryLater, WriteContext
from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.dataverse import ODATA_HEADERS, batch_body, parse_batch
from sscl_daemon.crm.dynamics_mapping import CRM, DESCRIPTION_MAX, STATE_COMPLETED
from sscl_daemon.crm.enrich import Enrichment
from sscl_daemon.crm.http import CrmHttp, Response
from sscl_daemon.crm.plugin_enrich import NotAttached, Note
from sscl_daemon.crm.wiring import nested_error_message

if TYPE_CHECKING:
    from sscl_daemon.ringcentral.media import Audio

# Dataverse's default maxuploadfilesize (bytes), used until the organisation's is read.
DEFAULT_UPLOAD_MAX: Final = 5_242_880
# Bytes read (and encoded) at a time: a multiple of 3, so the slices' base64 join up.
SLICE: Final = 3 * 21_846
# Namespace of the annotation ids derived from a phone call and a file or an update.
NOTE_NAMESPACE: Final = uuid.UUID("3c5e2a1d-8b7f-5e64-a0d9-6f41b2c7e815")
STATE_OPEN: Final = 0
STATUS_OPEN: Final = 1
# One operation of a $batch change set: method, path, headers, JSON body.
Operation = tuple[str, str, Mapping[str, str], object]


def annotation_id(record_id: str, name: str) -> str:
    """A note's id on a phone call: the same for the same file or update on every attempt."""
    return str(uuid.uuid5(NOTE_NAMESPACE, f"{record_id.lower()}#{name}"))


def base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


class StreamedNote:
    """An annotation's JSON body with a file, produced as it is sent (never whole in memory):
    the fields, then ``documentbody`` as base64 read a :data:`SLICE` at a time."""

    def __init__(self, fields: Mapping[str, object], audio: Audio) -> None:
        head = json.dumps(dict(fields))[:-1]
        self._head = f'{head}, "documentbody": "'.encode()
        self._tail = b'"}'
        self._audio = audio
        self.length = len(self._head) + base64_length(audio.size) + len(self._tail)

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._head
        self._audio.file.seek(0)
        while piece := self._audio.file.read(SLICE):
            yield base64.b64encode(piece)
        yield self._tail

    def payload(self) -> aiohttp.payload.Payload:
        return aiohttp.payload.AsyncIterablePayload(self.chunks(), content_type="application/json")


class DynamicsPhoneCall:
    """One logged phone call (:class:`~sscl_daemon.crm.plugin_enrich.Record`)."""

    html = False
    noun = "Dynamics phone call"
    note_max: int | None = DESCRIPTION_MAX

    def __init__(
        self,
        http: CrmHttp,
        base: str,
        upload_max: Callable[[], Awaitable[int | LookupFailure]],
    ) -> None:
        self._http = http
        self._base = base
        self._upload_max = upload_max

    def _path(self, e: Enrichment) -> str:
        return f"/phonecalls({uuid.UUID(e.record_id)})"

    async def read(self, e: Enrichment) -> Note | LookupFailure | None:
        answer = await self._http.request(
            "GET",
            self._base + self._path(e),
            params={"$select": "description,statecode,statuscode"},
            headers=ODATA_HEADERS,
            accept=frozenset({404}),
        )
        if not isinstance(answer, Response):
            return answer
        if answer.status == 404:
            return None
        row = answer.object()
        text = row.get("description")
        state = (row.get("statecode"), row.get("statuscode"))
        return Note(text if isinstance(text, str) else None, state)

    async def _create_note(
        self, note_id: str, body: Callable[[], aiohttp.payload.Payload] | bytes, length: int
    ) -> Response | LookupFailure:
        return await self._http.request(
            "PATCH",
            f"{self._base}/annotations({note_id})",
            data=body,
            headers={
                **ODATA_HEADERS,
                "Content-Type": "application/json",
                "Content-Length": str(length),
                "If-None-Match": "*",
            },
            accept=frozenset({400, 412}),
        )

    async def attach(
        self, e: Enrichment, note: Note, audio: Audio, ctx: WriteContext
    ) -> NotAttached | LookupFailure | None:
        limit = await self._upload_max()
        if not isinstance(limit, int):
            return limit
        if audio.size > limit:
            return NotAttached(
                f"larger than the organisation's upload limit ({limit / 1_048_576:.1f} MB)"
            )
        streamed = StreamedNote(
            {
                "subject": f"{e.kind.value.capitalize()} of the call"[:500],
                "filename": audio.filename,
                "mimetype": audio.content_type,
                "objectid_phonecall@odata.bind": self._path(e),
            },
            audio,
        )
        answer = await self._create_note(
            annotation_id(e.record_id, audio.filename), streamed.payload, streamed.length
        )
        if not isinstance(answer, Response):
            return answer
        if answer.status == 400:
            reason = nested_error_message(answer.body, answer.text)
            return NotAttached(f"{CRM} refused the file ({reason})")
        return None  # 204 made now, 412 made by an earlier attempt

    async def rewrite(self, e: Enrichment, note: Note, text: str) -> LookupFailure | None:
        path = self._path(e)
        state, status = note.facts if isinstance(note.facts, tuple) else (None, None)
        update: Operation = ("PATCH", path, {"If-Match": "*"}, {"description": text})
        changes = [update]
        if state != STATE_OPEN:
            # Completed (as the daemon left it): reopened, updated and completed again with
            # its own status, in one change set.
            reopen = {"statecode": STATE_OPEN, "statuscode": STATUS_OPEN}
            close = {"statecode": STATE_COMPLETED, "statuscode": status}
            changes = [("PATCH", path, {"If-Match": "*"}, reopen), update]
            changes.append(("PATCH", path, {"If-Match": "*"}, close))
        boundary = uuid.uuid4().hex
        body = batch_body(self._base, [changes], boundary)
        answer = await self._http.request(
            "POST",
            f"{self._base}/$batch",
            data=body,
            headers={
                **ODATA_HEADERS,
                "Content-Type": f"multipart/mixed; boundary=batch_{boundary}",
            },
        )
        if not isinstance(answer, Response):
            return answer
        parts = parse_batch(answer.headers.get("content-type", ""), answer.text.encode())
        answers = parts[0] if parts else []
        failed = next((a for a in answers if not 200 <= a.status < 300), None)
        if failed is None and answers:
            return None
        if failed is None:
            return RetryLater(f"{CRM}: the batch answer has no part for the update")
        message = nested_error_message(failed.body, str(failed.body or ""))
        if failed.status == 429 or failed.status >= 500:
            return RetryLater(f"{CRM} unavailable (HTTP {failed.status}): {message}")
        return PermanentFailure(f"{CRM} refused the update (HTTP {failed.status}): {message}")

    async def beside(
        self, e: Enrichment, note: Note, body: str, ctx: WriteContext
    ) -> LookupFailure | None:
        raw = json.dumps(
            {
                "subject": f"{e.kind.value.capitalize()} of the call"[:500],
                "notetext": body,
                "objectid_phonecall@odata.bind": self._path(e),
            }
        ).encode()
        answer = await self._create_note(annotation_id(e.record_id, e.kind.value), raw, len(raw))
        if not isinstance(answer, Response):
            return answer
        if answer.status == 400:
            reason = nested_error_message(answer.body, answer.text)
            return PermanentFailure(f"{CRM} refused the note: {reason}")
        return None


def upload_max_of(answer: Response) -> int:
    """``maxuploadfilesize`` of the organisation, or the default when it is not given."""
    rows = answer.object().get("value")
    first = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}
    value = first.get("maxuploadfilesize")
    return value if isinstance(value, int) and value > 0 else DEFAULT_UPLOAD_MAX
