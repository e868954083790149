"""HubSpot updates after the create: recording and voicemail added to a logged call
(``crm/enrich.py`` -> the writer's ``enrich`` -> here -> HubSpot).

The audio goes to the portal's file manager (``POST /files/v3/files`` into
:data:`MEDIA_FOLDER`) and is attached to the call (``hs_attachment_ids``); the section is
appended to the call's note if nobody edited it, else written in a note of its own
associated with the call (``POST /crm/v3/objects/notes`` and a v4 association), marked so a
retry finds it among the call's notes instead of adding a second one.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import aiohttp

from sscl_daemon.crm import content, enrich
from sscl_daemon.crm.base import PermanentFailure, RetryLater, WriteContext
from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.enrich import Enrichment, EnrichResult, Updated
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.hubspot_mapping import CRM, props_of

if TYPE_CHECKING:
    from sscl_daemon.crm.hubspot_api import HubSpotApi
    from sscl_daemon.ringcentral.media import Audio

# Where uploaded recordings and voicemail go in the portal's file manager.
MEDIA_FOLDER: Final = "/sscl-daemon/calls"


async def enrich_call(api: HubSpotApi, e: Enrichment, ctx: WriteContext) -> EnrichResult:
    """Attach the audio (files API, ``hs_attachment_ids``) and add the section to the
    note if nobody edited it, else in a note of its own associated with the call."""
    url = f"{api.base}/crm/v3/objects/calls/{quote(e.record_id, safe='')}"
    answer = await api.http.request(
        "GET",
        url,
        params={"properties": "hs_call_body,hs_attachment_ids"},
        accept=frozenset({404}),
    )
    if not isinstance(answer, Response):
        return answer
    if answer.status == 404:
        return PermanentFailure(f"{CRM} call {e.record_id} no longer exists")
    props = props_of(answer.object())
    attached = [a for a in props.get("hs_attachment_ids", "").split(";") if a]
    update: dict[str, str] = {}
    for audio in e.audio:
        # A file of the same name in our folder is replaced, keeping its id: an
        # uncertain retry attaches the same file, never a second one.
        file_id = await _upload(api, audio)
        if not isinstance(file_id, str):
            return file_id
        if file_id not in attached:
            attached.append(file_id)
            update["hs_attachment_ids"] = ";".join(attached)
    section = enrich.section_html(e)
    written: str | None = None
    body = props.get("hs_call_body")
    if section and enrich.added(body, section):
        written = body  # an earlier attempt of this update wrote it before a crash
    elif section and enrich.same_note(body, e.written):
        written = f"{body}{section}"
        update["hs_call_body"] = written
    if update:
        patched = await api.http.request("PATCH", url, json_body={"properties": update})
        if not isinstance(patched, Response):
            return patched
    if section and written is None:
        beside = await _note_beside(api, e, section, ctx)
        if beside is not None:
            return beside
        return Updated(f"{e.kind} added beside the edited note", None)
    return Updated(f"{e.kind} added to the call", written)


async def _upload(api: HubSpotApi, audio: Audio) -> str | LookupFailure:
    def form() -> aiohttp.FormData:
        audio.file.seek(0)
        data = aiohttp.FormData()
        data.add_field("file", audio.file, filename=audio.filename, content_type=audio.content_type)
        data.add_field("fileName", audio.filename)
        data.add_field("folderPath", MEDIA_FOLDER)
        data.add_field("options", json.dumps({"access": "PRIVATE", "overwrite": True}))
        return data

    answer = await api.http.request("POST", f"{api.base}/files/v3/files", data=form)
    if not isinstance(answer, Response):
        return answer
    file_id = answer.object().get("id")
    if file_id is None:
        return RetryLater(f"{CRM} file upload answered without an id", uncertain=True)
    return str(file_id)


async def _note_beside(
    api: HubSpotApi, e: Enrichment, section: str, ctx: WriteContext
) -> LookupFailure | None:
    """A note with the section, associated with the call (its body is a person's now).
    It carries an ``sscl-update`` line, so a retry finds the note among the call's."""
    marker = enrich.update_marker(e)
    if ctx.uncertain or ctx.attempt > 1:
        done = await _noted(api, e.record_id, marker)
        if done is not False:
            return done if not isinstance(done, bool) else None
    note = await api.http.request(
        "POST",
        f"{api.base}/crm/v3/objects/notes",
        json_body={
            "properties": {
                "hs_timestamp": content.iso_utc(e.call.end_time),
                "hs_note_body": f"{section}<p>{html.escape(marker)}</p>",
            }
        },
    )
    if not isinstance(note, Response):
        return note
    note_id = note.object().get("id")
    if note_id is None:
        return RetryLater(f"{CRM} note create answered without an id", uncertain=True)
    linked = await api.http.request(
        "PUT",
        f"{api.base}/crm/v4/objects/notes/{note_id}/associations/default/calls/"
        f"{quote(e.record_id, safe='')}",
    )
    return linked if not isinstance(linked, Response) else None


async def _noted(api: HubSpotApi, call_id: str, marker: str) -> bool | LookupFailure:
    """Whether a note of the call carries ``marker`` (associations read, not searched)."""
    ids = await api.associated("calls", call_id, "notes")
    if not isinstance(ids, list):
        return ids
    notes = await api.batch_read("notes", ids, ["hs_note_body"])
    if not isinstance(notes, list):
        return notes
    return any(marker in props_of(r).get("hs_note_body", "") for r in notes)
