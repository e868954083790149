"""Stand-in for Clio Manage (API v4): communications, contacts, matters, users and OAuth.

What it serves and checks, after Clio's API documentation (v4 reference, "Rate Limits",
"Authorization with OAuth 2.0"):

* ``POST /oauth/token``: refresh-token grant with ``client_id``/``client_secret`` in the
  form; answers ``access_token``, ``token_type: bearer``, ``expires_in`` (7 days) and no new
  refresh token; a bad one is 401 ``invalid_grant``. ``expire_tokens()`` ends the access
  tokens; the API then answers 401 ``{"error": {"type": "AuthenticationError", ...}}``.
* ``POST /api/v4/communications.json``: ``data.type`` PhoneCommunication or
  EmailCommunication, ``subject`` (at most 255), ``body``, ``received_at`` (ISO 8601),
  ``senders``/``receivers`` of ``{"id", "type": "User"|"Contact"}`` that exist, ``matter``
  that exists; anything else (an unknown field too) is 422 ``ValidationError``. Answers 201
  with ``{"data": {"id", "etag"}}`` (the default fields).
* ``GET /api/v4/communications.json``: ``type``, ``received_since``, ``received_before``
  (both inclusive), ``contact_id`` (a sender or receiver), ``matter_id``, ``fields``
  (``senders{id,type}`` style nesting), ``limit`` (max 200), in id order with cursor
  pagination ("Pagination": ``meta.paging.next`` is the next page's URL, with a
  ``page_token``; omitted on the last page).
* ``GET /api/v4/contacts.json?query=``: a contact matches when the query's digits occur in
  one of its numbers' digits, or the text in its name; ``POST /api/v4/contacts.json``
  (``Person`` needs a first or last name).
* ``POST /api/v4/activities.json`` (a ``TimeEntry``: ``quantity`` in seconds, ``date``,
  ``matter``/``user``/``communication`` that exist, ``non_billable``) and ``GET`` with
  ``communication_id`` and ``type``;
* ``GET /api/v4/matters.json?client_id=&status=``, ``GET /api/v4/users.json``,
  ``GET /api/v4/users/who_am_i.json``.
* a communication read and updated, documents (the three-step upload through signed storage
  URLs) and notes: ``simulator/crm/clio_records.py``.
* every answer: ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (a
  Unix time); past ``rate_limit`` requests a minute, 429 with ``Retry-After``.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final

from aiohttp import web

from sscl_daemon.simulator.crm import clio_records
from sscl_daemon.simulator.crm.common import (
    Handler,
    StandInState,
    WindowLimit,
    fault_middleware,
    json_response,
)

CLIENT_ID: Final = "sscl-clio-app"
CLIENT_SECRET: Final = "sscl-clio-app-secret"
REFRESH_TOKEN: Final = "sscl-clio-refresh"
API: Final = "/api/v4"
# created_at/updated_at of seeded contacts (tests set their own to order them).
RECORD_TIME: Final = "2026-01-05T09:00:00+00:00"
COMMUNICATION_FIELDS: Final = frozenset(
    {"type", "subject", "body", "received_at", "senders", "receivers", "matter", "date"}
)
TIME_ENTRY_FIELDS: Final = frozenset(
    {"type", "date", "quantity", "matter", "user", "communication", "note", "non_billable"}
)
_STATE_KEY: Final = web.AppKey("clio_state", object)


class ClioError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message

    def response(self) -> web.Response:
        return json_response({"error": {"type": self.kind, "message": self.message}}, self.status)


@dataclass
class ClioState(StandInState):
    """One Clio account; tests seed and inspect it directly."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    refresh_tokens: set[str] = field(default_factory=lambda: {REFRESH_TOKEN})
    access_tokens: set[str] = field(default_factory=set)
    users: dict[int, dict[str, object]] = field(default_factory=dict)
    contacts: dict[int, dict[str, object]] = field(default_factory=dict)
    matters: dict[int, dict[str, object]] = field(default_factory=dict)
    communications: dict[int, dict[str, object]] = field(default_factory=dict)
    activities: dict[int, dict[str, object]] = field(default_factory=dict)
    # Documents (``parent``: (kind, id), ``data``: the bytes once PUT) and notes by id, and
    # (communication id, fields) of every communication update (``clio_records.py``).
    documents: dict[int, dict[str, object]] = field(default_factory=dict)
    notes: dict[int, dict[str, object]] = field(default_factory=dict)
    updates: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    rate_limit: int = 50
    window: WindowLimit | None = None
    me: int = 0  # the API user's id (who_am_i)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(3_000_001))

    def __post_init__(self) -> None:
        # The API user (who_am_i) exists from the start.
        self.me = self.add_user("api@firm.example", "API User")

    def new_id(self) -> int:
        return next(self._ids)

    def add_user(self, email: str, name: str = "") -> int:
        uid = self.new_id()
        self.users[uid] = {"id": uid, "email": email, "name": name or email, "enabled": True}
        return uid

    def add_contact(self, name: str, number: str) -> int:
        cid = self.new_id()
        self.contacts[cid] = {
            "id": cid,
            "type": "Person",
            "name": name,
            "phone_numbers": [{"id": self.new_id(), "number": number, "name": "Work"}],
            "created_at": RECORD_TIME,
            "updated_at": RECORD_TIME,
        }
        return cid

    def add_matter(self, client_id: int, status: str = "open") -> int:
        mid = self.new_id()
        self.matters[mid] = {
            "id": mid,
            "display_number": f"{mid:08d}-Matter",
            "status": status,
            "client": {"id": client_id},
        }
        return mid

    def expire_tokens(self) -> None:
        self.access_tokens.clear()

    def parties(self, record: dict[str, object]) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        for side in ("senders", "receivers"):
            listed = record.get(side)
            found.extend(
                p for p in (listed if isinstance(listed, list) else []) if isinstance(p, dict)
            )
        return found


def _state(request: web.Request) -> ClioState:
    state = request.app[_STATE_KEY]
    assert isinstance(state, ClioState)
    return state


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise ClioError(422, "ValidationError", f"{name} must be an ISO 8601 date-time")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ClioError(
            422, "ValidationError", f"{name} is not a valid ISO 8601 date-time"
        ) from None


def _fields(request: web.Request, record: dict[str, object]) -> dict[str, object]:
    wanted = request.query.get("fields", "id,etag")
    names = [re.sub(r"\{.*\}", "", f) for f in re.split(r",(?![^{]*\})", wanted)]
    shown = {n: record.get(n) for n in names if n != "etag"}
    if "etag" in names:
        shown["etag"] = f'"{record["id"]}"'
    return shown


def _check_party(state: ClioState, party: object, side: str) -> dict[str, object]:
    if not isinstance(party, dict) or party.get("type") not in ("User", "Contact"):
        raise ClioError(
            422, "ValidationError", f"{side} must be a list of {{id, type: User|Contact}}"
        )
    table = state.users if party["type"] == "User" else state.contacts
    if party.get("id") not in table:
        raise ClioError(
            422, "ValidationError", f"{side}: {party['type']} {party.get('id')} not found"
        )
    return {"id": party["id"], "type": party["type"]}


def _check_communication(state: ClioState, body: object) -> dict[str, object]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise ClioError(400, "BadRequest", 'the body must be {"data": {...}}')
    unknown = sorted(set(data) - COMMUNICATION_FIELDS)
    if unknown:
        raise ClioError(422, "ValidationError", f"unknown field(s): {', '.join(unknown)}")
    if data.get("type") not in ("PhoneCommunication", "EmailCommunication"):
        raise ClioError(
            422, "ValidationError", "type must be PhoneCommunication or EmailCommunication"
        )
    subject = data.get("subject")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise ClioError(422, "ValidationError", "subject is required (at most 255 characters)")
    if not isinstance(data.get("body", ""), str):
        raise ClioError(422, "ValidationError", "body must be text")
    _time(data.get("received_at"), "received_at")
    record: dict[str, object] = {
        k: data[k] for k in ("type", "subject", "body", "received_at") if k in data
    }
    for side in ("senders", "receivers"):
        listed = data.get(side, [])
        if not isinstance(listed, list):
            raise ClioError(422, "ValidationError", f"{side} must be a list")
        record[side] = [_check_party(state, p, side) for p in listed]
    matter = data.get("matter")
    if matter is not None:
        if not (isinstance(matter, dict) and matter.get("id") in state.matters):
            raise ClioError(422, "ValidationError", f"matter {matter!r} not found")
        record["matter"] = {"id": matter["id"]}
    body_text = str(record.get("body", ""))
    if any(f"sscl-key: {key}" in body_text for key in state.refused_keys):
        raise ClioError(422, "ValidationError", "the communication was refused by a firm policy")
    return record


async def token(request: web.Request) -> web.Response:
    state = _state(request)
    form = await request.post()
    if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
        return json_response(
            {"error": "invalid_client", "error_description": "Client authentication failed"}, 401
        )
    if form.get("grant_type") != "refresh_token":
        return json_response({"error": "unsupported_grant_type"}, 400)
    if form.get("refresh_token") not in state.refresh_tokens:
        return json_response(
            {"error": "invalid_grant", "error_description": "The refresh token is invalid"}, 401
        )
    access = secrets.token_urlsafe(24)
    state.access_tokens.add(access)
    return json_response({"access_token": access, "token_type": "bearer", "expires_in": 604800})


async def create_communication(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    record = _check_communication(state, body)
    cid = state.new_id()
    record["id"] = cid
    state.communications[cid] = record
    return json_response({"data": _fields(request, record)}, 201)


async def list_communications(request: web.Request) -> web.Response:
    state = _state(request)
    q = request.query
    since = _time(q["received_since"], "received_since") if "received_since" in q else None
    before = _time(q["received_before"], "received_before") if "received_before" in q else None
    rows = []
    for record in state.communications.values():
        when = _time(record["received_at"], "received_at")
        if "type" in q and record["type"] != q["type"]:
            continue
        if (since and when < since) or (before and when > before):
            continue
        if "contact_id" in q and not any(
            p["type"] == "Contact" and str(p["id"]) == q["contact_id"]
            for p in state.parties(record)
        ):
            continue
        rows.append(_fields(request, record))
    return _page(request, rows)


def _page(request: web.Request, rows: list[dict[str, object]]) -> web.Response:
    """One page of ``rows`` (id order) by Clio's cursor pagination: ``limit`` (at most 200)
    rows from the ``page_token``, and ``meta.paging.next`` the URL of the next page (the
    same query with its ``page_token``), omitted on the last."""
    limit = min(int(request.query.get("limit", "200")), 200)
    token = request.query.get("page_token", "")
    start = int(token) if token.isdigit() else 0
    paging: dict[str, str] = {}
    if start + limit < len(rows):
        paging["next"] = str(request.url.update_query(page_token=str(start + limit)))
    return json_response(
        {"data": rows[start : start + limit], "meta": {"paging": paging, "records": len(rows)}}
    )


def _check_time_entry(state: ClioState, body: object) -> dict[str, object]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("type") not in ("TimeEntry", "ExpenseEntry"):
        raise ClioError(422, "ValidationError", "type must be TimeEntry or ExpenseEntry")
    unknown = sorted(set(data) - TIME_ENTRY_FIELDS)
    if unknown:
        raise ClioError(422, "ValidationError", f"unknown field(s): {', '.join(unknown)}")
    quantity = data.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int | float) or quantity <= 0:
        raise ClioError(422, "ValidationError", "quantity must be a positive number of seconds")
    try:
        date.fromisoformat(str(data.get("date")))
    except ValueError:
        raise ClioError(422, "ValidationError", "date must be YYYY-MM-DD") from None
    for name, table in (
        ("matter", state.matters),
        ("user", state.users),
        ("communication", state.communications),
    ):
        ref = data.get(name)
        if ref is not None and not (isinstance(ref, dict) and ref.get("id") in table):
            raise ClioError(422, "ValidationError", f"{name} {ref!r} not found")
    if not isinstance(data.get("non_billable", False), bool):
        raise ClioError(422, "ValidationError", "non_billable must be true or false")
    return dict(data)


async def create_activity(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    record = _check_time_entry(state, body)
    aid = state.new_id()
    record["id"] = aid
    state.activities[aid] = record
    return json_response({"data": _fields(request, record)}, 201)


def _communication_of(activity: dict[str, object]) -> str | None:
    ref = activity.get("communication")
    return str(ref.get("id")) if isinstance(ref, dict) else None


async def list_activities(request: web.Request) -> web.Response:
    state = _state(request)
    q = request.query
    rows = [
        _fields(request, a)
        for a in state.activities.values()
        if ("type" not in q or a["type"] == q["type"])
        and ("communication_id" not in q or _communication_of(a) == q["communication_id"])
    ]
    return json_response({"data": rows, "meta": {"paging": {}, "records": len(rows)}})


async def list_contacts(request: web.Request) -> web.Response:
    state = _state(request)
    query = request.query.get("query", "")
    rows = []
    for contact in state.contacts.values():
        numbers = [str(p["number"]) for p in contact["phone_numbers"]]  # type: ignore[attr-defined]
        digits = _digits(query)
        if (digits and any(digits in _digits(n) for n in numbers)) or (
            query and query.lower() in str(contact["name"]).lower()
        ):
            rows.append(_fields(request, contact))
    return json_response({"data": rows, "meta": {"paging": {}, "records": len(rows)}})


async def create_contact(request: web.Request) -> web.Response:
    state = _state(request)
    body = await request.json()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("type") != "Person":
        raise ClioError(422, "ValidationError", "type must be Person or Company")
    name = data.get("last_name") or data.get("first_name")
    if not isinstance(name, str) or not name:
        raise ClioError(422, "ValidationError", "a Person needs a first or last name")
    phones = data.get("phone_numbers") or [{}]
    cid = state.add_contact(name, str(phones[0].get("number", "")))
    return json_response({"data": _fields(request, state.contacts[cid])}, 201)


async def list_matters(request: web.Request) -> web.Response:
    state = _state(request)
    client = request.query.get("client_id")
    status = request.query.get("status")
    rows = [
        _fields(request, m)
        for m in state.matters.values()
        if (client is None or str(m["client"]["id"]) == client)  # type: ignore[index]
        and (status is None or m["status"] == status)
    ]
    return json_response({"data": rows, "meta": {"paging": {}, "records": len(rows)}})


async def list_users(request: web.Request) -> web.Response:
    state = _state(request)
    rows = [_fields(request, u) for u in state.users.values() if u["enabled"]]
    return json_response({"data": rows, "meta": {"paging": {}, "records": len(rows)}})


async def who_am_i(request: web.Request) -> web.Response:
    state = _state(request)
    return json_response({"data": _fields(request, state.users[state.me])})


def create_app(state: ClioState | None = None) -> web.Application:
    state = state or ClioState()

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        s = _state(request)
        if request.path.endswith("/oauth/token") or request.path.startswith(
            clio_records.STORAGE + "/"
        ):
            return await handler(request)  # the token route, and cloud storage's own
        if s.window is None:
            s.window = WindowLimit(s.rate_limit, 60.0)
        allowed, remaining, reset = s.window.hit()
        limits = {
            "X-RateLimit-Limit": str(s.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(time.time() + reset)),
        }
        if not allowed:
            body = {
                "error": {"type": "RateLimited", "message": "Rate limit exceeded. Retry later."}
            }
            return json_response(body, 429, {**limits, "Retry-After": str(max(1, round(reset)))})
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer ") or auth[7:] not in s.access_tokens:
            return ClioError(
                401, "AuthenticationError", "The access token is invalid or has expired"
            ).response()
        try:
            response = await handler(request)
        except ClioError as exc:
            response = exc.response()
        response.headers.update(limits)
        return response

    app = web.Application(
        middlewares=[fault_middleware(state), gate], client_max_size=clio_records.UPLOAD_MAX
    )
    app[_STATE_KEY] = state
    app.router.add_post("/oauth/token", token)
    app.router.add_post(f"{API}/communications.json", create_communication)
    app.router.add_get(f"{API}/communications.json", list_communications)
    app.router.add_post(f"{API}/activities.json", create_activity)
    app.router.add_get(f"{API}/activities.json", list_activities)
    app.router.add_get(f"{API}/contacts.json", list_contacts)
    app.router.add_post(f"{API}/contacts.json", create_contact)
    app.router.add_get(f"{API}/matters.json", list_matters)
    app.router.add_get(f"{API}/users.json", list_users)
    app.router.add_get(f"{API}/users/who_am_i.json", who_am_i)
    clio_records.add_routes(app, state, COMMUNICATION_FIELDS, _fields)
    return app
