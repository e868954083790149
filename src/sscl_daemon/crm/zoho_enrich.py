"""Zoho CRM updates after the create: recording and voicemail added to a logged Calls record
(``crm/plugin_enrich.py`` -> here -> Zoho's REST API v7 under the token's ``api_domain``).

* ``GET /Calls/{id}?fields=Description`` -- the note (Zoho answers 204 for a record that is
  gone);
* ``POST /Calls/{id}/Attachments`` -- the audio as a multipart ``file`` (Zoho's "Upload an
  Attachment"; at most 20 MB in v7), after a retry only when ``GET /Calls/{id}/Attachments``
  lists no file of that name. Zoho's published module list for attachments names Tasks and
  Events; should an organisation refuse them on Calls (4xx), the audio is linked instead
  and the reason said in the section;
* ``PUT /Calls/{id}`` -- ``Description`` with the section appended, when it is still what the
  daemon wrote (a textarea of 32,000 characters);
* else ``POST /Calls/{id}/Notes`` -- a note of the call (``Note_Title``, ``Note_Content``)
  carrying the update's ``sscl-update`` line; after a retry ``GET /Calls/{id}/Notes`` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from sscl_daemon.crm import enrich
from sscl_daemon.crm.base import PermanentFailure, WriteContext
from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.enrich import Enrichment
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.plugin_enrich import NotAttached, Note, audio_form

if TYPE_CHECKING:
    from sscl_daemon.crm.zoho import ZohoWriter
    from sscl_daemon.ringcentral.media import Audio

CRM: Final = "Zoho CRM"
DESCRIPTION_MAX: Final = 32_000
# Zoho's attachment size limit (v7's "Upload an Attachment").
ATTACHMENT_MAX: Final = 20 * 1024 * 1024


def _rows(answer: Response) -> list[Mapping[str, object]]:
    raw = answer.object().get("data") if answer.status != 204 else None
    return [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []


def _refusal(answer: Response) -> str:
    """The per-record refusal of a Zoho write answer ('' when it succeeded)."""
    for row in _rows(answer):
        if row.get("status") != "success":
            return f"{row.get('code', '')} {row.get('message', 'refused')}".strip()
    return ""


class ZohoCall:
    """One logged Calls record (:class:`~sscl_daemon.crm.plugin_enrich.Record`)."""

    html = False
    noun = "Zoho call"
    note_max: int | None = DESCRIPTION_MAX

    def __init__(self, writer: ZohoWriter) -> None:
        self._w = writer

    def _path(self, e: Enrichment, tail: str = "") -> str:
        return f"/Calls/{quote(e.record_id, safe='')}{tail}"

    async def read(self, e: Enrichment) -> Note | LookupFailure | None:
        answer = await self._w._call(
            "GET", self._path(e), params={"fields": "Description"}, accept=frozenset({404})
        )
        if not isinstance(answer, Response):
            return answer
        rows = _rows(answer)
        if answer.status in (204, 404) or not rows:
            return None
        text = rows[0].get("Description")
        return Note(text if isinstance(text, str) else None)

    async def attach(
        self, e: Enrichment, note: Note, audio: Audio, ctx: WriteContext
    ) -> NotAttached | LookupFailure | None:
        if audio.size > ATTACHMENT_MAX:
            return NotAttached(f"larger than Zoho's {ATTACHMENT_MAX // 1_048_576} MB")
        if ctx.uncertain or ctx.attempt > 1:
            listed = await self._w._call(
                "GET", self._path(e, "/Attachments"), params={"fields": "id,File_Name"}
            )
            if not isinstance(listed, Response):
                return listed
            if any(r.get("File_Name") == audio.filename for r in _rows(listed)):
                return None
        base = await self._w._base_url()
        if not isinstance(base, str):
            return base

        answer = await self._w.http.request(
            "POST",
            base + self._path(e, "/Attachments"),
            data=audio_form(audio),
            accept=frozenset({400, 403}),
        )
        if not isinstance(answer, Response):
            return answer
        refused = _refusal(answer) if answer.status < 400 else self._w.http.reason(answer)
        return NotAttached(f"{CRM} refused the file ({refused})") if refused else None

    async def rewrite(self, e: Enrichment, note: Note, text: str) -> LookupFailure | None:
        answer = await self._w._call(
            "PUT",
            self._path(e),
            body={"data": [{"Description": text}]},
            accept=frozenset({400}),
        )
        if not isinstance(answer, Response):
            return answer
        refused = _refusal(answer)
        if refused or answer.status == 400:
            return PermanentFailure(f"{CRM} refused the call's update: {refused or answer.text}")
        return None

    async def beside(
        self, e: Enrichment, note: Note, body: str, ctx: WriteContext
    ) -> LookupFailure | None:
        marker = enrich.update_marker(e)
        if ctx.uncertain or ctx.attempt > 1:
            listed = await self._w._call(
                "GET", self._path(e, "/Notes"), params={"fields": "id,Note_Content"}
            )
            if not isinstance(listed, Response):
                return listed
            if any(marker in str(r.get("Note_Content", "")) for r in _rows(listed)):
                return None
        title = f"{e.kind.value.capitalize()} of the call"
        answer = await self._w._call(
            "POST",
            self._path(e, "/Notes"),
            body={"data": [{"Note_Title": title, "Note_Content": body}]},
        )
        if not isinstance(answer, Response):
            return answer
        refused = _refusal(answer)
        if refused:
            return PermanentFailure(f"{CRM} refused the note: {refused}")
        return None
