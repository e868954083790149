"""Stand-in for the Pipedrive API: call logs, persons, users, activities, OAuth, rate limits.

What it enforces, after Pipedrive's API reference (v1 OpenAPI for ``/callLogs`` and
``/users``, v2 for persons and activities) and its rate-limiting page:

* auth: ``x-api-token`` header (or the older ``api_token`` query parameter) or
  ``Authorization: Bearer <access token>``; anything
  else is 401 ``{"success": false, "error": "unauthorized access", "errorCode": 401}``.
  ``POST /oauth/token`` (client id/secret as HTTP Basic) swaps a refresh token for an
  access token, rotates the refresh token and names the company host in ``api_domain``.
* ``POST /v1/callLogs``: ``to_phone_number``, ``outcome``, ``start_time``, ``end_time``
  required; ``outcome`` one of the six documented values; times ``YYYY-MM-DD HH:MM:SS``;
  ``duration`` a string of seconds; ids integers that exist; ``deal_id`` and ``lead_id``
  not both. Stricter than Pipedrive on one point, on purpose: an unknown field is a 400, so
  tests catch a misspelt one. Errors: 400 ``{"success": false, "error": …, "error_info": …}``.
* ``GET /v1/callLogs``: the logs *assigned* to the token's user (their ``user_id``, the
  log's owner: "Returns all call logs assigned to a particular user"), whoever created
  them, newest first, ``start``/``limit`` (max 50) with ``additional_data.pagination``. A
  log made for another user is not listed, though its activity is (below).
* ``GET /api/v2/persons/search``: ``term`` (>= 2 characters unless ``exact_match``),
  ``fields``, ``exact_match``, ``limit``; phone search matches the digits of the term
  inside the digits of a stored phone (exact: the whole stored value).
* every call log is an activity too (Pipedrive: "call logs are also considered activities";
  deleting a log leaves "the related activity"): ``activity_id`` converts a call-type
  activity, else a done ``call`` activity is made with the log's subject, person, org, deal
  and note, and the log answers its ``activity_id``. The log itself has no update endpoint.
* ``POST /v1/callLogs/{id}/recordings``: multipart ``file`` (audio), one per call log
  (``has_recording`` turns true; tests read ``recordings``); ``POST``/``GET /v1/notes``:
  HTML ``content`` on a person, organization, deal or lead (tests read ``notes``);
  ``GET /v1/notes`` by ``person_id``, ``deal_id``, ``lead_id`` or ``org_id``;
  ``GET /api/v2/deals`` by ``person_id`` and ``status``; a call log's ``deal_id`` must exist;
* activities: ``POST``/``GET``/``PATCH /api/v2/activities`` (v2 fields, an active ``type``,
  ``due_date``/``due_time``/``duration`` formats, participants that exist; the list by
  ``person_id``, ``updated_since``/``updated_until``, cursor-paginated, ``limit`` <= 500)
  and files of an
  activity (``POST``/``GET /v1/files``; tests read ``files``);
* every answer carries ``x-ratelimit-limit``, ``x-ratelimit-remaining``,
  ``x-ratelimit-reset`` for a 2 s window; past it, 429 (``Retry-After`` only when
  ``retry_after_on_429`` is set: Pipedrive's current page no longer promises it).

v1 paths are served both as ``/v1/…`` and ``/api/v1/…`` like the real hosts.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from aiohttp import web

from sscl_daemon.simulator.crm.common import (
    Handler,
    StandInState,
    WindowLimit,
    fault_middleware,
    json_response,
)
from sscl_daemon.simulator.crm.uploads import multipart_fields

OUTCOMES: Final = frozenset(
    {"connected", "no_answer", "left_message", "left_voicemail", "wrong_number", "busy"}
)
CALL_LOG_FIELDS: Final = frozenset(
    {
        "user_id",
        "activity_id",
        "subject",
        "duration",
        "outcome",
        "from_phone_number",
        "to_phone_number",
        "start_time",
        "end_time",
        "person_id",
        "org_id",
        "deal_id",
        "lead_id",
        "note",
    }
)
ERROR_INFO: Final = (
    "Please check developers.pipedrive.com for more information about Pipedrive API."
)
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_STATE_KEY: Final = web.AppKey("pipedrive_state", object)
_USER: Final = web.RequestKey("pipedrive_user", int)


@dataclass
class PipedriveState(StandInState):
    """What the stand-in company holds; tests seed and inspect it directly."""

    api_tokens: dict[str, int] = field(default_factory=dict)  # api_token -> user id
    client_id: str = "pd-client"
    client_secret: str = "pd-client-secret"
    refresh_tokens: dict[str, int] = field(default_factory=dict)  # refresh token -> user id
    access_tokens: dict[str, int] = field(default_factory=dict)
    api_domain: str | None = None  # host named in token answers; None: the stand-in's own
    users: dict[int, dict[str, object]] = field(default_factory=dict)
    persons: dict[int, dict[str, object]] = field(default_factory=dict)
    activities: dict[int, dict[str, object]] = field(default_factory=dict)
    call_logs: dict[str, dict[str, object]] = field(default_factory=dict)
    # Call log id -> (file name, bytes) of its recording (one per call log).
    recordings: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    notes: dict[int, dict[str, object]] = field(default_factory=dict)
    activity_types: frozenset[str] = frozenset({"call", "meeting", "task", "email"})
    deals: dict[int, dict[str, object]] = field(default_factory=dict)
    # File id -> (record, bytes); the record names its activity_id.
    files: dict[int, tuple[dict[str, object], bytes]] = field(default_factory=dict)
    rate_limit: int = 80
    retry_after_on_429: bool = False
    window: WindowLimit | None = None
    clock: Callable[[], datetime] = field(default=datetime.now)
    _next_id: int = 1000

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_user(self, email: str, name: str = "", api_token: str | None = None) -> int:
        uid = self.next_id()
        self.users[uid] = {"id": uid, "name": name or email, "email": email, "active_flag": True}
        if api_token:
            self.api_tokens[api_token] = uid
        return uid

    def add_person(self, name: str, phones: list[str], org_id: int | None = None) -> int:
        pid = self.next_id()
        self.persons[pid] = {
            "id": pid,
            "name": name,
            "phones": [
                {"value": p, "primary": i == 0, "label": "work"} for i, p in enumerate(phones)
            ],
            "org_id": org_id,
            "owner_id": next(iter(self.users), None),
            "add_time": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "update_time": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return pid

    def add_deal(self, title: str, person_id: int, status: str = "open") -> int:
        """A deal of the person (``status``: open, won, lost), updated now."""
        did = self.next_id()
        self.deals[did] = {
            "id": did,
            "title": title,
            "person_id": person_id,
            "status": status,
            "add_time": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "update_time": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return did

    def add_activity(
        self, person_id: int, note: str, subject: str = "Call", **fields: object
    ) -> int:
        """An activity someone else made (a user's client); ``fields`` as the v2 API names
        them (``due_date``, ``due_time``, ``duration``, ``participants``, ``type`` ...)."""
        aid = self.next_id()
        self.activities[aid] = {
            "id": aid,
            "type": "call",
            "subject": subject,
            "note": note,
            "person_id": person_id,
            "done": True,
            "update_time": self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            **fields,
        }
        return aid


# Activities per page at most (v2 ``limit``).
ACTIVITIES_LIMIT: Final = 500
# The stand-in takes uploads up to this size (a call log's recording).
UPLOAD_MAX = 100 * 1024 * 1024


def _error(status: int, message: str) -> web.Response:
    body = {
        "success": False,
        "error": message,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }
    if status == 401:
        body["errorCode"] = 401
    return json_response(body, status)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _state(request: web.Request) -> PipedriveState:
    state = request.app[_STATE_KEY]
    assert isinstance(state, PipedriveState)
    return state


async def _json(request: web.Request) -> object:
    """The JSON body, or None when it is not JSON (the validators then refuse it)."""
    try:
        body: object = await request.json()
    except ValueError:
        return None
    return body


def _validate_call_log(state: PipedriveState, body: object) -> str | None:
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    unknown = sorted(set(body) - CALL_LOG_FIELDS)
    if unknown:
        return f"Unknown field(s): {', '.join(unknown)}"
    for name in ("to_phone_number", "outcome", "start_time", "end_time"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name} is required"
    if body["outcome"] not in OUTCOMES:
        return f"outcome must be one of: {', '.join(sorted(OUTCOMES))}"
    for name in ("start_time", "end_time"):
        if not _TIME.match(body[name]):
            return f"{name} must be in format YYYY-MM-DD HH:MM:SS"
        try:
            datetime.strptime(body[name], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return f"{name} is not a valid date"
    if body["end_time"] < body["start_time"]:
        return "end_time must not be before start_time"
    duration = body.get("duration")
    if duration is not None and not (isinstance(duration, str) and duration.isdigit()):
        return "duration must be a string of whole seconds"
    for name in ("subject", "from_phone_number", "note", "lead_id"):
        if name in body and not isinstance(body[name], str):
            return f"{name} must be a string"
    for name in ("user_id", "activity_id", "person_id", "org_id", "deal_id"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{name} must be an integer"
    note = body.get("note")
    if isinstance(note, str) and any(f"sscl-key: {key}" in note for key in state.refused_keys):
        return "The call log was refused by a validation rule of the company"
    if body.get("deal_id") is not None and body.get("lead_id") is not None:
        return "Only one of deal_id and lead_id can be given"
    if body.get("user_id") is not None and body["user_id"] not in state.users:
        return f"User {body['user_id']} not found"
    if body.get("person_id") is not None and body["person_id"] not in state.persons:
        return f"Person {body['person_id']} not found"
    if body.get("deal_id") is not None and body["deal_id"] not in state.deals:
        return f"Deal {body['deal_id']} not found"
    return None


def create_app(state: PipedriveState | None = None) -> web.Application:
    state = state or PipedriveState()

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        s = _state(request)
        if s.window is None:
            s.window = WindowLimit(s.rate_limit, 2.0)
        allowed, remaining, reset = s.window.hit()
        headers = {
            "x-ratelimit-limit": str(s.rate_limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(max(1, round(reset))),
        }
        if not allowed:
            if s.retry_after_on_429:
                headers["Retry-After"] = str(max(1, round(reset)))
            body = {"success": False, "error": "Rate limit has been exceeded", "errorCode": 429}
            return json_response(body, 429, headers)
        if request.path.endswith("/oauth/token"):
            response = await handler(request)
        else:
            user = _authorise(s, request)
            if user is None:
                response = _error(401, "unauthorized access")
            else:
                request[_USER] = user
                response = await handler(request)
        response.headers.update(headers)
        return response

    app = web.Application(middlewares=[fault_middleware(state), gate], client_max_size=UPLOAD_MAX)
    app[_STATE_KEY] = state
    for prefix in ("/v1", "/api/v1"):
        app.router.add_post(f"{prefix}/callLogs", add_call_log)
        app.router.add_get(f"{prefix}/callLogs", list_call_logs)
        app.router.add_get(f"{prefix}/callLogs/{{id}}", get_call_log)
        app.router.add_post(f"{prefix}/callLogs/{{id}}/recordings", add_recording)
        app.router.add_post(f"{prefix}/notes", add_note)
        app.router.add_get(f"{prefix}/notes", list_notes)
        app.router.add_get(f"{prefix}/users", list_users)
    app.router.add_get("/api/v2/persons/search", search_persons)
    app.router.add_post("/api/v2/persons", add_person)
    app.router.add_get("/api/v2/persons", list_persons)
    app.router.add_get("/api/v2/activities", list_activities)
    app.router.add_post("/api/v2/activities", add_activity)
    app.router.add_get("/api/v2/activities/{id}", get_activity)
    app.router.add_patch("/api/v2/activities/{id}", update_activity)
    app.router.add_post("/api/v1/files", add_file)
    app.router.add_get("/api/v1/files", list_files)
    app.router.add_get("/api/v2/deals", list_deals)
    app.router.add_post("/oauth/token", token)
    return app


def _authorise(state: PipedriveState, request: web.Request) -> int | None:
    token = request.headers.get("x-api-token") or request.query.get("api_token")
    if token is not None:
        return state.api_tokens.get(token)
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return state.access_tokens.get(auth.removeprefix("Bearer "))
    return None


async def token(request: web.Request) -> web.Response:
    state = _state(request)
    expected = base64.b64encode(f"{state.client_id}:{state.client_secret}".encode()).decode()
    if request.headers.get("Authorization") != f"Basic {expected}":
        return json_response({"success": False, "message": "Invalid client credentials"}, 401)
    form = await request.post()
    if form.get("grant_type") != "refresh_token":
        return json_response({"error": "unsupported_grant_type"}, 400)
    user = state.refresh_tokens.pop(str(form.get("refresh_token", "")), None)
    if user is None:
        return json_response(
            {"error": "invalid_grant", "message": "Invalid grant: refresh token is invalid"}, 400
        )
    access, refresh = secrets.token_hex(16), secrets.token_hex(16)
    state.access_tokens[access] = user
    state.refresh_tokens[refresh] = user
    # Mounted under a prefix, the company host is the prefix on this server.
    mount = request.path.removesuffix("/oauth/token")
    domain = state.api_domain or f"{request.url.origin()}{mount}"
    return json_response(
        {
            "access_token": access,
            "token_type": "Bearer",
            "refresh_token": refresh,
            "scope": "base,phone-integration,contacts:full,activities:read",
            "expires_in": 3599,
            "api_domain": domain,
        }
    )


async def add_call_log(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json(request)
    problem = _validate_call_log(state, body)
    if problem or not isinstance(body, dict):
        return _error(400, problem or "Request body must be a JSON object")
    log_id = secrets.token_hex(12)
    activity = _call_activity(state, body)
    if activity is None:
        return _error(400, f"Activity {body['activity_id']} not found or not a call")
    record = {
        "id": log_id,
        "activity_id": activity["id"],
        "person_id": activity.get("person_id"),
        "org_id": activity.get("org_id"),
        "deal_id": activity.get("deal_id"),
        "lead_id": activity.get("lead_id"),
        "subject": body.get("subject"),
        "duration": body.get("duration"),
        "outcome": body["outcome"],
        "from_phone_number": body.get("from_phone_number"),
        "to_phone_number": body["to_phone_number"],
        "has_recording": False,
        "start_time": body["start_time"],
        "end_time": body["end_time"],
        "user_id": body.get("user_id", request[_USER]),
        "company_id": 1,
        "note": body.get("note"),
    }
    state.call_logs[log_id] = record
    return json_response({"success": True, "data": record})


def _call_activity(state: PipedriveState, body: dict[str, object]) -> dict[str, object] | None:
    """The activity a new call log is (Pipedrive: "call logs are also considered
    activities"): the call-type ``activity_id`` given, whose person, organization and deal
    the log takes, else a new done call activity with the log's subject, links and note."""
    given = body.get("activity_id")
    if given is not None:
        found = state.activities.get(given) if isinstance(given, int) else None
        return found if found is not None and found.get("type") == "call" else None
    start = datetime.strptime(str(body["start_time"]), "%Y-%m-%d %H:%M:%S")
    minutes = -(-int(str(body.get("duration") or 0)) // 60)
    person = body.get("person_id")
    aid = state.next_id()
    state.activities[aid] = {
        "id": aid,
        "type": "call",
        "subject": body.get("subject") or "Call",
        "done": True,
        "due_date": start.strftime("%Y-%m-%d"),
        "due_time": start.strftime("%H:%M"),
        "duration": f"{minutes // 60:02d}:{minutes % 60:02d}",
        "note": body.get("note"),
        "person_id": person,
        "participants": [{"person_id": person, "primary": True}] if person else [],
        "org_id": body.get("org_id"),
        "deal_id": body.get("deal_id"),
        "lead_id": body.get("lead_id"),
        "update_time": state.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return state.activities[aid]


async def list_call_logs(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        start = int(request.query.get("start", "0"))
        limit = min(int(request.query.get("limit", "50")), 50)
    except ValueError:
        return _error(400, "start and limit must be integers")
    mine = [r for r in state.call_logs.values() if r["user_id"] == request[_USER]]
    mine.reverse()
    page = mine[start : start + limit]
    more = start + limit < len(mine)
    pagination: dict[str, object] = {
        "start": start,
        "limit": limit,
        "more_items_in_collection": more,
    }
    if more:
        pagination["next_start"] = start + limit
    return json_response(
        {"success": True, "data": page, "additional_data": {"pagination": pagination}}
    )


async def get_call_log(request: web.Request) -> web.Response:
    record = _state(request).call_logs.get(request.match_info["id"])
    if record is None:
        return _error(404, "Call log not found")
    return json_response({"success": True, "data": record})


async def add_recording(request: web.Request) -> web.Response:
    """``POST /v1/callLogs/{id}/recordings``: multipart ``file``, an audio file; a call log
    has one recording (a second upload is refused)."""
    state = _state(request)
    log_id = request.match_info["id"]
    record = state.call_logs.get(log_id)
    if record is None:
        return _error(404, "Call log not found")
    upload = (await multipart_fields(request)).get("file")
    if upload is None or not upload.filename:
        return _error(400, "file is required")
    if not upload.content_type.startswith("audio/"):
        return _error(400, "file must be an audio file")
    if record["has_recording"]:
        return _error(409, "Call log already has a recording")
    state.recordings[log_id] = (upload.filename, upload.data)
    record["has_recording"] = True
    return json_response({"success": True})


async def add_note(request: web.Request) -> web.Response:
    """``POST /v1/notes``: ``content`` (HTML) on a person, organization, deal or lead."""
    state = _state(request)
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("content"), str):
        return _error(400, "content is required")
    targets = ("person_id", "org_id", "deal_id", "lead_id")
    if not any(body.get(t) for t in targets):
        return _error(400, "one of person_id, org_id, deal_id or lead_id is required")
    person = body.get("person_id")
    if person is not None and person not in state.persons:
        return _error(400, "person_id: person not found")
    nid = state.next_id()
    state.notes[nid] = {
        "id": nid,
        "content": body["content"],
        **{t: body.get(t) for t in targets},
        "add_time": state.clock().strftime("%Y-%m-%d %H:%M:%S"),
        "user_id": request[_USER],
    }
    return json_response({"success": True, "data": state.notes[nid]})


async def list_notes(request: web.Request) -> web.Response:
    """``GET /v1/notes`` filtered by ``person_id``, ``deal_id``, ``lead_id``, ``org_id``."""
    state = _state(request)
    wanted = {
        t: request.query[t]
        for t in ("person_id", "org_id", "deal_id", "lead_id")
        if t in request.query
    }
    data = [
        n
        for n in state.notes.values()
        if all(str(n.get(t)) == value for t, value in wanted.items())
    ]
    return json_response({"success": True, "data": data, "additional_data": {"pagination": {}}})


async def list_users(request: web.Request) -> web.Response:
    return json_response({"success": True, "data": list(_state(request).users.values())})


async def search_persons(request: web.Request) -> web.Response:
    state = _state(request)
    term = request.query.get("term", "")
    exact = request.query.get("exact_match", "false").lower() in ("true", "1")
    fields = set(request.query.get("fields", "name,email,phone,notes,custom_fields").split(","))
    if len(term) < (1 if exact else 2):
        return _error(400, "term must be at least 2 characters long")
    try:
        limit = min(int(request.query.get("limit", "100")), 500)
    except ValueError:
        return _error(400, "limit must be an integer")
    items: list[dict[str, object]] = []
    for person in state.persons.values():
        phones = [str(p["value"]) for p in person["phones"]]  # type: ignore[attr-defined]
        hit = False
        if "phone" in fields:
            if exact:
                hit = any(p == term for p in phones)
            else:
                hit = bool(_digits(term)) and any(_digits(term) in _digits(p) for p in phones)
        if not hit and "name" in fields:
            name = str(person["name"]).lower()
            hit = name == term.lower() if exact else term.lower() in name
        if hit:
            org_id = person.get("org_id")
            items.append(
                {
                    "result_score": 1.0,
                    "item": {
                        "id": person["id"],
                        "type": "person",
                        "name": person["name"],
                        "phones": phones,
                        "emails": [],
                        "visible_to": 3,
                        "owner": {"id": person.get("owner_id")},
                        "organization": {"id": org_id, "name": f"Org {org_id}", "address": None}
                        if org_id
                        else None,
                        "custom_fields": [],
                        "notes": [],
                    },
                }
            )
    return json_response(
        {
            "success": True,
            "data": {"items": items[:limit]},
            "additional_data": {"next_cursor": None},
        }
    )


async def add_person(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
        return _error(400, "name is required")
    phones = body.get("phones", [])
    if not isinstance(phones, list) or not all(
        isinstance(p, dict) and isinstance(p.get("value"), str) for p in phones
    ):
        return _error(400, "phones must be a list of {value, primary, label} objects")
    pid = state.add_person(body["name"], [p["value"] for p in phones], body.get("org_id"))
    if isinstance(body.get("owner_id"), int):
        state.persons[pid]["owner_id"] = body["owner_id"]
    return json_response({"success": True, "data": state.persons[pid]})


async def list_persons(request: web.Request) -> web.Response:
    """``GET /api/v2/persons`` with ``ids`` (comma-separated, at most 100): full Person
    objects, including ``add_time`` and ``update_time`` (RFC 3339, UTC)."""
    state = _state(request)
    raw = [i for i in request.query.get("ids", "").split(",") if i]
    if len(raw) > 100 or not all(i.isdigit() for i in raw):
        return _error(400, "ids must be at most 100 comma-separated person ids")
    wanted = [int(i) for i in raw] if raw else list(state.persons)
    data = [state.persons[i] for i in wanted if i in state.persons]
    return json_response({"success": True, "data": data, "additional_data": {"next_cursor": None}})


ACTIVITY_FIELDS: Final = frozenset(
    {"subject", "type", "done", "due_date", "due_time", "duration", "note", "owner_id",
     "participants", "org_id", "deal_id", "lead_id", "person_id", "busy", "priority"}
)  # fmt: skip


def _activity_problem(state: PipedriveState, body: object, partial: bool) -> str | None:
    """What Pipedrive would refuse in an activity body (v2 field names and types)."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    unknown = sorted(set(body) - ACTIVITY_FIELDS)
    if unknown:
        return f"Unknown field(s): {', '.join(unknown)}"
    if not partial and not isinstance(body.get("subject"), str):
        return "subject is required"
    checks = (
        ("due_date", r"\d{4}-\d{2}-\d{2}"),
        ("due_time", r"\d{2}:\d{2}"),
        ("duration", r"\d{2}:\d{2}"),
    )
    for name, pattern in checks:
        if name in body and not (isinstance(body[name], str) and re.fullmatch(pattern, body[name])):
            return f"{name} is not in the expected format"
    if "done" in body and not isinstance(body["done"], bool):
        return "done must be a boolean"
    if "type" in body and body["type"] not in state.activity_types:
        return f"type {body['type']!r} is not an active activity type"
    for person in body.get("participants") or []:
        if not isinstance(person, dict) or person.get("person_id") not in state.persons:
            return "participants must name existing persons"
    if body.get("deal_id") is not None and body["deal_id"] not in state.deals:
        return f"Deal {body['deal_id']} not found"
    return None


async def add_activity(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json(request)
    problem = _activity_problem(state, body, partial=False)
    if problem or not isinstance(body, dict):
        return _error(400, problem or "Request body must be a JSON object")
    aid = state.next_id()
    participants = body.get("participants") or []
    state.activities[aid] = {
        "id": aid,
        "done": False,
        **body,
        "person_id": participants[0]["person_id"] if participants else body.get("person_id"),
        "update_time": state.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return json_response({"success": True, "data": state.activities[aid]})


async def get_activity(request: web.Request) -> web.Response:
    activity = _state(request).activities.get(int(request.match_info["id"]))
    if activity is None:
        return _error(404, "Activity not found")
    return json_response({"success": True, "data": activity})


async def update_activity(request: web.Request) -> web.Response:
    state = _state(request)
    activity = state.activities.get(int(request.match_info["id"]))
    if activity is None:
        return _error(404, "Activity not found")
    body = await _json(request)
    problem = _activity_problem(state, body, partial=True)
    if problem or not isinstance(body, dict):
        return _error(400, problem or "Request body must be a JSON object")
    activity.update(body)
    activity["update_time"] = state.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    return json_response({"success": True, "data": activity})


async def add_file(request: web.Request) -> web.Response:
    """``POST /v1/files``: multipart ``file`` attached to an ``activity_id`` (or a deal,
    person, organization)."""
    state = _state(request)
    fields = await multipart_fields(request)
    upload = fields.get("file")
    if upload is None or not upload.filename:
        return _error(400, "file is required")
    activity = fields["activity_id"].text() if "activity_id" in fields else ""
    if not activity.isdigit() or int(activity) not in state.activities:
        return _error(400, "activity_id: activity not found")
    fid = state.next_id()
    record: dict[str, object] = {
        "id": fid,
        "activity_id": int(activity),
        "name": upload.filename,
        "file_type": upload.filename.rsplit(".", 1)[-1],
        "file_size": len(upload.data),
    }
    state.files[fid] = (record, upload.data)
    return json_response({"success": True, "data": record})


async def list_files(request: web.Request) -> web.Response:
    data = [record for record, _ in _state(request).files.values()]
    return json_response({"success": True, "data": data, "additional_data": {"pagination": {}}})


async def list_deals(request: web.Request) -> web.Response:
    """``GET /api/v2/deals`` filtered by ``person_id`` and ``status`` (open, won, lost)."""
    state = _state(request)
    person = request.query.get("person_id")
    status = request.query.get("status")
    if status is not None and status not in ("open", "won", "lost", "deleted"):
        return _error(400, "status must be one of open, won, lost, deleted")
    data = [
        d
        for d in state.deals.values()
        if (person is None or str(d["person_id"]) == person)
        and (status is None or d["status"] == status)
    ]
    return json_response({"success": True, "data": data, "additional_data": {"next_cursor": None}})


async def list_activities(request: web.Request) -> web.Response:
    """``GET /api/v2/activities``: ``person_id`` (the primary participant),
    ``updated_since`` (``update_time`` at or after) / ``updated_until`` (before), RFC 3339;
    ``limit`` (default 100, at most 500) and ``cursor`` (the opaque marker of the next page,
    answered in ``additional_data.next_cursor``, null on the last page); ordered by id."""
    state = _state(request)
    person = request.query.get("person_id")
    bounds: list[str | None] = []
    for name in ("updated_since", "updated_until"):
        value = request.query.get(name)
        if value is not None:
            try:
                # Compared as text below: the stand-in writes every update_time in this form.
                value = datetime.fromisoformat(value.replace("Z", "+00:00")).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
            except ValueError:
                return _error(400, f"{name} must be an RFC 3339 date-time")
        bounds.append(value)
    since, until = bounds
    try:
        limit = int(request.query.get("limit", "100"))
        start = (
            int(base64.urlsafe_b64decode(request.query["cursor"]))
            if "cursor" in request.query
            else 0
        )
    except ValueError:
        return _error(400, "limit must be an integer and cursor one this API answered")
    if not 1 <= limit <= ACTIVITIES_LIMIT:
        return _error(400, f"limit must be between 1 and {ACTIVITIES_LIMIT}")
    data = [
        a
        for _, a in sorted(state.activities.items())
        if person is None or str(a["person_id"]) == person
        if since is None or str(a["update_time"]) >= since
        if until is None or str(a["update_time"]) < until
    ]
    page = data[start : start + limit]
    more = start + limit < len(data)
    cursor = base64.urlsafe_b64encode(str(start + limit).encode()).decode() if more else None
    return json_response(
        {"success": True, "data": page, "additional_data": {"next_cursor": cursor}}
    )
