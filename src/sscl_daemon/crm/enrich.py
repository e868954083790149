"""A call log's lifecycle after its create: what a writer is asked to add to the CRM record
when RingCentral has the call's recording or voicemail (enrichment runner -> here -> writer).

The create at call end stays fast. Afterwards, per logged call and writer, one update per
kind (:class:`Kind`: the recording, the voicemail with its transcription) is done exactly
once (``store/enrichments.py`` keeps a row per update, ``enrichment.py`` runs them). A
writer that can update its records implements :class:`Enricher`:
``enrich(Enrichment, ctx)`` answers :class:`Updated` (with the note it wrote, or None when it
left the note alone), ``RetryLater`` or ``PermanentFailure``.

Never overwriting what a person changed: the writer reads the record's note and compares it
with what the daemon last wrote (:attr:`Enrichment.written`, via :func:`same_note`, which
reads HTML as text and ignores spacing). Only an untouched note is rewritten (``written`` +
the new section); otherwise the new section goes beside it (a note of its own in the CRM),
and the person's text stays as they left it. An unknown ``written`` (a crash between the
create and remembering it) counts as touched.

Pure pieces here: which kinds a call expects (:func:`expected`), the section text, the
comparison. The ``recordings`` mode (``RecordingsMode``: upload, link, off) is a key of every
CRM writer (config/schema.py).
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sscl_daemon.calls.model import CallResult, CompletedCall
from sscl_daemon.config import RecordingsMode
from sscl_daemon.crm.base import PermanentFailure, RetryLater, WriteContext

if TYPE_CHECKING:
    from sscl_daemon.ringcentral.media import Audio


class Kind(enum.StrEnum):
    RECORDING = "recording"
    VOICEMAIL = "voicemail"


def expected(call: CompletedCall, mode: RecordingsMode) -> list[Kind]:
    """The updates a logged call will get: the recording only when it is uploaded (a link
    goes into the log at create), the voicemail (audio and transcription) always."""
    kinds: list[Kind] = []
    if call.recording_ids and mode is RecordingsMode.UPLOAD:
        kinds.append(Kind.RECORDING)
    if call.result is CallResult.VOICEMAIL:
        kinds.append(Kind.VOICEMAIL)
    return kinds


@dataclass
class Enrichment:
    """One update of a logged call's CRM record (``record_id``)."""

    kind: Kind
    call: CompletedCall
    record_id: str
    # What the daemon last wrote into the record's note (None: unknown).
    written: str | None
    # The audio to attach (upload mode; the runner closes it afterwards).
    audio: Sequence[Audio] = ()
    # The link of each audio (in order), for a writer that finds the file too large for
    # its CRM (Dynamics 365's upload limit) and links it instead.
    audio_links: Sequence[str] = ()
    # Links a RingCentral user can open (link mode, or what could not be uploaded).
    links: Sequence[str] = ()
    transcription: str | None = None
    # Why something announced is missing (too large to upload, no transcription ...).
    remarks: Sequence[str] = ()


@dataclass(frozen=True)
class Updated:
    """The record now has what the enrichment brought. ``written`` is the note as the writer
    left it when it rewrote the note, else None (the note was left alone)."""

    detail: str
    written: str | None = None


EnrichResult = Updated | RetryLater | PermanentFailure


@runtime_checkable
class Enricher(Protocol):
    """A writer that can add recordings, voicemail and transcriptions to its records."""

    @property
    def recordings(self) -> RecordingsMode: ...

    async def enrich(self, enrichment: Enrichment, ctx: WriteContext) -> EnrichResult: ...


# -- the section ---------------------------------------------------------------------------------


def section_lines(e: Enrichment) -> list[tuple[str, str]]:
    """``(label, value)`` lines of what this update adds, in reading order."""
    lines: list[tuple[str, str]] = []
    what = "Recording" if e.kind is Kind.RECORDING else "Voicemail"
    for audio in e.audio:
        lines.append((what, f"attached ({audio.filename})"))
    lines.extend((what, link) for link in e.links)
    if e.transcription:
        lines.append(("Voicemail transcription", e.transcription))
    lines.extend(("Note", remark) for remark in e.remarks)
    return lines


# Marks a note left beside a person's edit for one update, so a retry finds it.
UPDATE_LABEL = "sscl-update"


def update_marker(e: Enrichment) -> str:
    """``sscl-update: <call key>#<kind>`` -- the line a note left for this update carries."""
    return f"{UPDATE_LABEL}: {e.call.key}#{e.kind.value}"


def section_text(e: Enrichment) -> str:
    return "\n".join(f"{label}: {value}" for label, value in section_lines(e))


def section_html(e: Enrichment) -> str:
    parts = []
    for label, value in section_lines(e):
        shown = html.escape(value)
        if value.startswith("https://"):
            shown = f'<a href="{shown}">{shown}</a>'
        parts.append(f"<p>{html.escape(label)}: {shown}</p>")
    return "".join(parts)


_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def plain(text: str) -> str:
    """A note as a person reads it: tags removed, entities decoded, spacing collapsed."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def added(current: str | None, section: str) -> bool:
    """Whether the note already ends with this update's section (an attempt that was not
    recorded wrote it: the update is done)."""
    return current is not None and plain(current).endswith(plain(section))


def same_note(current: str | None, written: str | None) -> bool:
    """Whether the record's note is still what the daemon wrote (a person did not edit it)."""
    if written is None or current is None:
        return False
    return plain(current) == plain(written)
