"""Salesforce updates after the create: recording and voicemail added to a logged Task
(``crm/enrich.py`` -> the writer's ``enrich`` -> here -> Salesforce).

The audio becomes a file of the Task (``ContentVersion`` with ``FirstPublishLocationId``);
the section is appended to the Task's ``Description`` if nobody edited it, else written in a
``ContentNote`` shared with the Task, titled after the update so a retry finds it among the
Task's documents instead of adding a second one.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import aiohttp

from sscl_daemon.crm import enrich
from sscl_daemon.crm.base import PermanentFailure, RetryLater, WriteContext
from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.enrich import Enrichment, EnrichResult, Updated
from sscl_daemon.crm.http import Response, ensure_token
from sscl_daemon.crm.salesforce_mapping import CRM, soql_quote

if TYPE_CHECKING:
    from sscl_daemon.crm.salesforce_api import SalesforceApi
    from sscl_daemon.ringcentral.media import Audio

# Task.Description is a long text area of 32,000 characters.
DESCRIPTION_MAX: Final = 32_000


async def enrich_task(api: SalesforceApi, e: Enrichment, ctx: WriteContext) -> EnrichResult:
    """Files linked to the Task (ContentVersion with FirstPublishLocationId); the section
    appended to the Description if nobody edited it, else a note linked to the Task."""
    session = await ensure_token(CRM, api.oauth)
    if session is not None:
        return session
    task_path = f"/sobjects/Task/{quote(e.record_id, safe='')}"
    task = await api.send(
        "GET", task_path, params={"fields": "Description"}, accept=frozenset({404})
    )
    if not isinstance(task, Response):
        return task
    if task.status == 404:
        return PermanentFailure(f"{CRM} Task {e.record_id} no longer exists")
    description = task.object().get("Description")
    current = description if isinstance(description, str) else None
    for audio in e.audio:
        failure = await _attach(api, e.record_id, audio, ctx)
        if failure is not None:
            return failure
    section = enrich.section_text(e)
    if section and enrich.added(current, section):
        return Updated(f"{e.kind} added to the Task", current)
    if section and enrich.same_note(current, e.written):
        written = f"{current}\n{section}"[:DESCRIPTION_MAX]
        patched = await api.send("PATCH", task_path, json_body={"Description": written})
        if not isinstance(patched, Response):
            return patched
        return Updated(f"{e.kind} added to the Task", written)
    if section:
        failure = await _note_beside(api, e, ctx)
        if failure is not None:
            return failure
        return Updated(f"{e.kind} added beside the edited Task description", None)
    return Updated(f"{e.kind} attached to the Task", e.written)


async def _attach(
    api: SalesforceApi, task_id: str, audio: Audio, ctx: WriteContext
) -> LookupFailure | None:
    """Upload ``audio`` as a file of the Task, unless an earlier attempt did."""
    if ctx.uncertain or ctx.attempt > 1:
        found = await api.query(
            "SELECT Id FROM ContentVersion WHERE FirstPublishLocationId = "
            f"{soql_quote(task_id)} AND PathOnClient = {soql_quote(audio.filename)}"
        )
        if not isinstance(found, list):
            return found
        if found:
            return None
    entity = json.dumps(
        {
            "Title": audio.filename.rsplit(".", 1)[0],
            "PathOnClient": audio.filename,
            "FirstPublishLocationId": task_id,
        }
    )

    def form() -> aiohttp.FormData:
        audio.file.seek(0)
        data = aiohttp.FormData()
        data.add_field("entity_content", entity, content_type="application/json")
        data.add_field(
            "VersionData", audio.file, filename=audio.filename, content_type=audio.content_type
        )
        return data

    answer = await api.http.request("POST", f"{api.root}/sobjects/ContentVersion", data=form)
    return answer if not isinstance(answer, Response) else None


async def _note_beside(
    api: SalesforceApi, e: Enrichment, ctx: WriteContext
) -> LookupFailure | None:
    """A ContentNote with the section, shared with the Task; its title names the update,
    so a retry finds it among the Task's documents."""
    title = f"{e.kind.value.capitalize()} of the call {e.call.key}"[:255]
    if ctx.uncertain or ctx.attempt > 1:
        links = await api.query(
            "SELECT ContentDocumentId FROM ContentDocumentLink WHERE LinkedEntityId = "
            + soql_quote(e.record_id)
        )
        if not isinstance(links, list):
            return links
        ids = [str(r["ContentDocumentId"]) for r in links if r.get("ContentDocumentId")]
        if ids:
            notes = await api.query(
                "SELECT Id FROM ContentNote WHERE Title = "
                + soql_quote(title)
                + " AND Id IN ("
                + ", ".join(soql_quote(i) for i in ids)
                + ")"
            )
            if not isinstance(notes, list):
                return notes
            if notes:
                return None
    body = base64.b64encode(enrich.section_html(e).encode()).decode()
    note = await api.send(
        "POST", "/sobjects/ContentNote", json_body={"Title": title, "Content": body}
    )
    if not isinstance(note, Response):
        return note
    note_id = note.object().get("id")
    if not note_id:
        return RetryLater(f"{CRM} note create answered without an id", uncertain=True)
    link = await api.send(
        "POST",
        "/sobjects/ContentDocumentLink",
        json_body={
            "ContentDocumentId": note_id,
            "LinkedEntityId": e.record_id,
            "ShareType": "V",
        },
    )
    return link if not isinstance(link, Response) else None
