"""Pipedrive calls as *activities* (``log_as = "activity"``): what Pipedrive users see in
their timeline, and what App Connect writes (dispatch -> here -> Pipedrive).

The Pipedrive writer (``crm/pipedrive.py``) with two steps replaced:

* the create: ``POST /api/v2/activities`` with ``subject``, ``type`` (the configured
  ``activity_type``, Pipedrive's default call type ``call``), ``done: true``, ``due_date`` /
  ``due_time`` (the call's start in UTC, as the API takes them), ``duration`` (``HH:MM`` of
  talk, rounded up to a whole minute), ``note`` (HTML, with our key), ``owner_id``,
  ``participants`` (the person, primary), ``org_id`` and ``deal_id``;
* our own earlier attempt: the call-log writer's check, an activity updated since an hour
  before the call whose note carries our key (then the activity itself is the answer); in
  an hour too busy for that read, the person's activities only (:meth:`_narrow_ours`).

Unlike call logs, activities can be updated, so the recording and voicemail go into the same
record: the audio as a file of the activity (``POST /v1/files`` with ``activity_id``; after
an uncertain attempt ``GET /v1/files`` finds it by name), the section appended to the note if
nobody edited it (``PATCH /api/v2/activities/{id}``), else in a note on what the activity is
linked to (its person, deal, lead or organization); with none of them the update is parked
as dead with that reason (never dropped silently).
:func:`build` is the plug-in's factory: it picks this writer or the call-log one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final
from urllib.parse import quote

import aiohttp

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import PipedriveLog, PipedriveOptions, WriterSettings
from sscl_daemon.crm import content, enrich
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    PermanentFailure,
    RetryLater,
    WriteContext,
    Writer,
    WriteResult,
)
from sscl_daemon.crm.contacts import Contact, LookupFailure
from sscl_daemon.crm.deals import Deal
from sscl_daemon.crm.enrich import Enrichment, EnrichResult, Updated
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.crm.pipedrive_api import CRM
from sscl_daemon.crm.pipedrive_enrich import CLIENT_ACTIVITY, append, attach, beside, unplaced
from sscl_daemon.crm.pipedrive_mapping import int_id
from sscl_daemon.crm.pipedrive_reads import data_of, note_targets

SCAN_PAGES: Final = 4
WINDOW: Final = timedelta(hours=1)


def build(settings: WriterSettings, session: aiohttp.ClientSession) -> Writer:
    """The Pipedrive writer ``log_as`` asks for (the plug-in's factory)."""
    options = settings.options
    if isinstance(options, PipedriveOptions) and options.log_as is PipedriveLog.ACTIVITY:
        return PipedriveActivityWriter(settings, session)
    return PipedriveWriter(settings, session)


def duration(call: CompletedCall) -> str:
    """Talk time as Pipedrive's ``HH:MM``, rounded up (a 10 s call is ``00:01``)."""
    total = content.minutes(content.talk_seconds(call))
    return f"{total // 60:02d}:{total % 60:02d}"


class PipedriveActivityWriter(PipedriveWriter):
    """Writes each call as a done activity of the call type."""

    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        super().__init__(settings, session)
        options = settings.options
        assert isinstance(options, PipedriveOptions)
        self.activity_type = options.activity_type

    def activity_body(
        self, call: CompletedCall, person: Contact | None, owner: int | None, deal: Deal | None
    ) -> dict[str, object]:
        name = person.name if person else None
        start = content.utc(call.start_time)
        body: dict[str, object] = {
            "subject": self._style.subject(call, name),
            "type": self.activity_type,
            "done": True,
            "due_date": start.strftime("%Y-%m-%d"),
            "due_time": start.strftime("%H:%M"),
            "duration": duration(call),
            "note": self._style.note_html(call, name),
        }
        if owner is not None:
            body["owner_id"] = owner
        if person is not None and int_id(person.id) is not None:
            body["participants"] = [{"person_id": int_id(person.id), "primary": True}]
            if int_id(person.org_id) is not None:
                body["org_id"] = int_id(person.org_id)
        if deal is not None:
            body["deal_id"] = int(deal.id)
        return body

    async def _create(
        self, call: CompletedCall, person: Contact | None, owner: int | None, deal: Deal | None
    ) -> WriteResult:
        body = self.activity_body(call, person, owner, deal)
        answer = await self.api.post("/api/v2/activities", body)
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        record_id = data.get("id") if isinstance(data, dict) else None
        if record_id is None:
            return RetryLater(f"{CRM} activity answer without an id")
        return Created(str(record_id), str(body["note"]))

    async def _narrow_ours(
        self, call: CompletedCall, person: Contact | None
    ) -> AlreadyExisted | LookupFailure | None:
        since = content.iso_utc(content.utc(call.start_time) - WINDOW).replace(".000Z", "Z")
        params = {"updated_since": since, "limit": "100"}
        if person is not None:
            params["person_id"] = person.id
        for _ in range(SCAN_PAGES):
            answer = await self.api.get("/api/v2/activities", params)
            if not isinstance(answer, Response):
                return answer
            data = data_of(answer)
            for activity in data if isinstance(data, list) else []:
                note = activity.get("note") if isinstance(activity, dict) else None
                if content.recognise(call, note if isinstance(note, str) else None) is (
                    content.Match.OURS
                ):
                    return AlreadyExisted(str(activity["id"]), ours=True)
            extra = answer.object().get("additional_data")
            cursor = extra.get("next_cursor") if isinstance(extra, dict) else None
            if not cursor:
                return None
            params["cursor"] = str(cursor)
        return None

    async def _own_activity(
        self, call: CompletedCall, activity: str, scanned: bool
    ) -> AlreadyExisted | LookupFailure:
        """Our key in an activity's note: the activity is our log of the call itself."""
        return AlreadyExisted(activity, ours=True)

    # -- updates after the create ----------------------------------------------------------

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        if e.record_id.startswith(CLIENT_ACTIVITY):
            return Updated("a client's activity is not updated", e.written)
        path = f"/api/v2/activities/{quote(e.record_id, safe='')}"
        answer = await self.api.get(path, {})
        if not isinstance(answer, Response):
            return answer
        data = data_of(answer)
        if not isinstance(data, dict):
            return PermanentFailure(f"{CRM} activity {e.record_id} no longer exists")
        note = data.get("note") if isinstance(data.get("note"), str) else None
        section = enrich.section_html(e)
        if section and enrich.added(note, section):
            return Updated(f"{e.kind} added to the activity", note)
        for audio in e.audio:
            failure = await attach(self.api, e.record_id, audio, ctx)
            if failure is not None:
                return failure
        if section and enrich.same_note(note, e.written):
            written = await append(self.api, path, note, section)
            if not isinstance(written, str):
                return written
            return Updated(f"{e.kind} added to the activity", written)
        if not section:
            return Updated(f"{e.kind} added to the activity", None)
        if not note_targets(data):
            return unplaced(self.api, e, "activity", "a person edited its note")
        failure = await beside(self.api, e, section, data, ctx)
        if failure is not None:
            return failure
        return Updated(f"{e.kind} added beside the edited activity note", None)
