"""The third-party package's own stand-in for its CRM (what it runs the conformance kit on)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from sscl_daemon.simulator.crm.common import StandInState, fault_middleware, json_response

API_KEY: Final = "ledgerly-test-api-key"
_STATE: Final = web.AppKey("ledgerly", object)


@dataclass
class LedgerlyState(StandInState):
    people: dict[str, dict[str, object]] = field(default_factory=dict)
    users: dict[str, dict[str, object]] = field(default_factory=dict)
    entries: dict[str, dict[str, object]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def add_person(self, name: str, phone: str) -> str:
        pid = self.new_id("per")
        self.people[pid] = {"id": pid, "name": name, "phone": phone}
        return pid

    def add_user(self, email: str) -> str:
        uid = self.new_id("usr")
        self.users[uid] = {"id": uid, "email": email}
        return uid


def create_app(state: LedgerlyState) -> web.Application:
    def st(request: web.Request) -> LedgerlyState:
        found = request.app[_STATE]
        assert isinstance(found, LedgerlyState)
        return found

    @web.middleware
    async def auth(request: web.Request, handler: object) -> web.StreamResponse:
        if request.headers.get("X-Api-Key") != API_KEY:
            return json_response({"error": "invalid API key"}, 401)
        return await handler(request)  # type: ignore[operator,no-any-return]

    async def people(request: web.Request) -> web.Response:
        phone = request.query.get("phone")
        return json_response([p for p in st(request).people.values() if p["phone"] == phone])

    async def add_person(request: web.Request) -> web.Response:
        body = await request.json()
        pid = st(request).add_person(str(body["name"]), str(body["phone"]))
        return json_response(st(request).people[pid], 201)

    async def users(request: web.Request) -> web.Response:
        return json_response(list(st(request).users.values()))

    async def entries(request: web.Request) -> web.Response:
        key = request.query.get("key")
        return json_response([e for e in st(request).entries.values() if e["key"] == key])

    async def add_entry(request: web.Request) -> web.Response:
        s = st(request)
        body = await request.json()
        key = body.get("key")
        if not isinstance(key, str) or not isinstance(body.get("subject"), str):
            return json_response({"error": "key and subject are required"}, 422)
        if key in s.refused_keys:
            return json_response({"error": "entry refused by the notebook's rules"}, 422)
        for entry in s.entries.values():
            if entry["key"] == key:
                return json_response({"id": entry["id"], "error": "duplicate key"}, 409)
        for ref, table in (("person_id", s.people), ("owner_id", s.users)):
            if body.get(ref) is not None and body[ref] not in table:
                return json_response({"error": f"{ref} {body[ref]} does not exist"}, 422)
        eid = s.new_id("ent")
        s.entries[eid] = {"id": eid, **body}
        return json_response({"id": eid}, 201)

    app = web.Application(middlewares=[fault_middleware(state), auth])
    app[_STATE] = state
    app.router.add_get("/people", people)
    app.router.add_post("/people", add_person)
    app.router.add_get("/users", users)
    app.router.add_get("/notebooks/{notebook}/entries", entries)
    app.router.add_post("/notebooks/{notebook}/entries", add_entry)
    return app
