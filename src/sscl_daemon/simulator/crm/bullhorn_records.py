"""The Bullhorn stand-in's routes for the daemon's updates after the create: a Note read and
updated, files attached to a person (``crm/bullhorn_enrich.py`` -> here;
``simulator/crm/bullhorn.py`` mounts them).

After Bullhorn's REST reference (``bullhorn/rest-api-docs``: entity GET/POST, file PUT,
fileAttachments):

* ``GET entity/Note/{id}?fields=`` -- ``{"data": {...}}``; ``personReference`` carries the
  person's ``_subtype`` (ClientContact, Candidate, Lead) as Bullhorn answers a to-one
  reference; 404 ``errors.entityNotFound``;
* ``POST entity/Note/{id}`` -- an update, checked like the create (the Note's fields only);
  answers ``changeType: UPDATE``;
* ``PUT file/{entity}/{id}/raw?externalID=&fileType=SAMPLE&name=`` -- a ``multipart/form-data``
  ``file``; only the entities Bullhorn keeps files for (a Lead is refused), ``externalID`` and
  ``fileType`` required; answers ``{"fileId": n}``;
* ``GET entity/{entity}/{id}/fileAttachments?fields=`` -- ``{"data": [...]}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from aiohttp import web

from sscl_daemon.simulator.crm.common import json_response
from sscl_daemon.simulator.crm.uploads import multipart_fields

if TYPE_CHECKING:
    from sscl_daemon.simulator.crm.bullhorn import BullhornState

# The entities of the stand-in that take files (Bullhorn: also ClientCorporation, JobOrder,
# Opportunity, Placement, which the stand-in does not hold).
FILE_ENTITIES: Final = frozenset({"Candidate", "ClientContact"})
UPLOAD_MAX: Final = 100 * 1024 * 1024

CheckNote = Callable[["BullhornState", object], dict[str, object]]


def _fail(status: int, key: str, message: str) -> web.Response:
    return json_response(
        {"errorMessage": message, "errorMessageKey": key, "errorCode": status}, status
    )


def add_routes(
    app: web.Application,
    state: BullhornState,
    base: str,
    fields: frozenset[str],
    check_note: CheckNote,
) -> None:
    """Mount the routes under ``base``; ``fields`` a Note's writable fields, ``check_note``
    the create's checks (raising the stand-in's error, which its gate answers)."""

    def entity_of(pid: object) -> str | None:
        return next((e for e, rows in state.people.items() if pid in rows), None)

    def shown(row: dict[str, object], request: web.Request) -> dict[str, object]:
        wanted = [f for f in request.query.get("fields", "id").split(",") if f]
        picked = {f: row.get(f) for f in wanted}
        ref = picked.get("personReference")
        if isinstance(ref, dict):
            picked["personReference"] = {**ref, "_subtype": entity_of(ref.get("id"))}
        return picked

    async def read_note(request: web.Request) -> web.Response:
        row = state.notes.get(int(request.match_info["id"]))
        if row is None or row.get("isDeleted"):
            return _fail(404, "errors.entityNotFound", "Note not found")
        return json_response({"data": shown(row, request)})

    async def update_note(request: web.Request) -> web.Response:
        nid = int(request.match_info["id"])
        row = state.notes.get(nid)
        if row is None:
            return _fail(404, "errors.entityNotFound", "Note not found")
        body = await request.json()
        if not isinstance(body, dict):
            return _fail(400, "errors.cannotPersistEntity", "the body must be a JSON object")
        current = {k: v for k, v in row.items() if k in fields}
        row.update(check_note(state, {**current, **body}))
        state.note_updates.append((nid, dict(body)))
        return json_response(
            {"changedEntityType": "Note", "changedEntityId": nid, "changeType": "UPDATE"}
        )

    async def put_file(request: web.Request) -> web.Response:
        entity, pid = request.match_info["entity"], int(request.match_info["id"])
        if entity not in FILE_ENTITIES:
            return _fail(400, "errors.badEntity", f"{entity} does not support file attachments")
        if pid not in state.people[entity]:
            return _fail(404, "errors.entityNotFound", f"{entity} {pid} not found")
        q = request.query
        if not q.get("externalID") or q.get("fileType") != "SAMPLE":
            return _fail(400, "errors.missingParameter", "externalID and fileType=SAMPLE")
        part = (await multipart_fields(request)).get("file")
        if part is None:
            return _fail(400, "errors.missingParameter", "a multipart file part is required")
        fid = state.new_id()
        state.files[fid] = {
            "id": fid,
            "entity": (entity, pid),
            "externalID": q["externalID"],
            "name": q.get("name") or part.filename,
            "contentType": q.get("contentType") or part.content_type,
            "fileSize": len(part.data),
            "data": part.data,
        }
        return json_response({"fileId": fid})

    async def attachments(request: web.Request) -> web.Response:
        owner = (request.match_info["entity"], int(request.match_info["id"]))
        rows = [
            {k: v for k, v in f.items() if k not in ("data", "entity")}
            for f in state.files.values()
            if f["entity"] == owner
        ]
        return json_response({"data": [shown(r, request) for r in rows]})

    app.router.add_get(base + "/entity/Note/{id:[0-9]+}", read_note)
    app.router.add_post(base + "/entity/Note/{id:[0-9]+}", update_note)
    app.router.add_put(base + "/file/{entity}/{id:[0-9]+}/raw", put_file)
    app.router.add_get(base + "/entity/{entity}/{id:[0-9]+}/fileAttachments", attachments)
