"""The Clio stand-in's routes for the daemon's updates after the create: a communication read
and updated, documents uploaded to a matter or contact, notes (``crm/clio_enrich.py`` ->
here; ``simulator/crm/clio.py`` mounts them).

After Clio's API v4 reference ("Documents": "Uploading a document"; Communications; Notes):

* ``GET``/``PATCH /api/v4/communications/{id}.json`` -- ``fields``; a PATCH takes ``data``
  with communication fields (``body``, ``subject`` ...); 404 for an unknown id;
* ``POST /api/v4/documents.json`` -- ``data.name`` and ``data.parent`` (``{"id", "type":
  "Matter"|"Contact"}``, existing); with ``fields=latest_document_version{uuid,put_url,
  put_headers}`` the answer names a signed ``put_url`` (here :data:`STORAGE` on this server)
  and the headers the PUT must send;
* ``PUT /storage/{uuid}?X-Amz-Signature=...`` -- the bytes, as cloud storage takes them:
  no Clio token (a request carrying ``Authorization`` besides the signature is refused, as
  S3 refuses two authentication mechanisms), the ``put_headers`` present;
* ``PATCH /api/v4/documents/{id}.json`` -- ``uuid`` of the version and ``fully_uploaded:
  true`` (refused before the bytes arrived); only then is the document listed by
  ``GET /api/v4/documents.json?matter_id|contact_id=&query=`` with a fully uploaded version;
* ``POST /api/v4/notes.json`` -- ``type`` Matter or Contact, the ``matter``/``contact``,
  ``subject`` and ``detail``; ``GET /api/v4/notes.json?matter_id|contact_id=&type=``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from aiohttp import web

from sscl_daemon.simulator.crm.common import json_response

if TYPE_CHECKING:
    from sscl_daemon.simulator.crm.clio import ClioState

API: Final = "/api/v4"
STORAGE: Final = "/storage"
SSE_HEADER: Final = "x-amz-server-side-encryption"
# The largest body the stand-in takes (a document's bytes).
UPLOAD_MAX: Final = 100 * 1024 * 1024


def _error(status: int, kind: str, message: str) -> web.Response:
    return json_response({"error": {"type": kind, "message": message}}, status)


def _parent(state: ClioState, value: object) -> tuple[str, int] | None:
    if not isinstance(value, dict) or not isinstance(value.get("id"), int):
        return None
    table = {"Matter": state.matters, "Contact": state.contacts}.get(str(value.get("type")))
    return (str(value["type"]), value["id"]) if table and value["id"] in table else None


def _of_parent(request: web.Request, record: dict[str, object]) -> bool:
    q = request.query
    parent = record.get("parent")
    if not isinstance(parent, tuple):
        return False
    kind, pid = parent
    return q.get(f"{str(kind).lower()}_id") == str(pid)


Shown = Callable[[web.Request, dict[str, object]], dict[str, object]]


def add_routes(
    app: web.Application, state: ClioState, fields: frozenset[str], shown: Shown
) -> None:
    """Mount the routes; ``fields`` are the communication fields, ``shown(request, record)``
    the stand-in's ``fields`` selection."""

    async def read(request: web.Request) -> web.Response:
        record = state.communications.get(int(request.match_info["id"]))
        if record is None:
            return _error(404, "NotFound", "communication not found")
        return json_response({"data": shown(request, record)})

    async def update(request: web.Request) -> web.Response:
        record = state.communications.get(int(request.match_info["id"]))
        if record is None:
            return _error(404, "NotFound", "communication not found")
        body = await request.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or set(data) - fields:
            return _error(422, "ValidationError", "data must hold communication fields")
        if not isinstance(data.get("body", ""), str):
            return _error(422, "ValidationError", "body must be text")
        record.update(data)
        state.updates.append((int(record["id"]), dict(data)))  # type: ignore[call-overload]
        return json_response({"data": shown(request, record)})

    async def create_document(request: web.Request) -> web.Response:
        body = await request.json()
        data = body.get("data") if isinstance(body, dict) else None
        name = data.get("name") if isinstance(data, dict) else None
        parent = _parent(state, data.get("parent")) if isinstance(data, dict) else None
        if not isinstance(name, str) or not name or parent is None:
            return _error(422, "ValidationError", "name and an existing parent are required")
        did, version = state.new_id(), str(uuid.uuid4())
        signature = secrets.token_hex(8)
        state.documents[did] = {
            "id": did,
            "name": name,
            "parent": parent,
            "uuid": version,
            "signature": signature,
            "data": None,
            "fully_uploaded": False,
        }
        url = f"{request.url.origin()}{STORAGE}/{version}?X-Amz-Signature={signature}"
        latest = {
            "uuid": version,
            "put_url": url,
            "put_headers": [{"name": SSE_HEADER, "value": "AES256"}],
            "fully_uploaded": False,
        }
        return json_response({"data": {"id": did, "latest_document_version": latest}}, 201)

    async def store(request: web.Request) -> web.Response:
        doc = next(
            (d for d in state.documents.values() if d["uuid"] == request.match_info["uuid"]),
            None,
        )
        if doc is None or request.query.get("X-Amz-Signature") != doc["signature"]:
            return web.Response(status=403, text="SignatureDoesNotMatch")
        if "Authorization" in request.headers or request.headers.get(SSE_HEADER) != "AES256":
            return web.Response(status=400, text="InvalidArgument: signed headers or auth")
        doc["data"] = await request.read()
        return web.Response(status=200)

    async def finish_document(request: web.Request) -> web.Response:
        doc = state.documents.get(int(request.match_info["id"]))
        if doc is None:
            return _error(404, "NotFound", "document not found")
        body = await request.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("uuid") != doc["uuid"]:
            return _error(422, "ValidationError", "uuid of the latest version required")
        if data.get("fully_uploaded") is True:
            if doc["data"] is None:
                return _error(422, "ValidationError", "nothing was uploaded")
            doc["fully_uploaded"] = True
        return json_response({"data": {"id": doc["id"]}})

    async def documents(request: web.Request) -> web.Response:
        query = request.query.get("query", "")
        rows = [
            {
                "id": d["id"],
                "name": d["name"],
                "latest_document_version": {"fully_uploaded": d["fully_uploaded"]},
            }
            for d in state.documents.values()
            if _of_parent(request, d) and query in str(d["name"])
        ]
        return json_response({"data": rows})

    async def create_note(request: web.Request) -> web.Response:
        body = await request.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("type") not in ("Matter", "Contact"):
            return _error(422, "ValidationError", "type must be Matter or Contact")
        kind = str(data["type"])
        owner = data.get(kind.lower())
        parent = _parent(state, {**owner, "type": kind}) if isinstance(owner, dict) else None
        if parent is None or not isinstance(data.get("detail"), str):
            return _error(422, "ValidationError", f"an existing {kind.lower()} and detail")
        nid = state.new_id()
        state.notes[nid] = {
            "id": nid,
            "parent": parent,
            "subject": data.get("subject"),
            "detail": data["detail"],
        }
        return json_response({"data": {"id": nid}}, 201)

    async def notes(request: web.Request) -> web.Response:
        rows = [
            {"id": n["id"], "detail": n["detail"], "subject": n["subject"]}
            for n in state.notes.values()
            if _of_parent(request, n)
        ]
        return json_response({"data": rows})

    app.router.add_get(API + "/communications/{id:[0-9]+}.json", read)
    app.router.add_patch(API + "/communications/{id:[0-9]+}.json", update)
    app.router.add_post(API + "/documents.json", create_document)
    app.router.add_get(API + "/documents.json", documents)
    app.router.add_patch(API + "/documents/{id:[0-9]+}.json", finish_document)
    app.router.add_put(STORAGE + "/{uuid}", store)
    app.router.add_post(API + "/notes.json", create_note)
    app.router.add_get(API + "/notes.json", notes)
