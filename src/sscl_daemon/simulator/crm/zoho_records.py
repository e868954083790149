"""The Zoho CRM stand-in's single-record routes on Calls: what the daemon's updates after the
create use (``crm/zoho_enrich.py`` -> here; ``simulator/crm/zoho.py`` mounts them).

After Zoho's API reference (get a record, update a record, upload/get attachments,
create/get notes of a record):

* ``GET /crm/v7/Calls/{id}?fields=...`` -- ``{"data": [record]}``; 204 with no body for an
  unknown id;
* ``PUT /crm/v7/Calls/{id}`` -- ``{"data": [{fields}]}``; text lengths checked like the insert,
  an unknown field refused (``INVALID_DATA``); answer ``{"data": [{"code": "SUCCESS", ...}]}``;
* ``POST /crm/v7/Calls/{id}/Attachments`` -- ``multipart/form-data`` with a ``file`` part
  (at most 20 MB); ``GET`` lists ``id``, ``File_Name``, ``Size`` (204 when none);
* ``POST /crm/v7/Calls/{id}/Notes`` -- ``{"data": [{"Note_Title", "Note_Content"}]}``
  (``Note_Content`` mandatory); ``GET`` lists them (204 when none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aiohttp import web

from sscl_daemon.simulator.crm.common import json_response
from sscl_daemon.simulator.crm.uploads import multipart_fields

if TYPE_CHECKING:
    from sscl_daemon.simulator.crm.zoho import ZohoState

ATTACHMENT_MAX: Final = 20 * 1024 * 1024
NOTE_MAX: Final = 32_000


def _success(rid: str, message: str) -> dict[str, object]:
    return {"code": "SUCCESS", "details": {"id": rid}, "message": message, "status": "success"}


def _failure(code: str, message: str, status: int, **details: object) -> web.Response:
    return json_response(
        {"code": code, "details": details, "message": message, "status": "error"}, status
    )


def _listed(rows: list[dict[str, object]], fields: str | None) -> web.Response:
    if not rows:
        return web.Response(status=204)
    wanted = [f for f in (fields or "").split(",") if f]
    shown = [{k: v for k, v in r.items() if not wanted or k in wanted or k == "id"} for r in rows]
    return json_response({"data": shown, "info": {"count": len(shown), "more_records": False}})


def add_routes(app: web.Application, state: ZohoState, text_limits: dict[str, int]) -> None:
    """Mount the routes on ``app``; ``text_limits`` are the Calls text fields' lengths."""

    def call_of(request: web.Request) -> dict[str, object] | None:
        return state.calls.get(request.match_info["id"])

    async def get_call(request: web.Request) -> web.Response:
        call = call_of(request)
        if call is None:
            return web.Response(status=204)
        return _listed([call], request.query.get("fields"))

    async def update_call(request: web.Request) -> web.Response:
        call = call_of(request)
        if call is None:
            return _failure("INVALID_DATA", "the related id given seems to be invalid", 400)
        try:
            body = await request.json()
        except ValueError:
            return _failure("INVALID_DATA", "body is not valid JSON", 400)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
            return _failure("INVALID_DATA", "data is missing or invalid", 400, api_name="data")
        for name, value in data[0].items():
            if name == "id":
                continue
            limit = text_limits.get(name)
            if limit is None or not isinstance(value, str) or len(value) > limit:
                item = {
                    "code": "INVALID_DATA",
                    "details": {"api_name": name},
                    "message": "invalid data",
                    "status": "error",
                }
                return json_response({"data": [item]}, 400)
        call.update({k: v for k, v in data[0].items() if k != "id"})
        state.updates.append((str(call["id"]), dict(data[0])))
        return json_response({"data": [_success(str(call["id"]), "record updated")]})

    async def upload(request: web.Request) -> web.Response:
        call = call_of(request)
        if call is None:
            return _failure("INVALID_DATA", "the related id given seems to be invalid", 400)
        part = (await multipart_fields(request)).get("file")
        if part is None or not part.filename:
            return _failure("REQUIRED_PARAM_MISSING", "file is missing", 400, param="file")
        if len(part.data) > ATTACHMENT_MAX:
            return _failure("FILE_SIZE_MORE_THAN_ALLOWED_SIZE", "file too large", 400)
        aid = state.new_id()
        state.attachments.setdefault(str(call["id"]), []).append(
            {"id": aid, "File_Name": part.filename, "Size": str(len(part.data)), "data": part.data}
        )
        return json_response({"data": [_success(aid, "attachment uploaded successfully")]})

    async def attachments(request: web.Request) -> web.Response:
        rows = state.attachments.get(request.match_info["id"], [])
        shown = [{k: v for k, v in r.items() if k != "data"} for r in rows]
        return _listed(shown, request.query.get("fields"))

    async def add_note(request: web.Request) -> web.Response:
        call = call_of(request)
        if call is None:
            return _failure("INVALID_DATA", "the related id given seems to be invalid", 400)
        body = await request.json()
        data = body.get("data") if isinstance(body, dict) else None
        note = data[0] if isinstance(data, list) and data else None
        content = note.get("Note_Content") if isinstance(note, dict) else None
        if not isinstance(note, dict) or not isinstance(content, str) or not content:
            return _failure("MANDATORY_NOT_FOUND", "required field not found", 400)
        if len(content) > NOTE_MAX:
            return _failure("INVALID_DATA", "invalid data", 400, api_name="Note_Content")
        nid = state.new_id()
        state.notes[nid] = {"id": nid, "Parent_Id": str(call["id"]), **note}
        return json_response({"data": [_success(nid, "record added")]}, 201)

    async def notes(request: web.Request) -> web.Response:
        rows = [n for n in state.notes.values() if n["Parent_Id"] == request.match_info["id"]]
        return _listed(rows, request.query.get("fields"))

    one = "/crm/v7/Calls/{id:[0-9]+}"
    app.router.add_get(one, get_call)
    app.router.add_put(one, update_call)
    app.router.add_post(one + "/Attachments", upload)
    app.router.add_get(one + "/Attachments", attachments)
    app.router.add_post(one + "/Notes", add_note)
    app.router.add_get(one + "/Notes", notes)
