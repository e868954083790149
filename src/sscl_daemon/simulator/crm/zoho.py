"""Stand-in for Zoho CRM (API v7): Calls, Contacts, Leads, users, COQL and Zoho Accounts OAuth.

What it serves and checks, after Zoho's API reference (insert records, search records,
COQL, users, OAuth "refresh your access token", status codes):

* ``POST /oauth/v2/token`` (the accounts server; mounted on the same app): refresh-token
  grant with ``client_id``/``client_secret`` in the form or the query. Zoho answers a bad
  refresh token or client with HTTP 200 and ``{"error": "invalid_code"}`` /
  ``{"error": "invalid_client"}``; a good one with ``access_token``, ``api_domain`` (this
  server), ``token_type`` and ``expires_in`` (3600). Refresh tokens do not rotate.
* ``Authorization: Zoho-oauthtoken <token>`` on every ``/crm/v7`` request; an unknown or
  expired token is 401 ``INVALID_TOKEN`` (``expire_tokens()`` expires them all).
* ``POST /crm/v7/Calls`` and ``/Contacts``: ``data`` with 1..100 records; one answer per
  record, in order; HTTP 201 when all were stored, 207 when some were, 400 when none.
  Calls are checked like Zoho does: ``Subject``, ``Call_Type`` (Inbound/Outbound/Missed),
  ``Call_Start_Time`` (``yyyy-MM-ddTHH:mm:ss±HH:mm``) mandatory, ``Call_Duration``
  (``mm:ss``) mandatory unless missed, ``Outgoing_Call_Status`` (Scheduled/Completed)
  mandatory for outbound calls, lookups (``Who_Id`` a contact, ``What_Id`` with
  ``$se_module``, ``Owner`` a user) that exist, text lengths; a second record with the
  same value in a unique field is ``DUPLICATE_DATA`` with ``duplicate_record``. Stricter
  than Zoho on one point, on purpose: an unknown field is ``INVALID_DATA`` (Zoho drops it),
  so a misspelt field fails the tests.
* ``GET /crm/v7/{Contacts,Leads}/search?criteria=((Field:equals:value)or...)``;
  ``POST /crm/v7/coql`` (``select ... from Calls where`` with ``=``, ``in`` (at most 50
  values), ``between``, ``is null`` joined by ``and``); both answer 204 with no body when
  nothing matches.
* ``GET /crm/v7/users?type=ActiveUsers``.
* a Calls record's own routes (get, update, attachments, notes): ``simulator/crm/zoho_records.py``.
* rate limit: at most ``rate_limit`` requests per ``window`` seconds; past it, 429
  ``TOO_MANY_REQUESTS`` (Zoho sends no ``Retry-After``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from aiohttp import web

from sscl_daemon.simulator.crm import zoho_records
from sscl_daemon.simulator.crm.common import (
    Handler,
    StandInState,
    WindowLimit,
    fault_middleware,
    json_response,
)

CLIENT_ID: Final = "1000.SSCLDEMOCLIENT"
CLIENT_SECRET: Final = "sscl-zoho-client-secret"
REFRESH_TOKEN: Final = "1000.sscl.demo.refresh"
KEY_FIELD: Final = "SSCL_Call_Key"
COQL_IN_MAX: Final = 50
# Created/Modified time of seeded records (tests set their own to order them).
RECORD_TIME: Final = "2026-01-05T09:00:00+00:00"
BATCH_MAX: Final = 100
CALL_TYPES: Final = frozenset({"Inbound", "Outbound", "Missed"})
OUTGOING_STATUSES: Final = frozenset({"Scheduled", "Completed"})
# field -> max length; the lookups and picklists are checked separately.
CALL_TEXT: Final = {
    "Subject": 255,
    "Call_Start_Time": 40,
    "Call_Duration": 10,
    "Call_Result": 120,
    "Call_Purpose": 120,
    "Description": 32000,
    "Call_Type": 20,
    "Outgoing_Call_Status": 20,
    "Dialled_Number": 30,
    "Caller_ID": 30,
}
CALL_LOOKUPS: Final = frozenset({"Who_Id", "What_Id", "Owner", "$se_module"})
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
_DURATION = re.compile(r"^\d{1,4}:[0-5]\d$")
_STATE_KEY: Final = web.AppKey("zoho_state", object)


@dataclass
class ZohoState(StandInState):
    """One Zoho CRM organisation; tests seed and inspect it directly."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    refresh_tokens: set[str] = field(default_factory=lambda: {REFRESH_TOKEN})
    access_tokens: set[str] = field(default_factory=set)
    key_field: str = KEY_FIELD
    users: dict[str, dict[str, object]] = field(default_factory=dict)
    contacts: dict[str, dict[str, object]] = field(default_factory=dict)
    leads: dict[str, dict[str, object]] = field(default_factory=dict)
    calls: dict[str, dict[str, object]] = field(default_factory=dict)
    # Calls id -> its attachments (``data``: the bytes); notes by id (``Parent_Id``: the call).
    attachments: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    notes: dict[str, dict[str, object]] = field(default_factory=dict)
    # (call id, fields) of every single-record update, in order.
    updates: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    rate_limit: int = 100
    window_seconds: float = 60.0
    window: WindowLimit | None = None
    token_grants: int = 0
    _next: int = 5_725_767_000_000_000_000

    def new_id(self) -> str:
        self._next += 1
        return str(self._next)

    def add_user(self, email: str, name: str = "") -> str:
        uid = self.new_id()
        self.users[uid] = {
            "id": uid,
            "email": email,
            "full_name": name or email,
            "status": "active",
        }
        return uid

    def add_contact(self, last: str, phone: str, mobile: str | None = None) -> str:
        cid = self.new_id()
        self.contacts[cid] = {
            "id": cid,
            "Last_Name": last,
            "Full_Name": last,
            "Phone": phone,
            "Created_Time": RECORD_TIME,
            "Modified_Time": RECORD_TIME,
        }
        if mobile:
            self.contacts[cid]["Mobile"] = mobile
        return cid

    def add_lead(self, last: str, phone: str) -> str:
        lid = self.new_id()
        self.leads[lid] = {"id": lid, "Last_Name": last, "Full_Name": last, "Phone": phone}
        return lid

    def expire_tokens(self) -> None:
        self.access_tokens.clear()

    def calls_with_key(self, key: str) -> list[dict[str, object]]:
        return [c for c in self.calls.values() if c.get(self.key_field) == key]


def _state(request: web.Request) -> ZohoState:
    state = request.app[_STATE_KEY]
    assert isinstance(state, ZohoState)
    return state


def _error(code: str, message: str, status: int, **details: object) -> web.Response:
    body = {"code": code, "details": details, "message": message, "status": "error"}
    return json_response(body, status)


def _item_error(
    code: str, message: str, index: int, api_name: str, **more: object
) -> dict[str, object]:
    details: dict[str, object] = {"api_name": api_name, "json_path": f"$.data[{index}].{api_name}"}
    details.update(more)
    return {"code": code, "details": details, "message": message, "status": "error"}


def _check_call(
    state: ZohoState, record: dict[str, object], index: int
) -> dict[str, object] | None:
    """The per-record error of a Calls insert, or None when Zoho would store it."""
    unknown = [
        k for k in record if k not in CALL_TEXT and k not in CALL_LOOKUPS and k != state.key_field
    ]
    if unknown:
        return _item_error("INVALID_DATA", "invalid field", index, unknown[0])
    for name in ("Subject", "Call_Type", "Call_Start_Time"):
        if not isinstance(record.get(name), str) or not record[name]:
            return _item_error("MANDATORY_NOT_FOUND", "required field not found", index, name)
    for name, limit in CALL_TEXT.items():
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            return _item_error(
                "INVALID_DATA", "invalid data", index, name, expected_data_type="text"
            )
        if isinstance(value, str) and len(value) > limit:
            return _item_error("INVALID_DATA", "invalid data", index, name, maximum_length=limit)
    if record["Call_Type"] not in CALL_TYPES:
        return _item_error("INVALID_DATA", "invalid data", index, "Call_Type")
    start = str(record["Call_Start_Time"])
    if not _TIME.match(start):
        return _item_error(
            "INVALID_DATA", "invalid data", index, "Call_Start_Time", expected_data_type="datetime"
        )
    try:
        datetime.fromisoformat(start)
    except ValueError:
        return _item_error(
            "INVALID_DATA", "invalid data", index, "Call_Start_Time", expected_data_type="datetime"
        )
    duration = record.get("Call_Duration")
    if record["Call_Type"] != "Missed" and duration is None:
        return _item_error(
            "MANDATORY_NOT_FOUND", "required field not found", index, "Call_Duration"
        )
    if duration is not None and not _DURATION.match(str(duration)):
        return _item_error("INVALID_DATA", "invalid data", index, "Call_Duration")
    if (
        record["Call_Type"] == "Outbound"
        and record.get("Outgoing_Call_Status") not in OUTGOING_STATUSES
    ):
        return _item_error(
            "MANDATORY_NOT_FOUND", "required field not found", index, "Outgoing_Call_Status"
        )
    for name, table in (("Who_Id", state.contacts), ("Owner", state.users)):
        ref = record.get(name)
        if ref is not None and not (isinstance(ref, dict) and str(ref.get("id")) in table):
            return _item_error("INVALID_DATA", "the id given seems to be invalid", index, name)
    what = record.get("What_Id")
    if what is not None:
        module = record.get("$se_module")
        related = {"Leads": state.leads}.get(str(module))
        if related is None:
            return _item_error(
                "INVALID_MODULE", "the related module is invalid", index, "$se_module"
            )
        if not (isinstance(what, dict) and str(what.get("id")) in related):
            return _item_error("INVALID_DATA", "the id given seems to be invalid", index, "What_Id")
    key = record.get(state.key_field)
    if key is not None and not isinstance(key, str):
        return _item_error("INVALID_DATA", "invalid data", index, state.key_field)
    if key in state.refused_keys:
        return _item_error(
            "INVALID_DATA", "invalid data: refused by a validation rule", index, "Description"
        )
    if key is not None:
        existing = state.calls_with_key(str(key))
        if existing:
            dup = {
                "id": existing[0]["id"],
                "module": {"api_name": "Calls", "id": "5725767000000002219"},
            }
            return _item_error(
                "DUPLICATE_DATA", "duplicate data", index, state.key_field, duplicate_record=dup
            )
    return None


def _success(record_id: str) -> dict[str, object]:
    now = datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    return {
        "code": "SUCCESS",
        "details": {"Modified_Time": now, "Created_Time": now, "id": record_id},
        "message": "record added",
        "status": "success",
    }


def _insert_answer(items: list[dict[str, object]]) -> web.Response:
    ok = sum(1 for i in items if i["status"] == "success")
    status = 201 if ok == len(items) else (207 if ok else 400)
    return json_response({"data": items}, status)


async def _records(request: web.Request) -> list[dict[str, object]] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error("INVALID_DATA", "body is not valid JSON", 400)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data or not all(isinstance(r, dict) for r in data):
        return _error("INVALID_DATA", "data is missing or invalid", 400, api_name="data")
    if len(data) > BATCH_MAX:
        return _error("LIMIT_EXCEEDED", "limit exceeded", 400, api_name="data", limit=BATCH_MAX)
    return data


async def insert_calls(request: web.Request) -> web.Response:
    state = _state(request)
    data = await _records(request)
    if isinstance(data, web.Response):
        return data
    items: list[dict[str, object]] = []
    for index, record in enumerate(data):
        problem = _check_call(state, record, index)
        if problem is not None:
            items.append(problem)
            continue
        rid = state.new_id()
        state.calls[rid] = {"id": rid, **record}
        items.append(_success(rid))
    return _insert_answer(items)


async def insert_contacts(request: web.Request) -> web.Response:
    state = _state(request)
    data = await _records(request)
    if isinstance(data, web.Response):
        return data
    items: list[dict[str, object]] = []
    for index, record in enumerate(data):
        if not isinstance(record.get("Last_Name"), str) or not record["Last_Name"]:
            items.append(
                _item_error("MANDATORY_NOT_FOUND", "required field not found", index, "Last_Name")
            )
            continue
        owner = record.get("Owner")
        if owner is not None and not (
            isinstance(owner, dict) and str(owner.get("id")) in state.users
        ):
            items.append(
                _item_error("INVALID_DATA", "the id given seems to be invalid", index, "Owner")
            )
            continue
        cid = state.add_contact(str(record["Last_Name"]), str(record.get("Phone", "")))
        if owner is not None:
            state.contacts[cid]["Owner"] = {"id": str(owner["id"])}
        items.append(_success(cid))
    return _insert_answer(items)


_CRITERION = re.compile(r"\((\w+):equals:([^()]*)\)")


def _search(table: dict[str, dict[str, object]], request: web.Request) -> web.Response:
    criteria = request.query.get("criteria")
    if not criteria:
        return _error(
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            400,
            param="criteria",
        )
    terms = _CRITERION.findall(criteria)
    if not terms or len(terms) > 10:
        return _error("INVALID_QUERY", "invalid query formed", 400, param="criteria")
    hits = [
        r for r in table.values() if any(str(r.get(name, "")) == value for name, value in terms)
    ]
    if not hits:
        return web.Response(status=204)
    per_page = int(request.query.get("per_page", "200"))
    page = hits[:per_page]
    return json_response(
        {
            "data": page,
            "info": {"count": len(page), "more_records": len(hits) > per_page, "page": 1},
        }
    )


async def search_contacts(request: web.Request) -> web.Response:
    return _search(_state(request).contacts, request)


async def search_leads(request: web.Request) -> web.Response:
    return _search(_state(request).leads, request)


_COQL = re.compile(
    r"^select\s+(.+?)\s+from\s+(\w+)\s+where\s+(.+?)(?:\s+limit\s+(\d+))?$", re.I | re.S
)
_STRING = r"'((?:[^'\\]|\\.)*)'"
_IN = re.compile(r"^\(?\s*(\w+)\s+in\s+\((.*)\)\s*\)?$", re.I | re.S)
_EQ = re.compile(rf"^\(?\s*(\w+)\s*=\s*{_STRING}\s*\)?$", re.S)
_BETWEEN = re.compile(rf"^\(?\s*(\w+)\s+between\s+{_STRING}\s+and\s+{_STRING}\s*\)?$", re.I | re.S)
_NULL = re.compile(r"^\(?\s*(\w+)\s+is\s+null\s*\)?$", re.I)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _condition(text: str) -> object:
    """A predicate over a record for one COQL condition, or an error message."""
    if m := _IN.match(text):
        name, listed = m.group(1), m.group(2)
        values = {_unquote(v) for v in re.findall(_STRING, listed)}
        if len(values) > COQL_IN_MAX:
            return f"at most {COQL_IN_MAX} values are allowed in an in clause"
        return lambda r: str(r.get(name)) in values
    if m := _EQ.match(text):
        name, value = m.group(1), _unquote(m.group(2))
        return lambda r: r.get(name) == value
    if m := _BETWEEN.match(text):
        name = m.group(1)
        low, high = datetime.fromisoformat(m.group(2)), datetime.fromisoformat(m.group(3))

        def between(r: dict[str, object]) -> bool:
            value = r.get(name)
            return isinstance(value, str) and low <= datetime.fromisoformat(value) <= high

        return between
    if m := _NULL.match(text):
        name = m.group(1)
        return lambda r: r.get(name) in (None, "")
    return f"unsupported condition: {text}"


async def coql(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    query = body.get("select_query") if isinstance(body, dict) else None
    if not isinstance(query, str):
        return _error("REQUIRED_PARAM_MISSING", "select_query is missing", 400)
    m = _COQL.match(query.strip())
    if not m or m.group(2) != "Calls":
        return _error("SYNTAX_ERROR", "error occured while parsing the query", 400, clause="from")
    fields = [f.strip() for f in m.group(1).split(",")]
    predicates = []
    # "and" outside quotes joins the conditions (a between's own "and" is inside its match).
    parts = re.split(r"\)\s+and\s+|\s+and\s+(?=\w+\s+(?:in|is|=|between))", m.group(3), flags=re.I)
    for part in parts:
        predicate = _condition(part.strip())
        if isinstance(predicate, str):
            return _error("SYNTAX_ERROR", predicate, 400, clause="where")
        predicates.append(predicate)
    limit = int(m.group(4) or 200)
    rows = [c for c in state.calls.values() if all(p(c) for p in predicates)][:limit]  # type: ignore[operator]
    if not rows:
        return web.Response(status=204)
    data = [{f: r.get(f) for f in fields} | {"id": r["id"]} for r in rows]
    return json_response({"data": data, "info": {"count": len(data), "more_records": False}})


async def users(request: web.Request) -> web.Response:
    state = _state(request)
    listed = [u for u in state.users.values() if u["status"] == "active"]
    return json_response(
        {"users": listed, "info": {"count": len(listed), "more_records": False, "page": 1}}
    )


async def token(request: web.Request) -> web.Response:
    state = _state(request)
    form = dict(await request.post())
    form.update(request.query)
    if form.get("grant_type") != "refresh_token":
        return json_response({"error": "unsupported_grant_type"})
    if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
        return json_response({"error": "invalid_client"})
    if form.get("refresh_token") not in state.refresh_tokens:
        return json_response({"error": "invalid_code"})
    state.token_grants += 1
    access = f"1000.{secrets.token_hex(16)}"
    state.access_tokens.add(access)
    mount = request.path.removesuffix("/oauth/v2/token")
    return json_response(
        {
            "access_token": access,
            "scope": "ZohoCRM.modules.ALL ZohoCRM.users.READ ZohoCRM.coql.READ",
            "api_domain": f"{request.url.origin()}{mount}",
            "token_type": "Bearer",
            "expires_in": 3600,
        }
    )


def create_app(state: ZohoState | None = None) -> web.Application:
    state = state or ZohoState()

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        s = _state(request)
        if request.path.endswith("/oauth/v2/token"):
            return await handler(request)
        if s.window is None:
            s.window = WindowLimit(s.rate_limit, s.window_seconds)
        allowed, _remaining, _reset = s.window.hit()
        if not allowed:
            return _error("TOO_MANY_REQUESTS", "too many requests continuously", 429)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Zoho-oauthtoken ") or auth.split(" ", 1)[1] not in s.access_tokens:
            return _error("INVALID_TOKEN", "invalid oauth token", 401)
        return await handler(request)

    app = web.Application(
        middlewares=[fault_middleware(state), gate],
        client_max_size=zoho_records.ATTACHMENT_MAX + 65_536,
    )
    app[_STATE_KEY] = state
    app.router.add_post("/oauth/v2/token", token)
    app.router.add_post("/crm/v7/Calls", insert_calls)
    app.router.add_post("/crm/v7/Contacts", insert_contacts)
    app.router.add_get("/crm/v7/Contacts/search", search_contacts)
    app.router.add_get("/crm/v7/Leads/search", search_leads)
    app.router.add_post("/crm/v7/coql", coql)
    app.router.add_get("/crm/v7/users", users)
    zoho_records.add_routes(app, state, CALL_TEXT)
    return app
