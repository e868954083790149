"""Stand-in for a Microsoft Dataverse environment (Dynamics 365 Web API v9.2) and its Entra ID
token endpoint: phone calls, contacts, leads, system users and ``$batch``.

What it serves and checks, after the Dataverse Web API reference (phonecall EntityType,
"Execute batch operations", "Perform conditional operations", "Service protection API
limits") and the Microsoft identity platform client-credentials flow:

* ``POST /{tenant}/oauth2/v2.0/token``: ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` and a ``scope`` ending in ``/.default``; refusals are Entra ID's
  ``{"error": "invalid_client", "error_description": "AADSTS7000215: ..."}`` (HTTP 401) and
  ``invalid_request``/``invalid_scope`` (400). Tokens last ``token_ttl`` seconds;
  ``expire_tokens()`` ends them now. The API answers an unknown or expired token with 401
  and ``WWW-Authenticate: Bearer error="invalid_token"``, no body.
* ``PATCH /api/data/v9.2/phonecalls(<guid>)``: upsert by primary key; ``If-None-Match: *``
  makes it create-only (412 when the row exists), ``If-Match: *`` update-only (404 when it
  does not). Create checks the columns a phone call has (unknown property 0x80060888,
  ``statecode``/``statuscode`` not valid on create, lengths, types, ``@odata.bind``
  targets that exist, activity parties with participation type 1 or 2); a completed call
  is read-only except its state; ``statecode`` 1 takes ``statuscode`` 2 or 4.
* ``POST /api/data/v9.2/$batch``: ``multipart/mixed`` with change sets (atomic: a failing
  operation rolls its change set back and is its only answer) and single requests; the
  batch stops at the first failure unless ``Prefer: odata.continue-on-error``.
* ``GET /contacts``, ``/leads``, ``/systemusers``, ``/phonecalls`` with ``$select``,
  ``$filter`` (``eq``/``ne``/``ge``/``gt``/``le``/``lt`` on strings, booleans and
  date-times, joined by ``and``/``or``) and ``$top``; ``POST /contacts`` (``Prefer:
  return=representation`` answers 201 with the row, otherwise 204 and ``OData-EntityId``).
* a phone call read, notes with a file (``annotations``) and the organisation's
  ``maxuploadfilesize``: ``simulator/crm/dynamics_records.py``.
* service protection: at most ``rate_limit`` requests per ``window`` seconds; past it 429
  with ``Retry-After`` and error 0x80072322; every answer carries
  ``x-ms-ratelimit-burst-remaining-xrm-requests`` and
  ``x-ms-ratelimit-time-remaining-xrm-requests``.
"""

from __future__ import annotations

import copy
import email.parser
import email.policy
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from sscl_daemon.simulator.crm import dynamics_records
from sscl_daemon.simulator.crm.common import (
    Handler,
    StandInState,
    WindowLimit,
    fault_middleware,
    json_response,
)

TENANT_ID: Final = "8f2c1c7e-3f4b-4b6e-9a55-6d1e0c9b2a11"
CLIENT_ID: Final = "4a1aa1d5-c567-49d0-ad0b-cd957a47f842"
CLIENT_SECRET: Final = "sscl~dynamics~client~secret"
API: Final = "/api/data/v9.2"
# createdon/modifiedon of seeded rows (tests set their own to order them).
RECORD_TIME: Final = "2026-01-05T09:00:00Z"
# column -> (kind, max length)
PHONECALL: Final[dict[str, tuple[str, int]]] = {
    "activityid": ("guid", 0),
    "subject": ("string", 200),
    "description": ("string", 2000),
    "phonenumber": ("string", 200),
    "directioncode": ("bool", 0),
    "actualstart": ("datetime", 0),
    "actualend": ("datetime", 0),
    "actualdurationminutes": ("int", 0),
    "leftvoicemail": ("bool", 0),
}
BINDS: Final = {
    "regardingobjectid_contact@odata.bind": "contacts",
    "regardingobjectid_lead@odata.bind": "leads",
    "ownerid@odata.bind": "systemusers",
}
_STATE_KEY: Final = web.AppKey("dynamics_state", object)
_BIND = re.compile(r"^/(\w+)\(([0-9a-fA-F-]{36})\)$")
_KEY_PATH = re.compile(r"^/?(?:.*?/api/data/v9\.2)?/(\w+)\(([0-9a-fA-F-]{36})\)$")


class DvError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass
class DynamicsState(StandInState):
    """One Dataverse environment; tests seed and inspect it directly."""

    tenant_id: str = TENANT_ID
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    token_ttl: int = 3599
    tokens: set[str] = field(default_factory=set)
    token_grants: int = 0
    systemusers: dict[str, dict[str, object]] = field(default_factory=dict)
    contacts: dict[str, dict[str, object]] = field(default_factory=dict)
    leads: dict[str, dict[str, object]] = field(default_factory=dict)
    phonecalls: dict[str, dict[str, object]] = field(default_factory=dict)
    # Notes (with or without a file) by annotationid, and the organisation's upload limit.
    annotations: dict[str, dict[str, object]] = field(default_factory=dict)
    maxuploadfilesize: int = 5_242_880
    rate_limit: int = 6000
    window_seconds: float = 300.0
    window: WindowLimit | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def add_user(self, email: str, name: str = "") -> str:
        uid = str(uuid.uuid4())
        self.systemusers[uid] = {
            "systemuserid": uid,
            "internalemailaddress": email,
            "fullname": name or email,
            "isdisabled": False,
        }
        return uid

    def add_contact(self, fullname: str, telephone1: str, mobile: str | None = None) -> str:
        cid = str(uuid.uuid4())
        self.contacts[cid] = {
            "contactid": cid,
            "fullname": fullname,
            "lastname": fullname,
            "telephone1": telephone1,
            "mobilephone": mobile,
            "telephone2": None,
            "_ownerid_value": None,
            "createdon": RECORD_TIME,
            "modifiedon": RECORD_TIME,
        }
        return cid

    def add_lead(self, fullname: str, telephone1: str) -> str:
        lid = str(uuid.uuid4())
        self.leads[lid] = {
            "leadid": lid,
            "fullname": fullname,
            "telephone1": telephone1,
            "mobilephone": None,
            "telephone2": None,
            "_ownerid_value": None,
        }
        return lid

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def table(self, name: str) -> dict[str, dict[str, object]]:
        organization: dict[str, object] = {"maxuploadfilesize": self.maxuploadfilesize}
        tables: dict[str, dict[str, dict[str, object]]] = {
            "contacts": self.contacts,
            "leads": self.leads,
            "systemusers": self.systemusers,
            "phonecalls": self.phonecalls,
            "annotations": self.annotations,
            "organizations": {"org": organization},
        }
        if name not in tables:
            raise DvError(404, "0x80060888", f"Resource not found for the segment '{name}'.")
        return tables[name]


def _state(request: web.Request) -> DynamicsState:
    state = request.app[_STATE_KEY]
    assert isinstance(state, DynamicsState)
    return state


def _odata_now(state: DynamicsState) -> str:
    return state.clock().strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object, column: str) -> datetime:
    if not isinstance(value, str):
        raise DvError(
            400,
            "0x80048d19",
            f"Cannot convert the literal '{value}' to Edm.DateTimeOffset ({column}).",
        )
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DvError(
            400,
            "0x80048d19",
            f"Cannot convert the literal '{value}' to Edm.DateTimeOffset ({column}).",
        ) from None


def _check_create(state: DynamicsState, body: dict[str, object]) -> dict[str, object]:
    row: dict[str, object] = {}
    for name, value in body.items():
        if name in ("statecode", "statuscode"):
            raise DvError(
                400,
                "0x80040203",
                f"{name} is not valid for create: a phone call is created open; set its state afterwards.",
            )
        if name in BINDS:
            m = _BIND.match(str(value))
            if not m or m.group(1) != BINDS[name] or m.group(2) not in state.table(m.group(1)):
                raise DvError(400, "0x80040217", f"{BINDS[name]} With Id = {value} Does Not Exist")
            row[name] = m.group(2)
            continue
        if name == "phonecall_activity_parties":
            row[name] = _check_parties(state, value)
            continue
        spec = PHONECALL.get(name)
        if spec is None:
            raise DvError(
                400,
                "0x80060888",
                f"The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.phonecall'. Make sure to only use property names that are defined by the type.",
            )
        kind, limit = spec
        if kind == "string" and (not isinstance(value, str) or len(value) > limit):
            raise DvError(
                400,
                "0x80044331",
                f"A validation error occurred. The length of the '{name}' attribute of the 'phonecall' entity exceeded the maximum allowed length of '{limit}'.",
            )
        if kind == "bool" and not isinstance(value, bool):
            raise DvError(
                400,
                "0x80048d19",
                f"Cannot convert the literal '{value}' to the expected type 'Edm.Boolean'.",
            )
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise DvError(
                400,
                "0x80048d19",
                f"Cannot convert the literal '{value}' to the expected type 'Edm.Int32'.",
            )
        if kind == "datetime":
            _parse_time(value, name)
        row[name] = value
    if (
        "actualstart" in row
        and "actualend" in row
        and _parse_time(row["actualend"], "actualend")
        < _parse_time(row["actualstart"], "actualstart")
    ):
        raise DvError(400, "0x80040203", "actualend must not be before actualstart")
    description = str(row.get("description", ""))
    for key in state.refused_keys:
        if f"sscl-key: {key}" in description:
            raise DvError(
                400,
                "0x80040265",
                "A plug-in registered on phonecall Create refused this record: the call's data did not pass the organisation's validation.",
            )
    return row


def _check_parties(state: DynamicsState, value: object) -> list[dict[str, object]]:
    if not isinstance(value, list):
        raise DvError(400, "0x80048d19", "phonecall_activity_parties must be a collection")
    parties = []
    for party in value:
        if not isinstance(party, dict) or party.get("participationtypemask") not in (1, 2):
            raise DvError(
                400,
                "0x80040203",
                "An activity party needs participationtypemask 1 (sender) or 2 (to recipient) for a phone call.",
            )
        binds = [k for k in party if k.startswith("partyid_") and k.endswith("@odata.bind")]
        if len(binds) != 1:
            raise DvError(
                400, "0x80040203", "An activity party needs exactly one partyid_<table>@odata.bind."
            )
        m = _BIND.match(str(party[binds[0]]))
        if not m or m.group(2) not in state.table(m.group(1)):
            raise DvError(400, "0x80040217", f"{party[binds[0]]} Does Not Exist")
        parties.append(
            {
                "table": m.group(1),
                "id": m.group(2),
                "participationtypemask": party["participationtypemask"],
            }
        )
    return parties


def _patch_phonecall(
    state: DynamicsState, key: str, headers: dict[str, str], body: object
) -> tuple[int, dict[str, str], object]:
    if not isinstance(body, dict):
        raise DvError(400, "0x80048d19", "The request body is not a JSON object.")
    existing = state.phonecalls.get(key)
    if headers.get("if-none-match") == "*" and existing is not None:
        raise DvError(412, "0x80040237", "A record with matching key values already exists.")
    if headers.get("if-match") == "*" and existing is None:
        raise DvError(404, "0x80040217", f"phonecall With Id = {key} Does Not Exist")
    location = {"OData-EntityId": f"{API}/phonecalls({key})"}
    if existing is None:
        row = _check_create(state, {k: v for k, v in body.items() if k != "activityid"})
        row.update(activityid=key, statecode=0, statuscode=1, createdon=_odata_now(state))
        state.phonecalls[key] = row
        return 204, location, None
    if set(body) - {"statecode", "statuscode"} and existing["statecode"] != 0:
        raise DvError(400, "0x80040227", "The object cannot be updated because it is read-only.")
    if "statecode" in body:
        state_code, status = body.get("statecode"), body.get("statuscode")
        allowed = (
            {0: {1, 3}, 1: {2, 4}, 2: {3}}.get(state_code) if isinstance(state_code, int) else None
        )
        if allowed is None or status not in allowed:
            raise DvError(
                400,
                "0x80040203",
                f"{status} is not a valid status code for state code {state_code} on phonecall.",
            )
        existing.update(statecode=state_code, statuscode=status)
    others = {k: v for k, v in body.items() if k not in ("statecode", "statuscode")}
    if others:
        existing.update(_check_create(state, others))
    return 204, location, None


def _operation(
    state: DynamicsState, method: str, path: str, headers: dict[str, str], body: object
) -> tuple[int, dict[str, str], object]:
    m = _KEY_PATH.match(path.split("?", 1)[0])
    if method == "PATCH" and m and m.group(1) == "phonecalls":
        return _patch_phonecall(state, m.group(2).lower(), headers, body)
    raise DvError(405, "0x80060888", f"{method} {path} is not supported by this stand-in.")


# -- $filter -----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(\()|(\))|('(?:[^']|'')*')|([A-Za-z_][\w.]*)|(\d{4}-\d{2}-\d{2}T[\d:.]+Z?)|(-?\d+))"
)


def _filter(text: str) -> Callable[[dict[str, object]], bool]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        if not m:
            raise DvError(400, "0x80060888", f"Syntax error at position {pos} in '{text}'.")
        tokens.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    at = 0

    def take() -> str:
        nonlocal at
        if at >= len(tokens):
            raise DvError(400, "0x80060888", f"Syntax error: unexpected end of '{text}'.")
        at += 1
        return tokens[at - 1]

    def literal(token: str) -> object:
        if token.startswith("'"):
            return token[1:-1].replace("''", "'")
        if token in ("true", "false"):
            return token == "true"
        if token == "null":
            return None
        if "T" in token and "-" in token:
            return _parse_time(token, "filter")
        return int(token)

    def compare(have: object, op: str, want: object) -> bool:
        if isinstance(want, datetime):
            if not isinstance(have, str):
                return False
            have = _parse_time(have, "filter")
        if op == "eq":
            return have == want
        if op == "ne":
            return have != want
        if have is None or want is None:
            return False
        ops = {
            "ge": lambda a, b: a >= b,
            "gt": lambda a, b: a > b,
            "le": lambda a, b: a <= b,
            "lt": lambda a, b: a < b,
        }
        if op not in ops:
            raise DvError(400, "0x80060888", f"Unsupported operator '{op}'.")
        return bool(ops[op](have, want))

    def atom() -> Callable[[dict[str, object]], bool]:
        token = take()
        if token == "(":
            inner = disjunction()
            take()
            return inner
        column, op, value = token, take(), literal(take())
        return lambda row: compare(row.get(column), op, value)

    def conjunction() -> Callable[[dict[str, object]], bool]:
        parts = [atom()]
        while at < len(tokens) and tokens[at] == "and":
            take()
            parts.append(atom())
        return lambda row: all(p(row) for p in parts)

    def disjunction() -> Callable[[dict[str, object]], bool]:
        parts = [conjunction()]
        while at < len(tokens) and tokens[at] == "or":
            take()
            parts.append(conjunction())
        return lambda row: any(p(row) for p in parts)

    predicate = disjunction()
    if at != len(tokens):
        raise DvError(400, "0x80060888", f"Syntax error at '{tokens[at]}' in '{text}'.")
    return predicate


# -- handlers ----------------------------------------------------------------------------------


def _error(exc: DvError) -> web.Response:
    return json_response(exc.body(), exc.status)


async def token(request: web.Request) -> web.Response:
    state = _state(request)
    form = await request.post()
    if request.match_info["tenant"] != state.tenant_id:
        return json_response(
            {
                "error": "invalid_request",
                "error_description": f"AADSTS90002: Tenant '{request.match_info['tenant']}' not found.",
            },
            400,
        )
    if form.get("grant_type") != "client_credentials":
        return json_response(
            {
                "error": "unsupported_grant_type",
                "error_description": "AADSTS70003: The app requested an unsupported grant type.",
            },
            400,
        )
    if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
        return json_response(
            {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            },
            401,
        )
    if not str(form.get("scope", "")).endswith("/.default"):
        return json_response(
            {
                "error": "invalid_scope",
                "error_description": "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
            },
            400,
        )
    state.token_grants += 1
    access = "eyJ0eXAi." + secrets.token_urlsafe(24)
    state.tokens.add(access)
    return json_response(
        {
            "token_type": "Bearer",
            "expires_in": state.token_ttl,
            "ext_expires_in": state.token_ttl,
            "access_token": access,
        }
    )


async def patch_row(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        status, answer_headers, _ = _operation(state, "PATCH", request.path, headers, body)
    except DvError as exc:
        return _error(exc)
    return web.Response(status=status, headers=answer_headers)


async def query(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        table = state.table(request.match_info["table"])
        rows = list(table.values())
        if "$filter" in request.query:
            predicate = _filter(request.query["$filter"])
            rows = [r for r in rows if predicate(r)]
    except DvError as exc:
        return _error(exc)
    top = int(request.query.get("$top", "5000"))
    select = [c for c in request.query.get("$select", "").split(",") if c]
    value = [{c: r.get(c) for c in select} if select else dict(r) for r in rows[:top]]
    return json_response(
        {
            "@odata.context": f"{request.url.origin()}{API}/$metadata#{request.match_info['table']}",
            "value": value,
        }
    )


async def create_contact(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("lastname"), str):
        return _error(DvError(400, "0x80040203", "lastname is required for a contact."))
    owner = body.get("ownerid@odata.bind")
    owner_id = None
    if owner is not None:
        m = _BIND.match(str(owner))
        if not m or m.group(1) != "systemusers" or m.group(2) not in state.systemusers:
            return _error(
                DvError(400, "0x80040217", f"systemuser With Id = {owner} Does Not Exist")
            )
        owner_id = m.group(2)
    cid = state.add_contact(
        body["lastname"], str(body.get("telephone1", "")), body.get("mobilephone")
    )
    state.contacts[cid]["_ownerid_value"] = owner_id
    entity = {"OData-EntityId": f"{request.url.origin()}{API}/contacts({cid})"}
    if "return=representation" in request.headers.get("Prefer", ""):
        return json_response(state.contacts[cid], 201, entity)
    return web.Response(status=204, headers=entity)


def _http_part(
    status: int, headers: dict[str, str], body: object, content_id: str | None
) -> list[str]:
    reason = {
        204: "No Content",
        200: "OK",
        404: "Not Found",
        412: "Precondition Failed",
        400: "Bad Request",
        405: "Method Not Allowed",
    }.get(status, "")
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {status} {reason}", "OData-Version: 4.0"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json; odata.metadata=minimal", "", json.dumps(body)]
    else:
        lines += ["", ""]
    return lines


def _parse_operation(raw: bytes) -> tuple[str, str, dict[str, str], object]:
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    request_line, *header_lines = head.decode().split("\n")
    method, target, _version = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    text = body.decode().strip()
    try:
        decoded: object = json.loads(text) if text else None
    except ValueError:
        decoded = None
    return method, target, headers, decoded


async def batch(request: web.Request) -> web.Response:
    state = _state(request)
    content_type = request.headers.get("Content-Type", "")
    if not content_type.startswith("multipart/mixed"):
        return _error(
            DvError(
                400, "0x80048d19", "The batch request must have a multipart/mixed content type."
            )
        )
    raw = await request.read()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    if not message.is_multipart():
        return _error(DvError(400, "0x80048d19", "The batch body is not a multipart message."))
    go_on = "odata.continue-on-error" in request.headers.get("Prefer", "")
    boundary = f"batchresponse_{uuid.uuid4()}"
    out: list[str] = []
    for part in message.iter_parts():
        out.append(f"--{boundary}")
        if part.is_multipart():
            snapshot = copy.deepcopy(state.phonecalls)
            answers: list[list[str]] = []
            failed: list[str] | None = None
            for op in part.iter_parts():
                cid = op.get("Content-ID")
                payload = op.get_payload(decode=True)
                method, target, headers, body = _parse_operation(
                    payload if isinstance(payload, bytes) else b""
                )
                try:
                    status, answer_headers, answer_body = _operation(
                        state, method, target, headers, body
                    )
                except DvError as exc:
                    failed = _http_part(exc.status, {}, exc.body(), cid)
                    break
                answers.append(_http_part(status, answer_headers, answer_body, cid))
            if failed is not None:
                state.phonecalls = snapshot
                out += failed
                if not go_on:
                    break
                continue
            cs = f"changesetresponse_{uuid.uuid4()}"
            out += [f"Content-Type: multipart/mixed; boundary={cs}", ""]
            for answer in answers:
                out += [f"--{cs}", *answer]
            out += [f"--{cs}--", ""]
        else:
            payload = part.get_payload(decode=True)
            method, target, headers, body = _parse_operation(
                payload if isinstance(payload, bytes) else b""
            )
            try:
                status, answer_headers, answer_body = _operation(
                    state, method, target, headers, body
                )
                out += _http_part(status, answer_headers, answer_body, None)
            except DvError as exc:
                out += _http_part(exc.status, {}, exc.body(), None)
                if not go_on:
                    break
    out += [f"--{boundary}--", ""]
    return web.Response(
        status=200,
        body="\r\n".join(out).encode(),
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"},
    )


def create_app(state: DynamicsState | None = None) -> web.Application:
    state = state or DynamicsState()

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        s = _state(request)
        if "/oauth2/v2.0/token" in request.path:
            return await handler(request)
        if s.window is None:
            s.window = WindowLimit(s.rate_limit, s.window_seconds)
        allowed, remaining, reset = s.window.hit()
        limits = {
            "x-ms-ratelimit-burst-remaining-xrm-requests": str(remaining),
            "x-ms-ratelimit-time-remaining-xrm-requests": "1200000.00",
        }
        if not allowed:
            body = {
                "error": {
                    "code": "0x80072322",
                    "message": f"Number of requests exceeded the limit of {s.rate_limit} over time window of {int(s.window_seconds)} seconds.",
                }
            }
            return json_response(body, 429, {**limits, "Retry-After": str(max(1, round(reset)))})
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in s.tokens:
            return web.Response(
                status=401,
                headers={
                    "WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token has expired or is not valid"'
                },
            )
        response = await handler(request)
        response.headers.update(limits)
        return response

    app = web.Application(
        middlewares=[fault_middleware(state), gate], client_max_size=dynamics_records.BODY_MAX
    )
    app[_STATE_KEY] = state
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
    app.router.add_post(f"{API}/$batch", batch)
    app.router.add_post(f"{API}/contacts", create_contact)
    app.router.add_patch(API + "/{entity:phonecalls\\([0-9a-fA-F-]{36}\\)}", patch_row)
    dynamics_records.add_routes(app, state)
    app.router.add_get(API + "/{table:[a-z]+}", query)
    return app
