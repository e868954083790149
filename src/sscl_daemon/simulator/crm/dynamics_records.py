"""The Dataverse stand-in's routes for the daemon's updates after the create: a phone call read,
notes (annotations) with or without a file, the organisation's upload limit
(``crm/dynamics_enrich.py`` -> here; ``simulator/crm/dynamics.py`` mounts them).

After the Dataverse Web API reference (annotation EntityType, "Upsert a table row",
organization.maxuploadfilesize):

* ``GET /api/data/v9.2/phonecalls(<guid>)?$select=`` -- the row (404 0x80040217 when none);
* ``PATCH /api/data/v9.2/annotations(<guid>)`` -- upsert by primary key, ``If-None-Match: *``
  create-only (412 when the note exists); columns ``subject`` (500), ``notetext`` (100,000),
  ``filename``, ``mimetype``, ``documentbody`` (base64, decoded at most
  ``maxuploadfilesize`` bytes, else 400 0x80044a02 as Dataverse answers a file too large)
  and ``objectid_phonecall@odata.bind`` naming a phone call that exists; an unknown column
  is 0x80060888. The body must be JSON (``Content-Type: application/json``);
* ``GET /organizations`` and ``/annotations`` through the stand-in's table query.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Final

from aiohttp import web

from sscl_daemon.simulator.crm.common import json_response

if TYPE_CHECKING:
    from sscl_daemon.simulator.crm.dynamics import DynamicsState

API: Final = "/api/data/v9.2"
GUID: Final = "[0-9a-fA-F-]{36}"
# The largest request body the stand-in reads (a raised upload limit's file, in base64).
BODY_MAX: Final = 64 * 1024 * 1024
ANNOTATION_TEXT: Final = {"subject": 500, "notetext": 100_000, "filename": 255, "mimetype": 256}
_PHONECALL_BIND = re.compile(rf"^/phonecalls\(({GUID})\)$")


def _error(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status)


def add_routes(app: web.Application, state: DynamicsState) -> None:
    async def read_phonecall(request: web.Request) -> web.Response:
        row = state.phonecalls.get(request.match_info["id"].lower())
        if row is None:
            return _error(404, "0x80040217", "phonecall Does Not Exist")
        select = [c for c in request.query.get("$select", "").split(",") if c]
        return json_response({c: row.get(c) for c in select} if select else dict(row))

    async def upsert_annotation(request: web.Request) -> web.Response:
        key = request.match_info["id"].lower()
        if request.content_type != "application/json":
            return _error(415, "0x80048d19", "The content type must be application/json.")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "0x80048d19", "The request body is not valid JSON.")
        if request.headers.get("If-None-Match") == "*" and key in state.annotations:
            return _error(412, "0x80040237", "A record with matching key values already exists.")
        if not isinstance(body, dict):
            return _error(400, "0x80048d19", "The request body is not a JSON object.")
        row: dict[str, object] = {"annotationid": key}
        for column, value in body.items():
            if column == "objectid_phonecall@odata.bind":
                m = _PHONECALL_BIND.match(str(value))
                if not m or m.group(1).lower() not in state.phonecalls:
                    return _error(400, "0x80040217", f"{value} Does Not Exist")
                row["_objectid_value"] = m.group(1).lower()
            elif column == "documentbody":
                try:
                    data = base64.b64decode(str(value), validate=True)
                except (binascii.Error, ValueError):
                    return _error(400, "0x80048d19", "documentbody is not base64.")
                if len(data) > state.maxuploadfilesize:
                    return _error(
                        400,
                        "0x80044a02",
                        "The attachment is either not a valid type or is too large.",
                    )
                row["documentbody"] = value
                row["filesize"] = len(data)
            elif column in ANNOTATION_TEXT:
                if not isinstance(value, str) or len(value) > ANNOTATION_TEXT[column]:
                    return _error(400, "0x80044331", f"{column} is too long or not text.")
                row[column] = value
            else:
                return _error(
                    400,
                    "0x80060888",
                    f"The property '{column}' does not exist on type 'Microsoft.Dynamics.CRM.annotation'.",
                )
        if "_objectid_value" not in row:
            return _error(400, "0x80040217", "A note of the stand-in must be about a phone call.")
        row["isdocument"] = "documentbody" in row
        state.annotations[key] = row
        return web.Response(
            status=204,
            headers={"OData-EntityId": f"{request.url.origin()}{API}/annotations({key})"},
        )

    app.router.add_get(API + "/{entity:phonecalls}({id:" + GUID + "})", read_phonecall)
    app.router.add_patch(API + "/{entity:annotations}({id:" + GUID + "})", upsert_annotation)
