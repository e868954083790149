"""Bullhorn updates after the create: recording and voicemail added to a logged Note
(``crm/plugin_enrich.py`` -> here -> Bullhorn REST under the session's ``restUrl``).

* ``GET entity/Note/{id}?fields=comments,action,personReference,commentingPerson`` -- the note
  (HTML ``comments``) and the person it is about (``personReference`` with its
  ``_subtype``); 404: gone;
* files: Bullhorn attaches files to Candidates, ClientContacts, ClientCorporations, JobOrders,
  Opportunities and Placements, not to Notes (nor Leads): the audio goes to the Note's person
  -- ``PUT file/{entity}/{id}/raw?externalID=&fileType=SAMPLE&name=&contentType=`` with the
  file as multipart ``file`` -- and is named in the Note. The ``externalID`` is derived from
  the call and the file, so a retry first reads ``GET entity/{entity}/{id}/fileAttachments``
  for it. A Lead's audio is linked in the Note instead, with the reason;
* ``POST entity/Note/{id}`` (in Bullhorn, POST updates) -- ``comments`` with the section
  appended, when they are still what the daemon wrote;
* else a Note of its own on the same person (``PUT entity/Note``, same action and commenting
  person) with the update's ``sscl-update`` line and an ``externalID`` derived from the
  update, looked for with ``GET query/Note?where=externalID=...`` after a retry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sscl_daemon.crm.base import WriteContext
from sscl_daemon.crm.bullhorn_session import bullhorn_string
from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.enrich import Enrichment
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.plugin_enrich import NotAttached, Note, audio_form

if TYPE_CHECKING:
    from sscl_daemon.crm.bullhorn import BullhornWriter
    from sscl_daemon.ringcentral.media import Audio

# The person entities Bullhorn keeps files for (its /file reference).
FILE_ENTITIES: Final = frozenset({"Candidate", "ClientContact"})
NOTE_FIELDS: Final = "comments,action,personReference,commentingPerson"


def derived_id(*parts: str) -> str:
    """An ``externalID`` (at most 100 characters) the same for the same call and thing."""
    return "sscl-" + hashlib.sha256("#".join(parts).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class NoteFacts:
    """What the update needs of the Note besides its comments."""

    person: int | None
    entity: str | None
    action: str | None
    commenter: int | None


def _id_of(value: object) -> int | None:
    ref = value.get("id") if isinstance(value, dict) else None
    return ref if isinstance(ref, int) else None


def facts_of(row: Mapping[str, object]) -> NoteFacts:
    ref = row.get("personReference")
    entity = ref.get("_subtype") if isinstance(ref, dict) else None
    action = row.get("action")
    return NoteFacts(
        _id_of(ref),
        entity if isinstance(entity, str) else None,
        action if isinstance(action, str) else None,
        _id_of(row.get("commentingPerson")),
    )


class BullhornNote:
    """One logged Note (:class:`~sscl_daemon.crm.plugin_enrich.Record`)."""

    html = True
    noun = "Bullhorn note"
    note_max: int | None = None

    def __init__(self, writer: BullhornWriter) -> None:
        self._w = writer

    async def read(self, e: Enrichment) -> Note | LookupFailure | None:
        answer = await self._w._call(
            "GET",
            f"entity/Note/{int(e.record_id)}",
            params={"fields": NOTE_FIELDS},
            accept=frozenset({404}),
        )
        if not isinstance(answer, Response):
            return answer
        row = answer.object().get("data")
        if answer.status == 404 or not isinstance(row, dict):
            return None
        comments = row.get("comments")
        return Note(comments if isinstance(comments, str) else None, facts_of(row))

    async def attach(
        self, e: Enrichment, note: Note, audio: Audio, ctx: WriteContext
    ) -> NotAttached | LookupFailure | None:
        facts = note.facts
        if not isinstance(facts, NoteFacts) or facts.person is None:
            return NotAttached("the Note is about nobody")
        if facts.entity not in FILE_ENTITIES:
            return NotAttached(f"Bullhorn keeps no files for a {facts.entity or 'person'}")
        external = derived_id(e.call.key, audio.filename)
        where = f"{facts.entity}/{facts.person}"
        if ctx.uncertain or ctx.attempt > 1:
            listed = await self._w._rows(
                f"entity/{where}/fileAttachments", {"fields": "id,externalID,name"}
            )
            if not isinstance(listed, list):
                return listed
            if any(r.get("externalID") == external for r in listed):
                return None
        base = await self._w._base_url()
        if not isinstance(base, str):
            return base

        answer = await self._w.http.request(
            "PUT",
            f"{base}file/{where}/raw",
            params={
                "externalID": external,
                "fileType": "SAMPLE",
                "name": audio.filename,
                "contentType": audio.content_type,
                "description": f"{e.kind.value.capitalize()} of the call {e.call.key}",
            },
            data=audio_form(audio),
        )
        return answer if not isinstance(answer, Response) else None

    async def rewrite(self, e: Enrichment, note: Note, text: str) -> LookupFailure | None:
        answer = await self._w._call(
            "POST", f"entity/Note/{int(e.record_id)}", body={"comments": text}
        )
        return answer if not isinstance(answer, Response) else None

    async def beside(
        self, e: Enrichment, note: Note, body: str, ctx: WriteContext
    ) -> LookupFailure | None:

        facts = note.facts
        assert isinstance(facts, NoteFacts)
        external = derived_id(e.call.key, e.kind.value)
        if ctx.uncertain or ctx.attempt > 1:
            rows = await self._w._rows(
                "query/Note",
                {"where": f"externalID={bullhorn_string(external)}", "fields": "id"},
            )
            if not isinstance(rows, list):
                return rows
            if rows:
                return None
        record: dict[str, object] = {
            "comments": body,
            "personReference": {"id": facts.person},
            "externalID": external,
            "dateAdded": int(e.call.end_time.timestamp() * 1000),
        }
        if facts.action:
            record["action"] = facts.action
        if facts.commenter is not None:
            record["commentingPerson"] = {"id": facts.commenter}
        answer = await self._w._call("PUT", "entity/Note", body=record)
        return answer if not isinstance(answer, Response) else None
