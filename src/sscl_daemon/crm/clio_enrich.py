"""Clio Manage updates after the create: recording and voicemail added to a logged phone
communication (``crm/plugin_enrich.py`` -> here -> Clio API v4).

* ``GET /communications/{id}.json?fields=id,body,matter,senders,receivers`` -- the note
  (``body``) and where files go: the communication's matter, else its contact. Clio keeps no
  documents on a communication itself, so the audio is a document of that matter or contact;
  with neither (an unknown caller) it is linked instead, with the reason in the section;
* a document upload, Clio's documented three steps: ``POST /documents.json?fields=id,
  latest_document_version{uuid,put_url,put_headers}`` (``name``, ``parent``) -> ``PUT`` the
  bytes to the signed ``put_url`` with its ``put_headers`` (cloud storage: no Clio token) ->
  ``PATCH /documents/{id}.json`` with the version's ``uuid`` and ``fully_uploaded: true``.
  After a retry ``GET /documents.json?matter_id|contact_id=`` first: a fully uploaded
  document of that name is the file attached;
* ``PATCH /communications/{id}.json`` -- ``body`` with the section appended, when it is still
  what the daemon wrote;
* else ``POST /notes.json`` -- a Matter or Contact note (``subject``, ``detail``) carrying the
  update's ``sscl-update`` line; after a retry ``GET /notes.json`` of that matter or contact
  first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import aiohttp

from sscl_daemon.crm import enrich
from sscl_daemon.crm.base import PermanentFailure, RetryLater, WriteContext
from sscl_daemon.crm.clio_mapping import data_of
from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.enrich import Enrichment
from sscl_daemon.crm.http import CrmHttp, Response
from sscl_daemon.crm.plugin_enrich import NotAttached, Note

if TYPE_CHECKING:
    from sscl_daemon.ringcentral.media import Audio

CRM: Final = "Clio"
COMMUNICATION_FIELDS: Final = "id,body,matter,senders,receivers"
DOCUMENT_FIELDS: Final = "id,latest_document_version{uuid,put_url,put_headers}"


@dataclass(frozen=True)
class Parent:
    """Where the call's documents and notes go: ``Matter`` or ``Contact`` and its id."""

    kind: str
    id: int

    @property
    def filter(self) -> dict[str, str]:
        return {f"{self.kind.lower()}_id": str(self.id)}


def parent_of(record: Mapping[str, object]) -> Parent | None:
    """The communication's matter, else the contact among its parties (pure)."""
    matter = record.get("matter")
    if isinstance(matter, dict) and isinstance(matter.get("id"), int):
        return Parent("Matter", matter["id"])
    for side in ("senders", "receivers"):
        parties = record.get(side)
        for party in parties if isinstance(parties, list) else []:
            if isinstance(party, dict) and party.get("type") == "Contact":
                pid = party.get("id")
                if isinstance(pid, int):
                    return Parent("Contact", pid)
    return None


def _rows(answer: Response) -> list[Mapping[str, object]]:
    data = data_of(answer)
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


class ClioCommunication:
    """One logged phone communication (:class:`~sscl_daemon.crm.plugin_enrich.Record`)."""

    html = False
    noun = "Clio communication"
    note_max: int | None = None

    def __init__(self, http: CrmHttp, storage: CrmHttp, base: str) -> None:
        self._http = http
        # Requests to the signed storage URLs: same session and limiter, no Clio token.
        self._storage = storage
        self._base = base

    def _url(self, e: Enrichment) -> str:
        return f"{self._base}/communications/{int(e.record_id)}.json"

    async def read(self, e: Enrichment) -> Note | LookupFailure | None:
        answer = await self._http.request(
            "GET", self._url(e), params={"fields": COMMUNICATION_FIELDS}, accept=frozenset({404})
        )
        if not isinstance(answer, Response):
            return answer
        record = data_of(answer) if answer.status != 404 else None
        if not isinstance(record, dict):
            return None
        body = record.get("body")
        return Note(body if isinstance(body, str) else None, parent_of(record))

    async def attach(
        self, e: Enrichment, note: Note, audio: Audio, ctx: WriteContext
    ) -> NotAttached | LookupFailure | None:
        parent = note.facts
        if not isinstance(parent, Parent):
            return NotAttached("the call has no Clio matter or contact to keep documents")
        if ctx.uncertain or ctx.attempt > 1:
            listed = await self._http.request(
                "GET",
                f"{self._base}/documents.json",
                params={
                    **parent.filter,
                    "query": audio.filename,
                    "fields": "id,name,latest_document_version{fully_uploaded}",
                },
            )
            if not isinstance(listed, Response):
                return listed
            for doc in _rows(listed):
                version = doc.get("latest_document_version")
                uploaded = isinstance(version, dict) and version.get("fully_uploaded") is True
                if doc.get("name") == audio.filename and uploaded:
                    return None
        made = await self._http.request(
            "POST",
            f"{self._base}/documents.json",
            params={"fields": DOCUMENT_FIELDS},
            json_body={
                "data": {"name": audio.filename, "parent": {"id": parent.id, "type": parent.kind}}
            },
        )
        if not isinstance(made, Response):
            return made
        made_doc = data_of(made)
        doc_id = made_doc.get("id") if isinstance(made_doc, dict) else None
        version = made_doc.get("latest_document_version") if isinstance(made_doc, dict) else None
        if not (doc_id and isinstance(version, dict) and version.get("put_url")):
            return RetryLater(f"{CRM} document create answered without an upload URL")
        headers = {
            str(h["name"]): str(h["value"])
            for h in version.get("put_headers") or []
            if isinstance(h, dict) and "name" in h and "value" in h
        }

        def stream() -> aiohttp.payload.Payload:
            audio.file.seek(0)
            return aiohttp.payload.IOBasePayload(audio.file, content_type=audio.content_type)

        put = await self._storage.request(
            "PUT", str(version["put_url"]), data=stream, headers=headers
        )
        if not isinstance(put, Response):
            return put
        done = await self._http.request(
            "PATCH",
            f"{self._base}/documents/{doc_id}.json",
            json_body={"data": {"uuid": version.get("uuid"), "fully_uploaded": True}},
        )
        return done if not isinstance(done, Response) else None

    async def rewrite(self, e: Enrichment, note: Note, text: str) -> LookupFailure | None:
        answer = await self._http.request("PATCH", self._url(e), json_body={"data": {"body": text}})
        return answer if not isinstance(answer, Response) else None

    async def beside(
        self, e: Enrichment, note: Note, body: str, ctx: WriteContext
    ) -> LookupFailure | None:
        parent = note.facts
        if not isinstance(parent, Parent):
            return PermanentFailure(
                f"{CRM} communication {e.record_id} was edited and has no matter or contact"
                " to leave a note on"
            )
        marker = enrich.update_marker(e)
        if ctx.uncertain or ctx.attempt > 1:
            listed = await self._http.request(
                "GET",
                f"{self._base}/notes.json",
                params={**parent.filter, "type": parent.kind, "fields": "id,detail"},
            )
            if not isinstance(listed, Response):
                return listed
            if any(marker in str(r.get("detail", "")) for r in _rows(listed)):
                return None
        answer = await self._http.request(
            "POST",
            f"{self._base}/notes.json",
            json_body={
                "data": {
                    "type": parent.kind,
                    parent.kind.lower(): {"id": parent.id},
                    "subject": f"{e.kind.value.capitalize()} of the call"[:255],
                    "detail": body,
                }
            },
        )
        return answer if not isinstance(answer, Response) else None
