"""Stand-in for Bullhorn: the OAuth server, the REST login and the REST API of one corporation.

What it serves and checks, after Bullhorn's REST API reference (``bullhorn/rest-api-docs``:
getting started, login, entity, query, search, errors; the Note entity reference):

* ``POST /oauth/token``: refresh-token grant (form or query); every refresh answers a new
  refresh token and revokes the old one (single use); access tokens live ``access_ttl``
  seconds. A bad token is 400 ``invalid_grant``.
* ``GET /rest-services/login?version=2.0&access_token=``: a ``BhRestToken`` and the
  ``restUrl`` of the corporation (this server, ``/rest-services/<corp>/``); an unknown
  access token is 401. ``expire_sessions()`` ends every REST session; the API then answers
  401 ``errors.authentication.invalidRestToken``.
* ``PUT entity/Note`` (create): ``comments`` and ``personReference`` (a ClientContact,
  Candidate or Lead that exists) are required, ``action`` must be in
  ``comment_action_list`` (at most 30 characters), ``commentingPerson`` a CorporateUser
  (default: the API user), ``externalID`` at most 100 characters, ``minutesSpent`` and
  ``dateAdded`` integers; anything else is a 400 ``errors.cannotPersistEntity`` naming the
  property. ``PUT entity/Candidate`` creates a candidate.
* ``GET query/{Note,CorporateUser}?where=`` (``field=value`` and ``field IN (...)`` joined
  by AND) and ``GET search/{ClientContact,Candidate,Lead}?query=`` (Lucene:
  ``field:"value"`` joined by OR, AND ``isDeleted:false``), with ``fields`` and ``count``.
* a Note read and updated, files of a person: ``simulator/crm/bullhorn_records.py``.
* ``RateLimit-Limit``/``-Remaining``/``-Reset`` on every REST answer; past ``rate_limit``
  requests a second, 429 asking to wait a second.
"""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from sscl_daemon.simulator.crm import bullhorn_records
from sscl_daemon.simulator.crm.common import (
    Handler,
    StandInState,
    WindowLimit,
    fault_middleware,
    json_response,
)

CLIENT_ID: Final = "sscl-bullhorn-client"
CLIENT_SECRET: Final = "sscl-bullhorn-secret"
REFRESH_TOKEN: Final = "sscl-bullhorn-refresh-0"
CORP: Final = "corp7"
# dateAdded/dateLastModified of seeded people, epoch ms (tests set their own to order them).
RECORD_TIME_MS: Final = 1_767_603_600_000
PERSON_ENTITIES: Final = ("ClientContact", "Candidate", "Lead")
NOTE_FIELDS: Final = frozenset(
    {
        "comments",
        "action",
        "personReference",
        "commentingPerson",
        "dateAdded",
        "minutesSpent",
        "externalID",
    }
)
_STATE_KEY: Final = web.AppKey("bullhorn_state", object)


class BhError(Exception):
    def __init__(self, status: int, key: str, message: str, prop: str | None = None) -> None:
        super().__init__(message)
        self.status, self.key, self.message, self.prop = status, key, message, prop

    def response(self) -> web.Response:
        body: dict[str, object] = {
            "errorMessage": self.message,
            "errorMessageKey": self.key,
            "errorCode": self.status,
        }
        if self.prop:
            body["errors"] = [
                {
                    "propertyName": self.prop,
                    "severity": "ERROR",
                    "type": "INVALID_VALUE",
                    "detailMessage": self.message,
                }
            ]
        return json_response(body, self.status)


@dataclass
class BullhornState(StandInState):
    """One Bullhorn corporation; tests seed and inspect it directly."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    refresh_tokens: set[str] = field(default_factory=lambda: {REFRESH_TOKEN})
    access_tokens: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    comment_action_list: tuple[str, ...] = ("Inbound Call", "Outbound Call", "Left Message", "Call")
    people: dict[str, dict[int, dict[str, object]]] = field(
        default_factory=lambda: {e: {} for e in PERSON_ENTITIES}
    )
    users: dict[int, dict[str, object]] = field(default_factory=dict)
    notes: dict[int, dict[str, object]] = field(default_factory=dict)
    # Files by id (``entity``: (entity, id), ``data``: the bytes), and (Note id, fields) of
    # every Note update (``bullhorn_records.py``).
    files: dict[int, dict[str, object]] = field(default_factory=dict)
    note_updates: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    rate_limit: int = 100
    window: WindowLimit | None = None
    api_user: int = 0
    token_grants: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(4001))

    def __post_init__(self) -> None:
        self.api_user = self.add_user("api.user@agency.example")

    def new_id(self) -> int:
        return next(self._ids)

    def add_user(self, email: str) -> int:
        uid = self.new_id()
        self.users[uid] = {"id": uid, "email": email, "enabled": True, "isDeleted": False}
        return uid

    def add_person(self, entity: str, name: str, phone: str, mobile: str | None = None) -> int:
        pid = self.new_id()
        self.people[entity][pid] = {
            "id": pid,
            "name": name,
            "phone": phone,
            "mobile": mobile,
            "isDeleted": False,
            "dateAdded": RECORD_TIME_MS,
            "dateLastModified": RECORD_TIME_MS,
        }
        return pid

    def person(self, pid: object) -> dict[str, object] | None:
        return next((t[pid] for t in self.people.values() if pid in t), None)

    def expire_sessions(self) -> None:
        self.sessions.clear()
        self.access_tokens.clear()

    def current_refresh_token(self) -> str | None:
        return next(iter(self.refresh_tokens), None)


def _state(request: web.Request) -> BullhornState:
    state = request.app[_STATE_KEY]
    assert isinstance(state, BullhornState)
    return state


def _pick(row: dict[str, object], request: web.Request) -> dict[str, object]:
    wanted = [f for f in request.query.get("fields", "id").split(",") if f]
    return {f: row.get(f) for f in wanted}


def _where(text: str) -> list[tuple[str, set[object]]]:
    """``field=value`` / ``field IN (...)`` conditions joined by AND."""
    conditions = []
    for part in re.split(r"\s+AND\s+", text.strip(), flags=re.I):
        if m := re.match(r"^(\w+)\s+IN\s+\((.*)\)$", part, re.I):
            values: set[object] = {
                v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", m.group(2))
            }
            conditions.append((m.group(1), values))
        elif m := re.match(r"^(\w+)\s*=\s*(.+)$", part):
            raw = m.group(2).strip()
            value: object = (
                raw[1:-1].replace("''", "'")
                if raw.startswith("'")
                else {"true": True, "false": False}.get(raw, raw)
            )
            conditions.append((m.group(1), {value}))
        else:
            raise BhError(400, "errors.badQuery", f"unsupported condition: {part}")
    return conditions


async def token(request: web.Request) -> web.Response:
    state = _state(request)
    form = dict(await request.post())
    form.update(request.query)
    if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
        return json_response(
            {"error": "invalid_client", "error_description": "Bad client credentials"}, 401
        )
    if form.get("grant_type") != "refresh_token":
        return json_response({"error": "unsupported_grant_type"}, 400)
    old = form.get("refresh_token")
    if old not in state.refresh_tokens:
        return json_response(
            {
                "error": "invalid_grant",
                "error_description": "Invalid, expired, or revoked refresh token",
            },
            400,
        )
    state.refresh_tokens.discard(str(old))
    new_refresh = f"sscl-bullhorn-refresh-{secrets.token_hex(8)}"
    state.refresh_tokens.add(new_refresh)
    access = f"bh-at-{secrets.token_hex(12)}"
    state.access_tokens.add(access)
    state.token_grants += 1
    return json_response(
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 600,
            "refresh_token": new_refresh,
        }
    )


async def login(request: web.Request) -> web.Response:
    state = _state(request)
    if request.query.get("access_token") not in state.access_tokens:
        return BhError(
            401, "errors.authentication.invalidAccessToken", "Invalid access token"
        ).response()
    rest_token = secrets.token_hex(16)
    state.sessions.add(rest_token)
    mount = request.path.removesuffix("/rest-services/login")
    return json_response(
        {
            "BhRestToken": rest_token,
            "restUrl": f"{request.url.origin()}{mount}/rest-services/{CORP}/",
        }
    )


def _check_note(state: BullhornState, body: object) -> dict[str, object]:
    if not isinstance(body, dict):
        raise BhError(400, "errors.cannotPersistEntity", "the body must be a JSON object")
    unknown = sorted(set(body) - NOTE_FIELDS)
    if unknown:
        raise BhError(
            400,
            "errors.cannotPersistEntity",
            f"error persisting an entity of type: Note: no property {unknown[0]}",
            unknown[0],
        )
    if not isinstance(body.get("comments"), str) or not body["comments"]:
        raise BhError(400, "errors.cannotPersistEntity", "comments may not be null", "comments")
    ref = body.get("personReference")
    if not isinstance(ref, dict) or state.person(ref.get("id")) is None:
        raise BhError(
            400,
            "errors.cannotPersistEntity",
            "personReference may not be null and must exist",
            "personReference",
        )
    action = body.get("action")
    if action is not None and (
        not isinstance(action, str) or len(action) > 30 or action not in state.comment_action_list
    ):
        raise BhError(
            400,
            "errors.cannotPersistEntity",
            f"action {action!r} is not in commentActionList",
            "action",
        )
    who = body.get("commentingPerson", {"id": state.api_user})
    if not isinstance(who, dict) or who.get("id") not in state.users:
        raise BhError(
            400,
            "errors.cannotPersistEntity",
            "commentingPerson must be a CorporateUser",
            "commentingPerson",
        )
    external = body.get("externalID")
    if external is not None and (not isinstance(external, str) or len(external) > 100):
        raise BhError(
            400, "errors.cannotPersistEntity", "externalID is at most 100 characters", "externalID"
        )
    for name in ("minutesSpent", "dateAdded"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BhError(400, "errors.cannotPersistEntity", f"{name} must be an integer", name)
    if external in state.refused_keys:
        raise BhError(
            400,
            "errors.cannotPersistEntity",
            "the Note was refused by a corporation validation rule",
            "comments",
        )
    return {**body, "commentingPerson": {"id": who["id"]}, "isDeleted": False}


async def put_entity(request: web.Request) -> web.Response:
    state = _state(request)
    entity = request.match_info["entity"]
    try:
        body = await request.json()
    except ValueError:
        body = None
    if entity == "Note":
        record = _check_note(state, body)
        nid = state.new_id()
        state.notes[nid] = {"id": nid, **record}
        return json_response(
            {
                "changedEntityType": "Note",
                "changedEntityId": nid,
                "changeType": "INSERT",
                "data": record,
            }
        )
    if entity == "Candidate":
        if not isinstance(body, dict) or not body.get("lastName"):
            raise BhError(400, "errors.cannotPersistEntity", "lastName may not be null", "lastName")
        pid = state.add_person(
            "Candidate", str(body.get("name") or body["lastName"]), str(body.get("phone", ""))
        )
        return json_response(
            {
                "changedEntityType": "Candidate",
                "changedEntityId": pid,
                "changeType": "INSERT",
                "data": body,
            }
        )
    raise BhError(400, "errors.cannotPersistEntity", f"PUT entity/{entity} is not supported here")


async def query(request: web.Request) -> web.Response:
    state = _state(request)
    entity = request.match_info["entity"]
    tables = {"Note": state.notes, "CorporateUser": state.users}
    if entity not in tables:
        raise BhError(400, "errors.badEntity", f"query/{entity} is not supported here")
    conditions = _where(request.query.get("where", ""))
    rows = [
        r for r in tables[entity].values() if all(r.get(f) in values for f, values in conditions)
    ]
    count = int(request.query.get("count", "20"))
    data = [_pick(r, request) for r in rows[:count]]
    return json_response({"start": 0, "count": len(data), "data": data})


async def search(request: web.Request) -> web.Response:
    state = _state(request)
    entity = request.match_info["entity"]
    if entity not in state.people:
        raise BhError(400, "errors.badEntity", f"search/{entity} is not supported")
    text = request.query.get("query", "")
    terms = re.findall(r'(\w+):"([^"]*)"', text)
    if not terms:
        raise BhError(400, "errors.badQuery", 'query needs field:"value" terms')
    rows = [
        p
        for p in state.people[entity].values()
        if not p["isDeleted"] and any(p.get(f) == v for f, v in terms)
    ]
    count = int(request.query.get("count", "20"))
    data = [_pick(r, request) for r in rows[:count]]
    return json_response({"total": len(rows), "start": 0, "count": len(data), "data": data})


def create_app(state: BullhornState | None = None) -> web.Application:
    state = state or BullhornState()

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        s = _state(request)
        if request.path.endswith(("/oauth/token", "/rest-services/login")):
            return await handler(request)
        if s.window is None:
            s.window = WindowLimit(s.rate_limit, 1.0)
        allowed, remaining, reset = s.window.hit()
        limits = {
            "RateLimit-Limit": str(s.rate_limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(max(1, round(reset))),
        }
        if not allowed:
            response = BhError(
                429,
                "errors.rateLimited",
                "rate limited - wait 1 second then retry until successful",
            ).response()
        elif (
            request.headers.get("BhRestToken") or request.query.get("BhRestToken")
        ) not in s.sessions:
            response = BhError(
                401, "errors.authentication.invalidRestToken", "Bad 'BhRestToken' or timed-out."
            ).response()
        else:
            try:
                response = await handler(request)  # type: ignore[assignment]
            except BhError as exc:
                response = exc.response()
        response.headers.update(limits)
        return response

    app = web.Application(
        middlewares=[fault_middleware(state), gate], client_max_size=bullhorn_records.UPLOAD_MAX
    )
    app[_STATE_KEY] = state
    app.router.add_post("/oauth/token", token)
    app.router.add_get("/rest-services/login", login)
    app.router.add_post("/rest-services/login", login)
    base = f"/rest-services/{CORP}"
    app.router.add_put(base + "/entity/{entity}", put_entity)
    app.router.add_get(base + "/query/{entity}", query)
    app.router.add_get(base + "/search/{entity}", search)
    bullhorn_records.add_routes(app, state, base, NOTE_FIELDS, _check_note)
    return app
