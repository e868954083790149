"""The update after the create, as the plug-in writers Zoho CRM, Dynamics 365, Clio and Bullhorn
do it (``enrichment.py`` -> the writer's ``enrich`` -> here -> the writer's :class:`Record`).

Every one of them follows the same steps, only the requests differ (each writer's
``*_enrich.py`` says which, in its vendor's documented way):

1. read the record's note (gone: a permanent failure);
2. attach each audio file where the CRM keeps files for the record, unless an earlier attempt
   did (a retry looks first); a file the CRM cannot take (too large for it, or no files
   where the record is) is linked instead, with the reason in the section;
3. the section (``crm/enrich.py``: what was attached, links, the transcription, remarks) is
   appended to the note when the note is still what the daemon wrote (and the whole fits the
   CRM's length limit); else it goes into a note of its own beside the record, carrying the update's ``sscl-update`` line so a retry
   finds it -- what a person wrote is never overwritten. A note that already ends with the
   section (an attempt whose answer was lost) is the update done.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import aiohttp

from sscl_daemon.crm import enrich
from sscl_daemon.crm.base import PermanentFailure, WriteContext
from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.enrich import Enrichment, EnrichResult, Updated

if TYPE_CHECKING:
    from sscl_daemon.ringcentral.media import Audio


@dataclass(frozen=True)
class NotAttached:
    """Why a file cannot go to the CRM (it is linked instead)."""

    reason: str


@dataclass(frozen=True)
class Note:
    """A record's note as read, and what else the writer needs of the record."""

    text: str | None
    # What the writer keeps of the record for the next steps (a parent, a person ...).
    facts: object = None


class Record(Protocol):
    """One writer's requests on one logged record."""

    # The record's note is HTML (Bullhorn comments) rather than plain text.
    html: bool
    # What the record is called in the CRM, for results and reasons.
    noun: str
    # The note's length limit (None: none to respect): a longer note goes beside.
    note_max: int | None

    async def read(self, e: Enrichment) -> Note | LookupFailure | None:
        """The note (None: the record no longer exists)."""
        ...

    async def attach(
        self, e: Enrichment, note: Note, audio: Audio, ctx: WriteContext
    ) -> NotAttached | LookupFailure | None:
        """Attach ``audio`` (None: it is attached, now or by an earlier attempt)."""
        ...

    async def rewrite(self, e: Enrichment, note: Note, text: str) -> LookupFailure | None:
        """Replace the record's note with ``text``."""
        ...

    async def beside(
        self, e: Enrichment, note: Note, body: str, ctx: WriteContext
    ) -> LookupFailure | None:
        """Leave ``body`` (ending with the update's marker) in a note of its own, unless a
        retry finds one with the marker already."""
        ...


def audio_form(audio: Audio, name: str = "file") -> Callable[[], aiohttp.FormData]:
    """The request body of a multipart upload of ``audio`` as the part ``name``, made afresh
    (the file read from its start) for each attempt of the request."""

    def form() -> aiohttp.FormData:
        audio.file.seek(0)
        data = aiohttp.FormData()
        data.add_field(name, audio.file, filename=audio.filename, content_type=audio.content_type)
        return data

    return form


def joined(note: str, section: str, as_html: bool) -> str:
    """The note with the section appended (a new line between plain-text parts)."""
    return f"{note}{section}" if as_html else f"{note}\n{section}"


def marked(e: Enrichment, as_html: bool) -> str:
    """The section of a note left beside the record, with the update's marker line."""
    marker = enrich.update_marker(e)
    if as_html:
        return f"{enrich.section_html(e)}<p>{html.escape(marker)}</p>"
    return f"{enrich.section_text(e)}\n{marker}"


async def enrich_record(record: Record, e: Enrichment, ctx: WriteContext) -> EnrichResult:
    """The steps above for one update of one record."""
    note = await record.read(e)
    if note is None:
        return PermanentFailure(f"{record.noun} {e.record_id} no longer exists")
    if not isinstance(note, Note):
        return note
    attached: list[Audio] = []
    links, remarks = list(e.links), list(e.remarks)
    for index, audio in enumerate(e.audio):
        done = await record.attach(e, note, audio, ctx)
        if isinstance(done, NotAttached):
            if index < len(e.audio_links):
                links.append(e.audio_links[index])
            remarks.append(f"{audio.filename} not attached: {done.reason}")
        elif done is not None:
            return done
        else:
            attached.append(audio)
    shown = replace(e, audio=attached, links=links, remarks=remarks)
    section = enrich.section_html(shown) if record.html else enrich.section_text(shown)
    if not section:
        return Updated(f"{e.kind} attached to the {record.noun}", e.written)
    if enrich.added(note.text, section):
        return Updated(f"{e.kind} added to the {record.noun}", note.text)
    text = joined(note.text or "", section, record.html)
    fits = record.note_max is None or len(text) <= record.note_max
    if note.text is not None and fits and enrich.same_note(note.text, e.written):
        failure = await record.rewrite(e, note, text)
        if failure is not None:
            return failure
        return Updated(f"{e.kind} added to the {record.noun}", text)
    failure = await record.beside(e, note, marked(shown, record.html), ctx)
    if failure is not None:
        return failure
    # Edited by a person, or too long for the field: a note of its own.
    return Updated(f"{e.kind} added in a note beside the {record.noun}", None)
