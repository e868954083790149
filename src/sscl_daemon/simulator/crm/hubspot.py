"""Stand-in for the HubSpot CRM v3 API the HubSpot writer uses (simulator -> tests, benchmark).

Serves, over loopback, what ``crm/hubspot.py`` calls and checks requests the way HubSpot
documents them:

* auth: ``Authorization: Bearer`` with the private-app token or an OAuth access token issued
  by ``POST /oauth/v1/token`` (refresh-token grant; tokens expire after ``token_ttl``);
  otherwise 401 ``INVALID_AUTHENTICATION`` / ``EXPIRED_AUTHENTICATION``;
* calls: create, batch create (at most 100 inputs), batch read and read by ``idProperty``,
  search; contacts: create, search; owners list. Property values must be strings, the
  properties must exist (our key property ``key_name`` only after ``key_property`` setup), enums
  (direction, status, disposition GUIDs) and numbers are checked, ``hs_timestamp`` is
  required, associations must name existing contacts with a known type; errors use HubSpot's
  body (``status``, ``message``, ``category``, ``correlationId``);
* properties: ``GET /crm/v3/properties/calls/{name}`` answers our key property's definition
  (``hasUniqueValue`` = ``key_unique``) or 404. HubSpot documents unique-value properties for
  contacts, companies, deals, tickets and custom objects, not calls, so by default the key
  property is a plain one (``key_unique = False``): two calls may carry the same key and
  ``idProperty`` reads are refused; a test that models a portal where the key is unique sets
  ``key_unique``, and then a second record with the same value is refused (400
  ``VALIDATION_ERROR``, the error naming the property in ``context.propertyName``);
* reads by id (or unique property) see a record at once, search only after ``index_delay``
  (HubSpot's search index lags behind writes);
* files and updates: ``POST /files/v3/files`` (multipart ``file``, ``fileName``,
  ``folderPath``, ``options`` JSON with ``access`` and ``overwrite``: a file of the same name
  in the same folder is replaced and keeps its id), ``PATCH /crm/v3/objects/calls/{id}``
  (``hs_attachment_ids`` are ``;``-separated file ids that must exist), ``POST
  /crm/v3/objects/notes`` and ``PUT /crm/v4/objects/notes/{id}/associations/default/calls/
  {callId}``; tests read ``files``, ``notes`` and a call's ``properties``;
* deals: a contact's deals (``GET /crm/v4/objects/contacts/{id}/associations/deals``),
  ``POST /crm/v3/objects/deals/batch/read``; a call may be associated with a deal (type 206);
* rate limit: ``burst`` requests per 10 s rolling window, announced in
  ``X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds`` (not on search, like HubSpot),
  answered past the budget with 429 and the ``RATE_LIMIT`` body.

Batch create answers its results in reverse order: HubSpot does not promise input order, so
the writer must match by key. Tests read ``calls``/``contacts`` and the request journal.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from sscl_daemon.crm.content import national_digits, to_e164
from sscl_daemon.simulator.crm.common import (
    GrantRefusal,
    Handler,
    StandInState,
    WindowLimit,
    fault_middleware,
    json_response,
    refresh_refusal,
)
from sscl_daemon.simulator.crm.uploads import multipart_fields

PRIVATE_TOKEN = "pat-na1-00000000-sscl-demo"
CLIENT_ID = "sscl-hubspot-client"
CLIENT_SECRET = "sscl-hubspot-secret"
REFRESH_TOKEN = "sscl-hubspot-refresh"
KEY_PROPERTY = "sscl_call_key"

CALL_PROPERTIES = frozenset(
    {
        "hs_timestamp",
        "hs_call_title",
        "hs_call_body",
        "hs_call_direction",
        "hs_call_disposition",
        "hs_call_duration",
        "hs_call_from_number",
        "hs_call_to_number",
        "hs_call_status",
        "hs_call_recording_url",
        "hs_call_external_id",
        "hs_call_external_account_id",
        "hs_call_source",
        "hs_attachment_ids",
        "hubspot_owner_id",
    }
)
NOTE_PROPERTIES = frozenset(
    {"hs_timestamp", "hs_note_body", "hs_attachment_ids", "hubspot_owner_id"}
)
FILE_ACCESS = frozenset(
    {
        "PUBLIC_INDEXABLE",
        "PUBLIC_NOT_INDEXABLE",
        "HIDDEN_INDEXABLE",
        "HIDDEN_NOT_INDEXABLE",
        "HIDDEN_PRIVATE",
        "PRIVATE",
    }
)
# The largest request the stand-in takes (a file upload); larger ones are answered 413.
UPLOAD_MAX = 100 * 1024 * 1024
CONTACT_PROPERTIES = frozenset(
    {"firstname", "lastname", "email", "phone", "mobilephone", "hubspot_owner_id", "company"}
)
DIRECTIONS = frozenset({"INBOUND", "OUTBOUND"})
STATUSES = frozenset(
    {
        "BUSY",
        "CALLING_CRM_USER",
        "CANCELED",
        "COMPLETED",
        "CONNECTING",
        "FAILED",
        "IN_PROGRESS",
        "NO_ANSWER",
        "QUEUED",
        "RINGING",
    }
)
DISPOSITIONS = frozenset(
    {
        "9d9162e7-6cf3-4944-bf63-4dff82258764",  # Busy
        "f240bbac-87c9-4f6e-bf70-924b57d47db7",  # Connected
        "a4c4c377-d246-4b32-a13b-75a56a4cd0ff",  # Left live message
        "b2cf5968-551e-4856-9783-52b3da59a7d0",  # Left voicemail
        "73a0d17f-1163-4015-bdd5-ec830791da20",  # No answer
        "17b47fee-58de-441e-a44c-c6300d46f273",  # Wrong number
    }
)
CALL_TO_CONTACT = 194
CALL_TO_DEAL = 206
BATCH_MAX = 100
TOKEN_ERRORS = {
    GrantRefusal.GRANT_TYPE: {"status": "BAD_GRANT_TYPE", "message": "unsupported grant_type"},
    GrantRefusal.CLIENT: {"status": "BAD_CLIENT_ID", "message": "missing or unknown client id"},
    GrantRefusal.REFRESH_TOKEN: {
        "status": "BAD_REFRESH_TOKEN",
        "message": "missing or invalid refresh token",
    },
}
SEARCH_LIMIT_MAX = 200
WINDOW_MS = 10_000


class ApiError(Exception):
    """An error answer in HubSpot's shape."""

    def __init__(self, status: int, message: str, category: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, object] = {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
            **extra,
        }


def _invalid(message: str, prop: str | None = None, code: str = "INVALID_OPTION") -> ApiError:
    detail = {"isValid": False, "message": message, "error": code, "name": prop or ""}
    return ApiError(
        400,
        f"Property values were not valid: [{detail}]",
        "VALIDATION_ERROR",
        errors=[{"message": message, "code": code, "context": {"propertyName": [prop or ""]}}],
    )


@dataclass
class HsObject:
    id: str
    properties: dict[str, str]
    associations: list[str] = field(default_factory=list)  # contact ids
    created_at: str = ""
    searchable_from: float = 0.0  # search is an index: new records show up after a delay

    def public(self, wanted: list[str] | None = None) -> dict[str, object]:
        props = dict(self.properties)
        if wanted is not None:
            props = {k: v for k, v in props.items() if k in wanted}
        props["hs_object_id"] = self.id
        return {
            "id": self.id,
            "properties": props,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "archived": False,
        }


@dataclass
class HsFile:
    id: str
    name: str
    folder: str
    access: str
    data: bytes
    content_type: str

    def public(self, base: str) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name.rsplit(".", 1)[0],
            "extension": self.name.rsplit(".", 1)[-1],
            "path": f"{self.folder}/{self.name}",
            "size": len(self.data),
            "type": "AUDIO" if self.content_type.startswith("audio/") else "OTHER",
            "access": self.access,
            "url": f"{base}/hubfs/{self.id}/{self.name}",
            "archived": False,
        }


@dataclass
class HubSpotState(StandInState):
    """What the stand-in portal holds; tests seed contacts/owners and read ``calls``."""

    private_token: str | None = PRIVATE_TOKEN
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    refresh_token: str = REFRESH_TOKEN
    token_ttl: int = 1800
    key_property: bool = True  # the one-time setup (the call property for our key) was done
    key_name: str = KEY_PROPERTY  # its internal name
    key_unique: bool = False  # the property has unique values (not documented for calls)
    index_delay: float = 0.0  # seconds before a call created through the API is searchable
    burst: int = 1000
    clock: Callable[[], float] = field(default=lambda: datetime.now(UTC).timestamp())
    calls: dict[str, HsObject] = field(default_factory=dict)
    contacts: dict[str, HsObject] = field(default_factory=dict)
    notes: dict[str, HsObject] = field(default_factory=dict)
    deals: dict[str, HsObject] = field(default_factory=dict)
    files: dict[str, HsFile] = field(default_factory=dict)
    owners: list[dict[str, object]] = field(default_factory=list)
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    token_requests: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(51_000_000_001))
    _limit: WindowLimit | None = None

    def next_id(self) -> str:
        return str(next(self._ids))

    def now_iso(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="milliseconds")

    def add_contact(self, phone: str, firstname: str = "", lastname: str = "", **props: str) -> str:
        obj = HsObject(
            self.next_id(),
            {"phone": phone, "firstname": firstname, "lastname": lastname, **props},
            created_at=self.now_iso(),
        )
        self.contacts[obj.id] = obj
        return obj.id

    def add_deal(self, contact_id: str, name: str, closed: bool = False, modified: str = "") -> str:
        """A deal associated with the contact (``hs_is_closed``, ``hs_lastmodifieddate``)."""
        props = {
            "dealname": name,
            "hs_is_closed": "true" if closed else "false",
            "hs_lastmodifieddate": modified or self.now_iso(),
        }
        obj = HsObject(self.next_id(), props, [contact_id], created_at=self.now_iso())
        self.deals[obj.id] = obj
        return obj.id

    def add_owner(self, email: str, first: str = "", last: str = "") -> str:
        oid = str(100_000 + len(self.owners) + 1)
        self.owners.append(
            {
                "id": oid,
                "email": email,
                "firstName": first,
                "lastName": last,
                "userId": 9_000_000 + len(self.owners),
                "createdAt": self.now_iso(),
                "updatedAt": self.now_iso(),
                "archived": False,
            }
        )
        return oid

    def add_call(self, properties: Mapping[str, str]) -> str:
        """A call logged by someone else (a user's own client), without our key."""
        obj = HsObject(self.next_id(), dict(properties), created_at=self.now_iso())
        self.calls[obj.id] = obj
        return obj.id

    def call_by_key(self, key: str) -> HsObject | None:
        return next(
            (c for c in self.calls.values() if c.properties.get(self.key_name) == key), None
        )


# -- validation ------------------------------------------------------------------------------


def _epoch_ms(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


def _string_props(state: HubSpotState, body: object, known: frozenset[str]) -> dict[str, str]:
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise ApiError(400, "Invalid input JSON: properties is required", "VALIDATION_ERROR")
    props: dict[str, str] = {}
    for name, value in body["properties"].items():
        if name not in known and not (name == state.key_name and state.key_property):
            raise ApiError(
                400,
                f'Property values were not valid: Property "{name}" does not exist',
                "VALIDATION_ERROR",
                errors=[
                    {
                        "message": f'Property "{name}" does not exist',
                        "code": "PROPERTY_DOESNT_EXIST",
                    }
                ],
            )
        if not isinstance(value, str):
            raise ApiError(
                400,
                f"Invalid input JSON on line 1: Cannot deserialize value of type `java.lang.String` for {name}",
                "VALIDATION_ERROR",
            )
        props[name] = value
    return props


def _check_call(state: HubSpotState, props: dict[str, str], taken: set[str]) -> None:
    if "hs_timestamp" not in props:
        raise _invalid("hs_timestamp is required", "hs_timestamp", "REQUIRED_FIELD")
    if _epoch_ms(props["hs_timestamp"]) is None:
        raise _invalid(f"{props['hs_timestamp']!r} is not a valid datetime", "hs_timestamp")
    checks = (
        ("hs_call_direction", DIRECTIONS),
        ("hs_call_status", STATUSES),
        ("hs_call_disposition", DISPOSITIONS),
    )
    for name, allowed in checks:
        if name in props and props[name] not in allowed:
            raise _invalid(f"{props[name]!r} was not one of the allowed options", name)
    duration = props.get("hs_call_duration")
    if duration is not None and not duration.isdigit():
        raise _invalid(f"{duration!r} is not a valid number", "hs_call_duration", "INVALID_INTEGER")
    url = props.get("hs_call_recording_url")
    if url is not None and not url.startswith("https://"):
        raise _invalid("recording URL must use https", "hs_call_recording_url", "INVALID_URL")
    owner = props.get("hubspot_owner_id")
    if owner and owner not in {str(o["id"]) for o in state.owners}:
        raise _invalid(f"{owner!r} is not a valid owner id", "hubspot_owner_id")
    key = props.get(state.key_name)
    if key is not None:
        if state.key_unique and (key in taken or state.call_by_key(key) is not None):
            raise _invalid(
                f"{state.key_name}: a call already has the unique value {key!r}",
                state.key_name,
                "INVALID_UNIQUE_VALUE",
            )
        taken.add(key)
        if key in state.refused_keys:
            raise _invalid(
                f"{state.key_name}: the call was refused by a validation rule of the portal",
                state.key_name,
            )


def _check_associations(state: HubSpotState, body: Mapping[str, object]) -> list[str]:
    raw = body.get("associations", [])
    if not isinstance(raw, list):
        raise ApiError(400, "Invalid input JSON: associations must be an array", "VALIDATION_ERROR")
    ids: list[str] = []
    for assoc in raw:
        to = assoc.get("to") if isinstance(assoc, dict) else None
        types = assoc.get("types") if isinstance(assoc, dict) else None
        if not isinstance(to, dict) or not isinstance(types, list) or not types:
            raise ApiError(
                400, "Invalid input JSON: association needs to and types", "VALIDATION_ERROR"
            )
        for spec in types:
            if (
                not isinstance(spec, dict)
                or spec.get("associationCategory")
                not in ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED")
                or not isinstance(spec.get("associationTypeId"), int)
            ):
                raise ApiError(400, f"Invalid association type {spec!r}", "VALIDATION_ERROR")
            if spec["associationTypeId"] not in (CALL_TO_CONTACT, CALL_TO_DEAL):
                raise ApiError(
                    400,
                    f"association type {spec['associationTypeId']} is not valid from calls",
                    "VALIDATION_ERROR",
                )
        target = str(to.get("id", ""))
        kinds = {spec["associationTypeId"] for spec in types}
        known = state.deals if kinds == {CALL_TO_DEAL} else state.contacts
        if target not in known:
            what = "deal" if known is state.deals else "contact"
            raise ApiError(
                400, f"No {what} with id {target} exists to associate with", "VALIDATION_ERROR"
            )
        ids.append(target)
    return ids


# -- search ----------------------------------------------------------------------------------


def _searchable(obj: HsObject) -> dict[str, str]:
    props = dict(obj.properties)
    for src, dst in (
        ("phone", "hs_searchable_calculated_phone_number"),
        ("mobilephone", "hs_searchable_calculated_mobile_number"),
    ):
        e164 = to_e164(props.get(src), "US")
        national = national_digits(e164) if e164 else None
        if national:
            props[dst] = national
    return props


def _matches(props: Mapping[str, str], flt: Mapping[str, object]) -> bool:
    name = str(flt.get("propertyName", ""))
    op = flt.get("operator")
    have = props.get(name)
    if op == "HAS_PROPERTY":
        return bool(have)
    if op == "NOT_HAS_PROPERTY":
        return not have
    if have is None:
        return False
    if op == "EQ":
        return have == str(flt.get("value"))
    if op == "IN":
        values = flt.get("values")
        return isinstance(values, list) and have in [str(v) for v in values]
    if op == "BETWEEN":
        low, high = _epoch_ms(str(flt.get("value"))), _epoch_ms(str(flt.get("highValue")))
        value = _epoch_ms(have)
        return None not in (low, high, value) and low <= value <= high  # type: ignore[operator]
    if op == "CONTAINS_TOKEN":
        return str(flt.get("value")) in have
    raise ApiError(400, f"Unsupported operator {op!r}", "VALIDATION_ERROR")


def _search(objects: Mapping[str, HsObject], body: object, now: float) -> dict[str, object]:
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid input JSON", "VALIDATION_ERROR")
    groups = body.get("filterGroups", [])
    if not isinstance(groups, list) or len(groups) > 5:
        raise ApiError(400, "at most 5 filterGroups are allowed", "VALIDATION_ERROR")
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or not 0 < limit <= SEARCH_LIMIT_MAX:
        raise ApiError(400, f"limit must be between 1 and {SEARCH_LIMIT_MAX}", "VALIDATION_ERROR")
    wanted = body.get("properties")
    hits = []
    for obj in objects.values():
        if obj.searchable_from > now:
            continue
        props = _searchable(obj)
        if not groups or any(
            all(_matches(props, f) for f in g.get("filters", []))
            for g in groups
            if isinstance(g, dict)
        ):
            hits.append(obj)
    start = int(str(body.get("after") or 0))
    page = hits[start : start + limit]
    result: dict[str, object] = {
        "total": len(hits),
        "results": [o.public(wanted if isinstance(wanted, list) else None) for o in page],
    }
    if start + limit < len(hits):
        result["paging"] = {"next": {"after": str(start + limit)}}
    return result


# -- the app ---------------------------------------------------------------------------------


def create_app(state: HubSpotState | None = None) -> web.Application:
    state = state or HubSpotState()

    def rate_headers() -> tuple[bool, dict[str, str]]:
        if state._limit is None:
            state._limit = WindowLimit(state.burst, WINDOW_MS / 1000)
        allowed, remaining, _reset = state._limit.hit()
        return allowed, {
            "X-HubSpot-RateLimit-Max": str(state.burst),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(WINDOW_MS),
        }

    def authorise(request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if token and token == state.private_token:
            return
        expiry = state.access_tokens.get(token)
        if expiry is None:
            raise ApiError(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication",
                "INVALID_AUTHENTICATION",
            )
        if state.clock() >= expiry:
            raise ApiError(
                401,
                "The OAuth token used to make this call expired.",
                "EXPIRED_AUTHENTICATION",
            )

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.endswith("/oauth/v1/token"):
            return await handler(request)
        headers: dict[str, str] = {}
        try:
            authorise(request)
            if not request.path.endswith("/search"):
                allowed, headers = rate_headers()
                if not allowed:
                    raise ApiError(
                        429,
                        "You have reached your ten_secondly_rolling limit.",
                        "RATE_LIMITS",
                        errorType="RATE_LIMIT",
                        policyName="TEN_SECONDLY_ROLLING",
                    )
            response = await handler(request)
        except ApiError as exc:
            return json_response(exc.body, exc.status, headers)
        response.headers.update(headers)
        return response

    async def token(request: web.Request) -> web.Response:
        state.token_requests += 1
        refusal = refresh_refusal(
            await request.post(), state.client_id, state.client_secret, state.refresh_token
        )
        if refusal is not None:
            return json_response(TOKEN_ERRORS[refusal], 400)
        access = f"hs-at-{uuid.uuid4()}"
        state.access_tokens[access] = state.clock() + state.token_ttl
        return json_response(
            {
                "token_type": "bearer",
                "refresh_token": state.refresh_token,
                "access_token": access,
                "expires_in": state.token_ttl,
            }
        )

    def new_call(body: Mapping[str, object], taken: set[str]) -> HsObject:
        props = _string_props(state, body, CALL_PROPERTIES)
        _check_call(state, props, taken)
        contacts = _check_associations(state, body)
        return HsObject(
            state.next_id(), props, contacts, state.now_iso(), state.clock() + state.index_delay
        )

    async def create_call(request: web.Request) -> web.Response:
        obj = new_call(await request.json(), set())
        state.calls[obj.id] = obj
        return json_response(obj.public(), 201)

    async def batch_create(request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            raise ApiError(400, "Invalid input JSON: inputs is required", "VALIDATION_ERROR")
        if len(inputs) > BATCH_MAX:
            raise ApiError(
                400, f"Batch input can contain at most {BATCH_MAX} inputs", "VALIDATION_ERROR"
            )
        taken: set[str] = set()
        made: list[tuple[HsObject, object]] = []
        for item in inputs:
            if not isinstance(item, dict) or "associations" not in item:
                raise ApiError(
                    400, "Invalid input JSON: associations is required", "VALIDATION_ERROR"
                )
            made.append((new_call(item, taken), item.get("objectWriteTraceId")))
        results = []
        for obj, trace in made:
            state.calls[obj.id] = obj
            public = obj.public()
            if trace is not None:
                public["objectWriteTraceId"] = trace
            results.append(public)
        now = state.now_iso()
        return json_response(
            {"status": "COMPLETE", "results": results[::-1], "startedAt": now, "completedAt": now},
            201,
        )

    def check_id_property(name: str | None) -> None:
        if name is not None and not (
            name == state.key_name and state.key_property and state.key_unique
        ):
            raise ApiError(400, f"{name} is not a unique value property", "VALIDATION_ERROR")

    async def batch_read(request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise ApiError(400, "Invalid input JSON: inputs is required", "VALIDATION_ERROR")
        for required in ("properties", "propertiesWithHistory"):
            if not isinstance(body.get(required), list):
                raise ApiError(
                    400, f"Invalid input JSON: {required} is required", "VALIDATION_ERROR"
                )
        id_prop = body.get("idProperty")
        check_id_property(id_prop)
        found, missing = [], []
        for item in body["inputs"]:
            wanted = str(item.get("id")) if isinstance(item, dict) else ""
            obj = state.call_by_key(wanted) if id_prop else state.calls.get(wanted)
            if obj is None:
                missing.append(wanted)
            else:
                found.append(obj.public(body["properties"] + [state.key_name]))
        now = state.now_iso()
        result: dict[str, object] = {
            "status": "COMPLETE",
            "results": found,
            "startedAt": now,
            "completedAt": now,
        }
        if missing:
            result["numErrors"] = 1
            result["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CALL objects, they may be deleted or not exist.",
                    "context": {"ids": missing},
                }
            ]
        return json_response(result, 207 if missing else 200)

    async def read_call(request: web.Request) -> web.Response:
        id_prop = request.query.get("idProperty")
        check_id_property(id_prop)
        wanted = request.match_info["call_id"]
        obj = state.call_by_key(wanted) if id_prop else state.calls.get(wanted)
        if obj is None:
            raise ApiError(
                404,
                f"Object not found.  objectId are usually numeric. {wanted}",
                "OBJECT_NOT_FOUND",
            )
        return json_response(obj.public())

    async def update_call(request: web.Request) -> web.Response:
        obj = state.calls.get(request.match_info["call_id"])
        if obj is None:
            raise ApiError(404, "Object not found", "OBJECT_NOT_FOUND")
        props = _string_props(state, await request.json(), CALL_PROPERTIES)
        for fid in props.get("hs_attachment_ids", "").split(";"):
            if fid and fid not in state.files:
                raise _invalid(f"{fid} is not a file id", "hs_attachment_ids")
        merged = {**obj.properties, **props}
        _check_call(state, {k: v for k, v in merged.items() if k != state.key_name}, set())
        obj.properties = merged
        return json_response(obj.public())

    async def upload_file(request: web.Request) -> web.Response:
        fields = await multipart_fields(request)
        upload = fields.get("file")
        if upload is None or upload.filename is None:
            raise ApiError(400, "file is required", "VALIDATION_ERROR")
        folder = fields["folderPath"].text() if "folderPath" in fields else ""
        if not folder.startswith("/"):
            raise ApiError(400, "folderPath or folderId is required", "VALIDATION_ERROR")
        try:
            options = json.loads(fields["options"].text()) if "options" in fields else None
        except ValueError:
            raise ApiError(400, "options must be JSON", "VALIDATION_ERROR") from None
        access = options.get("access") if isinstance(options, dict) else None
        if not isinstance(options, dict) or access not in FILE_ACCESS:
            raise ApiError(400, "options.access is required", "VALIDATION_ERROR")
        name = fields["fileName"].text() if "fileName" in fields else upload.filename
        same = next(
            (f for f in state.files.values() if f.folder == folder and f.name == name), None
        )
        if same is not None and not options.get("overwrite"):
            name = f"{name.rsplit('.', 1)[0]}-1.{name.rsplit('.', 1)[-1]}"
            same = None
        made = HsFile(
            same.id if same else state.next_id(),
            name,
            folder,
            str(access),
            upload.data,
            upload.content_type,
        )
        state.files[made.id] = made
        return json_response(made.public(f"{request.scheme}://{request.host}"), 201)

    async def create_note(request: web.Request) -> web.Response:
        body = await request.json()
        props = _string_props(state, body, NOTE_PROPERTIES)
        if "hs_timestamp" not in props:
            raise _invalid("hs_timestamp is required", "hs_timestamp", "REQUIRED_FIELD")
        obj = HsObject(state.next_id(), props, created_at=state.now_iso())
        state.notes[obj.id] = obj
        return json_response(obj.public(), 201)

    async def associate_note(request: web.Request) -> web.Response:
        note = state.notes.get(request.match_info["note_id"])
        call = request.match_info["call_id"]
        if note is None or call not in state.calls:
            raise ApiError(404, "Object not found", "OBJECT_NOT_FOUND")
        if call not in note.associations:
            note.associations.append(call)
        return json_response(
            {"status": "COMPLETE", "results": [{"from": {"id": note.id}, "to": {"id": call}}]}
        )

    async def contact_deals(request: web.Request) -> web.Response:
        """``GET /crm/v4/objects/contacts/{id}/associations/deals``."""
        contact = request.match_info["contact_id"]
        if contact not in state.contacts:
            raise ApiError(404, "Object not found", "OBJECT_NOT_FOUND")
        found = [d for d in state.deals.values() if contact in d.associations]
        return json_response(
            {
                "results": [
                    {
                        "toObjectId": int(d.id),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 4, "label": None}
                        ],
                    }
                    for d in found
                ]
            }
        )

    async def call_notes(request: web.Request) -> web.Response:
        """``GET /crm/v4/objects/calls/{id}/associations/notes``."""
        call = request.match_info["call_id"]
        if call not in state.calls:
            raise ApiError(404, "Object not found", "OBJECT_NOT_FOUND")
        found = [n for n in state.notes.values() if call in n.associations]
        return json_response(
            {
                "results": [
                    {
                        "toObjectId": int(n.id),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 213, "label": None}
                        ],
                    }
                    for n in found
                ]
            }
        )

    async def notes_batch_read(request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not isinstance(body.get("properties"), list):
            raise ApiError(400, "Invalid input JSON: inputs and properties", "VALIDATION_ERROR")
        wanted = [str(i.get("id")) for i in inputs if isinstance(i, dict)]
        found = [state.notes[w].public(body["properties"]) for w in wanted if w in state.notes]
        now = state.now_iso()
        return json_response(
            {"status": "COMPLETE", "results": found, "startedAt": now, "completedAt": now}
        )

    async def deals_batch_read(request: web.Request) -> web.Response:
        body = await request.json()
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not isinstance(body.get("properties"), list):
            raise ApiError(400, "Invalid input JSON: inputs and properties", "VALIDATION_ERROR")
        wanted = [str(i.get("id")) for i in inputs if isinstance(i, dict)]
        found = [state.deals[w].public(body["properties"]) for w in wanted if w in state.deals]
        now = state.now_iso()
        return json_response(
            {"status": "COMPLETE", "results": found, "startedAt": now, "completedAt": now}
        )

    async def call_property(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not (name == state.key_name and state.key_property):
            raise ApiError(
                404, f'Property "{name}" does not exist on object type CALL', "OBJECT_NOT_FOUND"
            )
        now = state.now_iso()
        return json_response(
            {
                "name": name,
                "label": "SSCL call key",
                "type": "string",
                "fieldType": "text",
                "groupName": "callinformation",
                "hasUniqueValue": state.key_unique,
                "hidden": False,
                "formField": False,
                "calculated": False,
                "externalOptions": False,
                "options": [],
                "createdAt": now,
                "updatedAt": now,
            }
        )

    async def search_calls(request: web.Request) -> web.Response:
        return json_response(_search(state.calls, await request.json(), state.clock()))

    async def search_contacts(request: web.Request) -> web.Response:
        return json_response(_search(state.contacts, await request.json(), state.clock()))

    async def create_contact(request: web.Request) -> web.Response:
        props = _string_props(state, await request.json(), CONTACT_PROPERTIES)
        obj = HsObject(state.next_id(), props, created_at=state.now_iso())
        state.contacts[obj.id] = obj
        return json_response(obj.public(), 201)

    async def owners(request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "100"))
        start = int(request.query.get("after", "0"))
        page = state.owners[start : start + limit]
        body: dict[str, object] = {"results": page}
        if start + limit < len(state.owners):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return json_response(body)

    app = web.Application(middlewares=[fault_middleware(state), guard], client_max_size=UPLOAD_MAX)
    app.router.add_post("/oauth/v1/token", token)
    app.router.add_post("/crm/v3/objects/calls", create_call)
    app.router.add_post("/crm/v3/objects/calls/batch/create", batch_create)
    app.router.add_post("/crm/v3/objects/calls/batch/read", batch_read)
    app.router.add_post("/crm/v3/objects/calls/search", search_calls)
    app.router.add_get("/crm/v3/properties/calls/{name}", call_property)
    app.router.add_get("/crm/v3/objects/calls/{call_id}", read_call)
    app.router.add_patch("/crm/v3/objects/calls/{call_id}", update_call)
    app.router.add_post("/files/v3/files", upload_file)
    app.router.add_get("/crm/v4/objects/contacts/{contact_id}/associations/deals", contact_deals)
    app.router.add_post("/crm/v3/objects/deals/batch/read", deals_batch_read)
    app.router.add_get("/crm/v4/objects/calls/{call_id}/associations/notes", call_notes)
    app.router.add_post("/crm/v3/objects/notes/batch/read", notes_batch_read)
    app.router.add_post("/crm/v3/objects/notes", create_note)
    app.router.add_put(
        "/crm/v4/objects/notes/{note_id}/associations/default/calls/{call_id}", associate_note
    )
    app.router.add_post("/crm/v3/objects/contacts", create_contact)
    app.router.add_post("/crm/v3/objects/contacts/search", search_contacts)
    app.router.add_get("/crm/v3/owners", owners)
    app.router.add_get("/crm/v3/owners/", owners)
    return app
