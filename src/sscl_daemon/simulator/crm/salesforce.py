"""Stand-in for the Salesforce REST API the Salesforce writer uses (simulator -> tests, benchmark).

What it serves and checks, the way Salesforce documents it:

* OAuth: ``POST /services/oauth2/token`` with the refresh-token grant (client id/secret in
  the form) answers ``access_token`` + ``instance_url`` (this server) and no ``expires_in``;
  an access token dies after ``session_ttl`` seconds or on :meth:`SalesforceState.expire_sessions`,
  after which the API answers 401 ``INVALID_SESSION_ID``; a bad refresh token gets 400
  ``invalid_grant``;
* ``/services/data/vNN.N/``: ``sobjects/Task`` and ``sobjects/Contact`` create,
  ``composite/sobjects`` (at most 200 records, ``allOrNone``), ``query`` (a SOQL subset:
  SELECT fields FROM object WHERE with AND/OR/parentheses, ``=``, ``!=``, ``<``, ``<=``,
  ``>``, ``>=``, ``IN``, ``null``, strings, datetimes, numbers; all rows in one page) and
  ``search`` (SOSL ``FIND {...} IN PHONE FIELDS RETURNING Contact(...)``);
* validation with Salesforce's error lists (``errorCode``/``statusCode``, ``message``,
  ``fields``): unknown fields (``INVALID_FIELD``), wrong JSON types (``JSON_PARSER_ERROR``),
  restricted picklists (``INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST``), too-long strings
  (``STRING_TOO_LONG``), missing required fields (``REQUIRED_FIELD_MISSING``), bad
  references (``INVALID_CROSS_REFERENCE_KEY``), a second record with the same unique
  external id (``DUPLICATE_VALUE`` naming the existing record), filtering on a long text
  field (``INVALID_FIELD``);
* updates and files: ``GET``/``PATCH .../sobjects/{type}/{id}`` (a Task's fields; ``fields``
  picks what a read returns), a ``ContentVersion`` uploaded as multipart (``entity_content``
  JSON + ``VersionData`` bytes; ``FirstPublishLocationId`` links it to the Task; tests read
  ``versions`` and ``version_data``), ``ContentNote`` and ``ContentDocumentLink`` (to a Task);
* opportunities: ``Opportunity`` and ``OpportunityContactRole`` rows to query; a Task's
  ``WhatId`` must name an opportunity;
* limits: every answer carries ``Sforce-Limit-Info: api-usage=<used>/<daily_limit>``; past
  the allowance the API answers 403 ``REQUEST_LIMIT_EXCEEDED``.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from sscl_daemon.simulator.crm.common import (
    GrantRefusal,
    Handler,
    StandInState,
    fault_middleware,
    json_response,
    refresh_refusal,
)
from sscl_daemon.simulator.crm.uploads import multipart_fields

CLIENT_ID = "3MVG9sscl.demo.consumer.key"
CLIENT_SECRET = "sscl-salesforce-consumer-secret"
REFRESH_TOKEN = "5Aep861sscl.demo.refresh"
EXTERNAL_ID_FIELD = "SSCL_Call_Key__c"
BATCH_MAX = 200
URI_MAX = 16_384
TOKEN_ERRORS = {
    GrantRefusal.GRANT_TYPE: {
        "error": "unsupported_grant_type",
        "error_description": "grant type not supported",
    },
    GrantRefusal.CLIENT: {
        "error": "invalid_client_id",
        "error_description": "client identifier invalid",
    },
    GrantRefusal.REFRESH_TOKEN: {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    },
}

# field -> (type, max length or allowed values, filterable)
FieldSpec = tuple[str, object, bool]


def task_schema(external_id_field: str) -> dict[str, FieldSpec]:
    return {
        "Id": ("id", None, True),
        "Subject": ("string", 255, True),
        "Description": ("textarea", 32000, False),
        "TaskSubtype": (
            "picklist",
            {"Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"},
            True,
        ),
        "Status": (
            "picklist",
            {"Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"},
            True,
        ),
        "Priority": ("picklist", {"High", "Normal", "Low"}, True),
        "ActivityDate": ("date", None, True),
        "CallType": ("picklist", {"Inbound", "Outbound", "Internal"}, True),
        "CallDurationInSeconds": ("int", None, True),
        "CallDisposition": ("string", 255, True),
        "CallObject": ("string", 255, True),
        "WhoId": ("reference", "Contact", True),
        "WhatId": ("reference", "Opportunity", True),
        "OwnerId": ("reference", "User", True),
        "CreatedDate": ("datetime", None, True),
        external_id_field: ("string", 255, True),
    }


CONTACT_SCHEMA: dict[str, FieldSpec] = {
    "Id": ("id", None, True),
    "FirstName": ("string", 40, True),
    "LastName": ("string", 80, True),
    "Name": ("string", 121, True),
    "Phone": ("phone", 40, True),
    "MobilePhone": ("phone", 40, True),
    "Email": ("string", 80, True),
    "OwnerId": ("reference", "User", True),
    "CreatedDate": ("datetime", None, True),
    "LastModifiedDate": ("datetime", None, True),
}
USER_SCHEMA: dict[str, FieldSpec] = {
    "Id": ("id", None, True),
    "Email": ("string", 128, True),
    "Name": ("string", 121, True),
    "IsActive": ("boolean", None, True),
}
# Files (Salesforce Files): a ContentVersion uploaded with FirstPublishLocationId is linked to
# that record; a ContentNote is a note (its Id is its ContentDocument's); a
# ContentDocumentLink shares a document with a record.
CONTENT_VERSION_SCHEMA: dict[str, FieldSpec] = {
    "Id": ("id", None, True),
    "ContentDocumentId": ("id", None, True),
    "Title": ("string", 255, True),
    "PathOnClient": ("string", 500, True),
    "Description": ("string", 1000, False),
    "FirstPublishLocationId": ("id", None, True),
    "ContentSize": ("int", None, True),
    "FileType": ("string", 20, True),
    "CreatedDate": ("datetime", None, True),
}
CONTENT_NOTE_SCHEMA: dict[str, FieldSpec] = {
    "Id": ("id", None, True),
    "Title": ("string", 255, True),
    "Content": ("string", None, False),
    "CreatedDate": ("datetime", None, True),
}
CONTENT_LINK_SCHEMA: dict[str, FieldSpec] = {
    "Id": ("id", None, True),
    "ContentDocumentId": ("id", None, True),
    "LinkedEntityId": ("id", None, True),
    "ShareType": ("picklist", {"V", "C", "I"}, True),
    "CreatedDate": ("datetime", None, True),
}
OPPORTUNITY_SCHEMA: dict[str, FieldSpec] = {
    "Id": ("id", None, True),
    "Name": ("string", 120, True),
    "StageName": ("string", 255, True),
    "IsClosed": ("boolean", None, True),
    "LastModifiedDate": ("datetime", None, True),
    "CreatedDate": ("datetime", None, True),
}
CONTACT_ROLE_SCHEMA: dict[str, FieldSpec] = {
    "Id": ("id", None, True),
    "OpportunityId": ("reference", "Opportunity", True),
    "ContactId": ("reference", "Contact", True),
    "CreatedDate": ("datetime", None, True),
}
READ_ONLY = frozenset({"Id", "CreatedDate", "LastModifiedDate", "Name", "ContentSize", "FileType"})
PREFIXES = {
    "Task": "00T",
    "Contact": "003",
    "User": "005",
    "ContentVersion": "068",
    "ContentNote": "069",
    "ContentDocumentLink": "06A",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
}
# Salesforce takes files up to 2 GB through the REST multipart upload; the stand-in less.
UPLOAD_MAX = 100 * 1024 * 1024


class SfError(Exception):
    """One Salesforce error; answered as a one-element list."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    def rest_body(self) -> list[dict[str, object]]:
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]

    def save_error(self) -> dict[str, object]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


@dataclass
class SalesforceState(StandInState):
    """The stand-in org; tests seed contacts/users and read ``tasks``."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    refresh_token: str = REFRESH_TOKEN
    external_id_field: str = EXTERNAL_ID_FIELD
    external_id_unique: bool = True
    session_ttl: float = 7200.0
    daily_limit: int = 100_000
    api_usage: int = 0
    clock: Callable[[], float] = field(default=lambda: datetime.now(UTC).timestamp())
    tasks: dict[str, dict[str, object]] = field(default_factory=dict)
    contacts: dict[str, dict[str, object]] = field(default_factory=dict)
    users: dict[str, dict[str, object]] = field(default_factory=dict)
    versions: dict[str, dict[str, object]] = field(default_factory=dict)
    # ContentVersion id -> the file's bytes (VersionData).
    version_data: dict[str, bytes] = field(default_factory=dict)
    notes: dict[str, dict[str, object]] = field(default_factory=dict)
    links: dict[str, dict[str, object]] = field(default_factory=dict)
    opportunities: dict[str, dict[str, object]] = field(default_factory=dict)
    contact_roles: dict[str, dict[str, object]] = field(default_factory=dict)
    sessions: dict[str, float] = field(default_factory=dict)  # token -> expiry
    token_requests: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, sobject: str) -> str:
        return f"{PREFIXES[sobject]}{next(self._ids):012d}AAA"

    def now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def expire_sessions(self) -> None:
        self.sessions.clear()

    def add_user(self, email: str, name: str = "", active: bool = True) -> str:
        uid = self.new_id("User")
        self.users[uid] = {"Id": uid, "Email": email, "Name": name or email, "IsActive": active}
        return uid

    def add_contact(self, phone: str, last: str, first: str = "", mobile: str | None = None) -> str:
        cid = self.new_id("Contact")
        self.contacts[cid] = {
            "Id": cid,
            "FirstName": first or None,
            "LastName": last,
            "Name": f"{first} {last}".strip(),
            "Phone": phone,
            "MobilePhone": mobile,
            "CreatedDate": self.now(),
            "LastModifiedDate": self.now(),
        }
        return cid

    def add_opportunity(self, contact_id: str, name: str, closed: bool = False) -> str:
        """An opportunity the contact has a role in, modified now."""
        oid = self.new_id("Opportunity")
        self.opportunities[oid] = {
            "Id": oid,
            "Name": name,
            "StageName": "Closed Won" if closed else "Prospecting",
            "IsClosed": closed,
            "LastModifiedDate": self.now(),
            "CreatedDate": self.now(),
        }
        rid = self.new_id("OpportunityContactRole")
        self.contact_roles[rid] = {
            "Id": rid,
            "OpportunityId": oid,
            "ContactId": contact_id,
            "CreatedDate": self.now(),
        }
        return oid

    def add_task(self, **fields: object) -> str:
        """A Task somebody else made (a user's own client), stored as given."""
        tid = self.new_id("Task")
        self.tasks[tid] = {"Id": tid, "CreatedDate": self.now(), **fields}
        return tid

    def task_by_key(self, key: str) -> dict[str, object] | None:
        return next((t for t in self.tasks.values() if t.get(self.external_id_field) == key), None)

    def table(self, sobject: str) -> tuple[dict[str, dict[str, object]], dict[str, FieldSpec]]:
        if sobject.lower() == "task":
            return self.tasks, task_schema(self.external_id_field)
        if sobject.lower() == "contact":
            return self.contacts, CONTACT_SCHEMA
        if sobject.lower() == "user":
            return self.users, USER_SCHEMA
        if sobject.lower() == "contentversion":
            return self.versions, CONTENT_VERSION_SCHEMA
        if sobject.lower() == "contentnote":
            return self.notes, CONTENT_NOTE_SCHEMA
        if sobject.lower() == "contentdocumentlink":
            return self.links, CONTENT_LINK_SCHEMA
        if sobject.lower() == "opportunity":
            return self.opportunities, OPPORTUNITY_SCHEMA
        if sobject.lower() == "opportunitycontactrole":
            return self.contact_roles, CONTACT_ROLE_SCHEMA
        raise SfError(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")


# -- validation and create -------------------------------------------------------------------


def _canonical(schema: Mapping[str, FieldSpec], name: str, sobject: str) -> str:
    for known in schema:
        if known.lower() == name.lower():
            return known
    raise SfError(
        400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}", [name]
    )


def _check_value(state: SalesforceState, name: str, spec: FieldSpec, value: object) -> None:
    kind, extra, _ = spec
    if value is None:
        return
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise SfError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of int from {type(value).__name__} value for {name}",
            )
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            raise SfError(400, "JSON_PARSER_ERROR", f"Cannot deserialize boolean for {name}")
        return
    if not isinstance(value, str):
        raise SfError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of string for {name}")
    if kind == "picklist" and isinstance(extra, set) and value not in extra:
        raise SfError(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{name}: bad value for restricted picklist field: {value}",
            [name],
        )
    if isinstance(extra, int) and len(value) > extra:
        raise SfError(
            400,
            "STRING_TOO_LONG",
            f"{name}: data value too large: {value[:40]} (max length={extra})",
            [name],
        )
    if kind == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            raise SfError(
                400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of date from {value!r}"
            ) from None
    if kind == "reference" and isinstance(extra, str):
        target, _schema = state.table(extra)
        if value not in target:
            raise SfError(
                400,
                "INVALID_CROSS_REFERENCE_KEY",
                f"{name}: id value of incorrect type: {value}",
                [name],
            )


def _create(state: SalesforceState, sobject: str, body: object) -> str:
    if not isinstance(body, dict):
        raise SfError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    rows, schema = state.table(sobject)
    record: dict[str, object] = {}
    for name, value in body.items():
        if name == "attributes":
            continue
        canonical = _canonical(schema, name, sobject)
        if canonical in READ_ONLY:
            raise SfError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {canonical}",
                [canonical],
            )
        _check_value(state, canonical, schema[canonical], value)
        record[canonical] = value
    if sobject == "Contact":
        if not record.get("LastName"):
            raise SfError(
                400,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [LastName]",
                ["LastName"],
            )
        record["Name"] = f"{record.get('FirstName') or ''} {record['LastName']}".strip()
    key = record.get(state.external_id_field)
    if sobject == "Task" and key in state.refused_keys:
        raise SfError(
            400,
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "A validation rule of the org refused this Task",
            [],
        )
    if sobject == "Task" and key and state.external_id_unique:
        existing = state.task_by_key(str(key))
        if existing is not None:
            raise SfError(
                400,
                "DUPLICATE_VALUE",
                f"duplicate value found: {state.external_id_field} duplicates value on record with id: {existing['Id']}",
                [],
            )
    rid = state.new_id(sobject)
    record["Id"] = rid
    record["CreatedDate"] = state.now()
    if sobject in ("Task", "Contact"):
        record.setdefault("OwnerId", next(iter(state.users), None))
    if sobject == "ContentDocumentLink":
        _check_link(state, record)
    rows[rid] = record
    return rid


def _check_link(state: SalesforceState, record: Mapping[str, object]) -> None:
    documents = {v["ContentDocumentId"] for v in state.versions.values()} | set(state.notes)
    if record.get("ContentDocumentId") not in documents:
        raise SfError(400, "INVALID_CROSS_REFERENCE_KEY", "ContentDocumentId: invalid id", [])
    if record.get("LinkedEntityId") not in state.tasks:
        raise SfError(400, "INVALID_CROSS_REFERENCE_KEY", "LinkedEntityId: invalid id", [])


def _create_version(state: SalesforceState, entity: object, data: bytes) -> str:
    """A ContentVersion from a multipart upload (``entity_content`` + ``VersionData``)."""
    if not isinstance(entity, dict) or not entity.get("PathOnClient"):
        raise SfError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [PathOnClient]")
    location = entity.get("FirstPublishLocationId")
    if location is not None and location not in state.tasks:
        raise SfError(400, "INVALID_CROSS_REFERENCE_KEY", "FirstPublishLocationId: invalid id")
    rid = _create(state, "ContentVersion", entity)
    record = state.versions[rid]
    # A new document, or a new version of the one named.
    record.setdefault("ContentDocumentId", f"069{rid[3:]}")
    record["ContentSize"] = len(data)
    record["FileType"] = str(record["PathOnClient"]).rsplit(".", 1)[-1].upper()
    state.version_data[rid] = data
    return rid


# -- SOQL subset -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<op><=|>=|!=|=|<|>)|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z0-9_.:+\-]+))"
)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SfError(
                400, "MALFORMED_QUERY", f"unexpected character at {pos}: {text[pos : pos + 10]!r}"
            )
        out.append(match.group(match.lastgroup or "word"))
        pos = match.end()
    return out


def _literal(token: str) -> object:
    if token.startswith("'"):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    lowered = token.lower()
    if lowered == "null":
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})", token):
        return _when(token)
    if re.fullmatch(r"-?\d+(\.\d+)?", token):
        return float(token)
    raise SfError(400, "MALFORMED_QUERY", f"unexpected token: {token}")


def _when(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"
    return datetime.fromisoformat(text)


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _always(_row: Mapping[str, object]) -> bool:
    return True


class _Soql:
    """Recursive-descent reader of the supported SOQL subset, evaluated against stored rows."""

    def __init__(self, state: SalesforceState, text: str) -> None:
        self.state = state
        self.toks = _tokens(text)
        self.pos = 0

    def peek(self) -> str:
        return self.toks[self.pos] if self.pos < len(self.toks) else ""

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if not tok or (expected is not None and tok.upper() != expected):
            raise SfError(
                400, "MALFORMED_QUERY", f"expecting {expected or 'a token'}, found {tok!r}"
            )
        self.pos += 1
        return tok

    def run(self) -> list[dict[str, object]]:
        self.take("SELECT")
        names = [self.take()]
        while self.peek() == ",":
            self.take(",")
            names.append(self.take())
        self.take("FROM")
        sobject = self.take()
        rows, schema = self.state.table(sobject)
        self.sobject, self.schema = sobject, schema
        fields = [_canonical(schema, n, sobject) for n in names]
        predicate: Callable[[Mapping[str, object]], bool] = _always
        if self.peek().upper() == "WHERE":
            self.take("WHERE")
            predicate = self.expr()
        limit: int | None = None
        if self.peek().upper() == "LIMIT":
            self.take("LIMIT")
            limit = int(self.take())
        if self.peek():
            raise SfError(400, "MALFORMED_QUERY", f"unexpected token: {self.peek()}")
        found = [r for r in rows.values() if predicate(r)][:limit]
        return [
            {
                "attributes": {
                    "type": sobject.capitalize(),
                    "url": f"/sobjects/{sobject}/{r['Id']}",
                },
                **{f: r.get(f) for f in fields},
            }
            for r in found
        ]

    def expr(self) -> Callable[[Mapping[str, object]], bool]:
        parts = [self.conj()]
        while self.peek().upper() == "OR":
            self.take("OR")
            parts.append(self.conj())
        return lambda row: any(p(row) for p in parts)

    def conj(self) -> Callable[[Mapping[str, object]], bool]:
        parts = [self.atom()]
        while self.peek().upper() == "AND":
            self.take("AND")
            parts.append(self.atom())
        return lambda row: all(p(row) for p in parts)

    def atom(self) -> Callable[[Mapping[str, object]], bool]:
        if self.peek() == "(":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        name = _canonical(self.schema, self.take(), self.sobject)
        if not self.schema[name][2]:
            raise SfError(
                400,
                "INVALID_FIELD",
                f"field '{name}' can not be filtered in query call",
                [name],
            )
        if self.peek().upper() == "IN":
            self.take("IN")
            self.take("(")
            values = [_literal(self.take())]
            while self.peek() == ",":
                self.take(",")
                values.append(_literal(self.take()))
            self.take(")")
            return lambda row: row.get(name) in values
        op = self.take()
        value = _literal(self.take())
        return lambda row: _compare(row.get(name), op, value)


def _compare(have: object, op: str, want: object) -> bool:
    if isinstance(want, datetime) and isinstance(have, str):
        have = _when(have)
    if op == "=":
        return have == want
    if op == "!=":
        return have != want
    order = _ORDER.get(op)
    if order is None:
        raise SfError(400, "MALFORMED_QUERY", f"unknown operator {op}")
    if have is None or want is None:
        return False
    try:
        return bool(order(have, want))
    except TypeError:
        raise SfError(
            400, "INVALID_QUERY_FILTER_OPERATOR", f"cannot compare with {want!r}"
        ) from None


_SOSL = re.compile(
    r"^FIND \{(?P<terms>[^}]+)\} IN PHONE FIELDS RETURNING Contact\((?P<fields>[A-Za-z, ]+)\)$"
)


def _sosl(state: SalesforceState, text: str) -> list[dict[str, object]]:
    match = _SOSL.match(text.strip())
    if match is None:
        raise SfError(400, "MALFORMED_SEARCH", f"unsupported or malformed search: {text[:80]!r}")
    terms = [t.strip() for t in match.group("terms").split(" OR ")]
    if not all(t.isdigit() for t in terms):
        raise SfError(400, "MALFORMED_SEARCH", "search terms must be digits or escaped")
    fields = [
        _canonical(CONTACT_SCHEMA, f.strip(), "Contact") for f in match.group("fields").split(",")
    ]
    found = []
    for row in state.contacts.values():
        digits = {re.sub(r"\D", "", str(row.get(f) or "")) for f in ("Phone", "MobilePhone")} - {""}
        if any(d == t or d.endswith(t) or t.endswith(d) for d in digits for t in terms):
            found.append({"attributes": {"type": "Contact"}, **{f: row.get(f) for f in fields}})
    return found


# -- the app ---------------------------------------------------------------------------------


def create_app(state: SalesforceState | None = None) -> web.Application:
    state = state or SalesforceState()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if "/services/oauth2/" in request.path:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        expiry = state.sessions.get(token) if header.startswith("Bearer ") else None
        if expiry is None or state.clock() >= expiry:
            return json_response(
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], 401
            )
        state.api_usage += 1
        headers = {"Sforce-Limit-Info": f"api-usage={state.api_usage}/{state.daily_limit}"}
        if state.api_usage > state.daily_limit:
            return json_response(
                [
                    {
                        "message": "TotalRequests Limit exceeded.",
                        "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    }
                ],
                403,
                headers,
            )
        try:
            response = await handler(request)
        except SfError as exc:
            return json_response(exc.rest_body(), exc.status, headers)
        response.headers.update(headers)
        return response

    async def token(request: web.Request) -> web.Response:
        state.token_requests += 1
        refusal = refresh_refusal(
            await request.post(), state.client_id, state.client_secret, state.refresh_token
        )
        if refusal is not None:
            return json_response(TOKEN_ERRORS[refusal], 400)
        access = f"00Dsscl!{uuid.uuid4().hex}"
        state.sessions[access] = state.clock() + state.session_ttl
        instance = str(request.url.origin()) + request.path.removesuffix("/services/oauth2/token")
        return json_response(
            {
                "access_token": access,
                "signature": uuid.uuid4().hex,
                "scope": "api refresh_token",
                "instance_url": instance,
                "id": f"{instance}/id/00Dsscl/005sscl",
                "token_type": "Bearer",
                "issued_at": str(int(state.clock() * 1000)),
            }
        )

    async def create(request: web.Request) -> web.Response:
        sobject = request.match_info["sobject"]
        if request.content_type.startswith("multipart/"):
            parts = await multipart_fields(request)
            if sobject != "ContentVersion" or "entity_content" not in parts:
                raise SfError(400, "INVALID_MULTIPART_REQUEST", "entity_content is required")
            try:
                entity = json.loads(parts["entity_content"].text())
            except ValueError:
                raise SfError(400, "JSON_PARSER_ERROR", "entity_content is not JSON") from None
            data = parts.get("VersionData")
            if data is None:
                raise SfError(400, "INVALID_MULTIPART_REQUEST", "VersionData is required")
            rid = _create_version(state, entity, data.data)
        else:
            rid = _create(state, sobject, await request.json())
        return json_response({"id": rid, "success": True, "errors": []}, 201)

    def _record(request: web.Request) -> tuple[dict[str, object], dict[str, FieldSpec]]:
        rows, schema = state.table(request.match_info["sobject"])
        record = rows.get(request.match_info["id"])
        if record is None:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        return record, schema

    async def read(request: web.Request) -> web.Response:
        record, schema = _record(request)
        wanted = [f for f in request.query.get("fields", "").split(",") if f]
        names = [_canonical(schema, f, request.match_info["sobject"]) for f in wanted]
        shown = {n: record.get(n) for n in names} if names else dict(record)
        return json_response({"attributes": {"type": request.match_info["sobject"]}, **shown})

    async def update(request: web.Request) -> web.Response:
        record, schema = _record(request)
        body = await request.json()
        if not isinstance(body, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        changes: dict[str, object] = {}
        for name, value in body.items():
            canonical = _canonical(schema, name, request.match_info["sobject"])
            if canonical in READ_ONLY:
                raise SfError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to update {name}")
            _check_value(state, canonical, schema[canonical], value)
            changes[canonical] = value
        record.update(changes)
        return web.Response(status=204)

    async def composite(request: web.Request) -> web.Response:
        body = await request.json()
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            raise SfError(400, "INVALID_FIELD", "records is required")
        if len(records) > BATCH_MAX:
            raise SfError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {BATCH_MAX} records into this call",
            )
        all_or_none = bool(body.get("allOrNone", False))
        snapshot = {
            name: dict(rows) for name, rows in (("Task", state.tasks), ("Contact", state.contacts))
        }
        results: list[dict[str, object]] = []
        for record in records:
            attrs = record.get("attributes") if isinstance(record, dict) else None
            sobject = attrs.get("type") if isinstance(attrs, dict) else None
            if not isinstance(sobject, str):
                results.append(
                    {
                        "success": False,
                        "errors": [
                            SfError(
                                400, "INVALID_TYPE", "Must send a concrete entity type."
                            ).save_error()
                        ],
                    }
                )
                continue
            try:
                rid = _create(state, sobject, record)
                results.append({"id": rid, "success": True, "errors": []})
            except SfError as exc:
                results.append({"success": False, "errors": [exc.save_error()]})
        if all_or_none and not all(r["success"] for r in results):
            state.tasks, state.contacts = snapshot["Task"], snapshot["Contact"]
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                "fields": [],
            }
            results = [
                r if not r["success"] else {"success": False, "errors": [rolled]} for r in results
            ]
        return json_response(results)

    async def query(request: web.Request) -> web.Response:
        q = request.query.get("q")
        if not q:
            raise SfError(400, "MALFORMED_QUERY", "q is required")
        records = _Soql(state, q).run()
        return json_response({"totalSize": len(records), "done": True, "records": records})

    async def search(request: web.Request) -> web.Response:
        return json_response({"searchRecords": _sosl(state, request.query.get("q", ""))})

    # Salesforce takes URIs up to 16,384 bytes (long SOQL in the query string).
    app = web.Application(
        middlewares=[fault_middleware(state), guard],
        handler_args={"max_line_size": URI_MAX},
        client_max_size=UPLOAD_MAX,
    )
    app.router.add_post("/services/oauth2/token", token)
    app.router.add_post("/services/data/{version}/sobjects/{sobject}", create)
    app.router.add_post("/services/data/{version}/sobjects/{sobject}/", create)
    app.router.add_get("/services/data/{version}/sobjects/{sobject}/{id}", read)
    app.router.add_patch("/services/data/{version}/sobjects/{sobject}/{id}", update)
    app.router.add_post("/services/data/{version}/composite/sobjects", composite)
    app.router.add_get("/services/data/{version}/query", query)
    app.router.add_get("/services/data/{version}/query/", query)
    app.router.add_get("/services/data/{version}/search", search)
    app.router.add_get("/services/data/{version}/search/", search)
    return app
