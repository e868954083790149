"""Pipedrive updates after the create: recording and voicemail added to a logged call
(``crm/enrich.py`` -> the writer's ``enrich`` -> here -> Pipedrive).

A call log (``crm/pipedrive.py``) cannot be updated, so:

* the first audio becomes the call log's recording (``POST /v1/callLogs/{id}/recordings``,
  playable in Pipedrive; one per call log, a 409 after a lost answer means it is there);
* the rest (transcription, links, what was not attached) goes as a note on what the log is
  linked to (``POST /v1/notes`` with ``person_id`` / ``deal_id`` / ``lead_id`` / ``org_id``:
  it shows in their timelines), marked with the update's ``sscl-update`` line so that a
  retry finds it (``GET /v1/notes``) instead of adding a second;
* with none of them, into the note of the call log's own activity (``activity_id``:
  Pipedrive keeps one per call log) when nobody edited that note, appended with
  ``PATCH /api/v2/activities/{id}``; else the update is parked as dead with the reason
  (:func:`unplaced`), never dropped.

The activity writer (``log_as = "activity"``, ``crm/pipedrive_activities.py``) shares the
pieces: :func:`attach` (the audio as a file of an activity), :func:`append`, :func:`beside`
and :func:`unplaced`.

A call log of ours known only by its activity (:data:`LOG_ACTIVITY`: a retry found our key
in the activity, but the log is not among the token user's call logs -- Pipedrive lists only
those assigned to that user, and an activity does not name its call log) gets its updates
on that activity: the audio as a file of it (:func:`attach`, as for ``log_as = "activity"``,
``crm/pipedrive_activities.py``) and the section beside it as above.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

import aiohttp
import structlog

from sscl_daemon.crm import enrich
from sscl_daemon.crm.base import PermanentFailure
from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.enrich import Enrichment, EnrichResult, Updated
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.pipedrive_api import CRM, PipedriveApi
from sscl_daemon.crm.pipedrive_mapping import int_id
from sscl_daemon.crm.pipedrive_reads import data_of, note_targets

if TYPE_CHECKING:
    from sscl_daemon.crm.base import WriteContext
    from sscl_daemon.ringcentral.media import Audio

# Record id prefixes: a call log of ours known by its activity's id (see the docstring), and
# a client's log (crm/pipedrive_reads.py: client_log), never updated.
LOG_ACTIVITY: Final = "call-log-activity:"
CLIENT_ACTIVITY: Final = "activity:"

log = structlog.get_logger(__name__)


async def enrich_call_log(api: PipedriveApi, e: Enrichment, ctx: WriteContext) -> EnrichResult:
    """The audio as the call log's recording (playable in Pipedrive); the rest (the
    transcription, links) in a note beside the call log (:func:`beside`) -- call logs
    cannot be updated, so nothing a person wrote is ever overwritten."""
    if e.record_id.startswith(CLIENT_ACTIVITY):
        return Updated("a client's activity is not updated", e.written)
    if e.record_id.startswith(LOG_ACTIVITY):
        return await _enrich_log_activity(api, e, ctx)
    url = await api.url(f"/api/v1/callLogs/{quote(e.record_id, safe='')}")
    if not isinstance(url, str):
        return url
    answer = await api.http.request("GET", url, accept=frozenset({404}))
    if not isinstance(answer, Response):
        return answer
    if answer.status == 404:
        return PermanentFailure(f"{CRM} call log {e.record_id} no longer exists")
    data = data_of(answer)
    call_log = data if isinstance(data, dict) else {}
    links = list(e.links)
    remarks = list(e.remarks)
    for index, audio in enumerate(e.audio):
        if index == 0 and not call_log.get("has_recording"):
            failure = await _upload(api, url, audio)
            if failure is not None:
                return failure
        elif index > 0:
            remarks.append(f"{audio.filename} not attached: a call log takes one recording")
    # The recording plays on the call log itself: the note carries only the rest.
    section = enrich.section_html(replace(e, audio=(), links=links, remarks=remarks))
    if not section:
        return Updated(f"{e.kind} added to the call log", e.written)
    if note_targets(call_log):
        placed = await beside(api, e, section, call_log, ctx)
        return placed or Updated(f"{e.kind} added to the call log", e.written)
    # No person, deal, lead or organization (no contact matched): the call log's own
    # activity -- Pipedrive keeps one per call log, and it is what users see of the call.
    activity = int_id(call_log.get("activity_id"))
    if activity is None:
        return unplaced(api, e, "call log", "it names no activity")
    ours = given if isinstance(given := call_log.get("note"), str) else None
    return await _into_activity_note(api, e, section, activity, ours)


async def _enrich_log_activity(api: PipedriveApi, e: Enrichment, ctx: WriteContext) -> EnrichResult:
    """The update of a call log of ours known by its activity (:data:`LOG_ACTIVITY`): the
    audio as files of the activity, the section beside it (or in its note, if unedited)."""
    activity = e.record_id.removeprefix(LOG_ACTIVITY)
    answer = await api.get(f"/api/v2/activities/{quote(activity, safe='')}", {})
    if not isinstance(answer, Response):
        return answer
    data = data_of(answer)
    if not isinstance(data, dict):
        return PermanentFailure(f"{CRM} activity {activity} of a call log no longer exists")
    for audio in e.audio:
        failure = await attach(api, activity, audio, ctx)
        if failure is not None:
            return failure
    section = enrich.section_html(e)
    if not section:
        return Updated(f"{e.kind} added to the call log's activity", None)
    if note_targets(data):
        placed = await beside(api, e, section, data, ctx)
        return placed or Updated(f"{e.kind} added beside the call log's activity", None)
    aid = int_id(activity)
    if aid is None:
        return unplaced(api, e, "call log", f"its activity {activity} has no numeric id")
    return await _into_activity_note(api, e, section, aid, None)


async def _into_activity_note(
    api: PipedriveApi, e: Enrichment, section: str, activity: int, ours: str | None
) -> EnrichResult:
    """The section appended to the note of the call log's activity, when nobody edited that
    note (empty, or still what the daemon wrote: ``ours``, the call log's immutable note, or
    what an earlier update of this call left); else nowhere, said."""
    path = f"/api/v2/activities/{activity}"
    answer = await api.get(path, {})
    if not isinstance(answer, Response):
        return answer
    data = data_of(answer)
    if not isinstance(data, dict):
        return unplaced(api, e, "call log", f"its activity {activity} no longer exists")
    note = data.get("note") if isinstance(data.get("note"), str) else None
    if enrich.added(note, section):
        return Updated(f"{e.kind} added to the call's activity", note)
    if enrich.plain(note or "") and not (
        enrich.same_note(note, e.written) or enrich.same_note(note, ours)
    ):
        return unplaced(api, e, "call log", f"a person edited the note of its activity {activity}")
    written = await append(api, path, note, section)
    if not isinstance(written, str):
        return written
    return Updated(f"{e.kind} added to the call's activity", written)


async def append(
    api: PipedriveApi, path: str, note: str | None, section: str
) -> str | LookupFailure:
    """``section`` appended to the note of the activity at ``path``; the new note."""
    written = f"{note or ''}{section}"
    url = await api.url(path)
    if not isinstance(url, str):
        return url
    patched = await api.http.request("PATCH", url, json_body={"note": written})
    return written if isinstance(patched, Response) else patched


def unplaced(api: PipedriveApi, e: Enrichment, record: str, why: str) -> PermanentFailure:
    """Nothing in Pipedrive can carry the section: parked as dead (counted in
    ``sscl_enrichments_total{outcome="dead"}``, its reason in the row), never dropped."""
    reason = (
        f"{e.kind} text and links not written to {CRM}: the {record} has no person, deal,"
        f" lead or organization for a note, and {why}"
    )
    log.warning("pipedrive.update.unplaced", writer=api.name, call=e.call.key, reason=reason)
    return PermanentFailure(reason)


def _form(audio: Audio, **fields: str) -> aiohttp.FormData:
    """The audio as a multipart ``file`` (from its start: a retry sends it again)."""
    audio.file.seek(0)
    data = aiohttp.FormData()
    data.add_field("file", audio.file, filename=audio.filename, content_type=audio.content_type)
    for name, value in fields.items():
        data.add_field(name, value)
    return data


async def _upload(api: PipedriveApi, log_url: str, audio: Audio) -> LookupFailure | None:
    answer = await api.http.request(
        "POST", f"{log_url}/recordings", data=lambda: _form(audio), accept=frozenset({409})
    )
    # 409: an earlier attempt attached it before its answer got lost.
    return answer if not isinstance(answer, Response) else None


async def attach(
    api: PipedriveApi, activity: str, audio: Audio, ctx: WriteContext
) -> LookupFailure | None:
    """The audio as a file of the activity, unless an earlier attempt attached it."""
    if ctx.uncertain or ctx.attempt > 1:
        files = await api.get("/api/v1/files", {"limit": "500"})
        if not isinstance(files, Response):
            return files
        data = data_of(files)
        for f in data if isinstance(data, list) else []:
            if (
                isinstance(f, dict)
                and str(f.get("activity_id")) == activity
                and f.get("name") == audio.filename
            ):
                return None
    url = await api.url("/api/v1/files")
    if not isinstance(url, str):
        return url
    answer = await api.http.request("POST", url, data=lambda: _form(audio, activity_id=activity))
    return answer if not isinstance(answer, Response) else None


async def beside(
    api: PipedriveApi,
    e: Enrichment,
    section: str,
    record: Mapping[str, object],
    ctx: WriteContext,
) -> LookupFailure | None:
    """The section as a note on what ``record`` (a call log or activity) is linked to
    (:func:`note_targets`: it shows in their timelines), marked so that a retry after an
    uncertain attempt finds it instead of adding a second."""
    targets = note_targets(record)
    marker = enrich.update_marker(e)
    if ctx.uncertain or ctx.attempt > 1:
        first, value = next(iter(targets.items()))
        notes = await api.get("/api/v1/notes", {first: str(value), "limit": "100"})
        if not isinstance(notes, Response):
            return notes
        data = data_of(notes)
        for note in data if isinstance(data, list) else []:
            if isinstance(note, dict) and marker in str(note.get("content", "")):
                return None
    body = {"content": f"{section}<p>{html.escape(marker)}</p>", **targets}
    answer = await api.post("/api/v1/notes", body)
    return answer if not isinstance(answer, Response) else None
