"""HTTP side of the simulated RingCentral platform: OAuth, wstoken, call log, extensions, sessions.

Extensions: the list (``GET .../extension``, group Medium) and each one's own record with
its regional settings (``GET .../extension/{id}``, group Light).

aiohttp handlers over the state in `oauth.py`, `gateway.py` and `engine.py`. One middleware
does what every real answer shares (research/rc-protocol.md C6/C7/D): wait while the platform
is paused (fault), check the bearer token (401 with OAU codes), count the request against its
rate group (`X-Rate-Limit-*` on every answer, 429 + `Retry-After` + CMN-301 beyond it), and
apply injected REST faults. Paths under `/_sim/` (the control API) bypass all of it. A call-log
answer's first page also carries the records a test injected (`Faults.inject_call_log`:
poison beside real records, whatever the query).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from multidict import MultiMapping
from yarl import URL

from sscl_daemon.simulator.engine import Engine
from sscl_daemon.simulator.faults import Faults
from sscl_daemon.simulator.gateway import Gateway
from sscl_daemon.simulator.oauth import OAuthError, OAuthServer, OAuthSession
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.ratelimit import RateLimiter, rate_exceeded_body, rate_group_for
from sscl_daemon.simulator.wsframes import ENCODER, request_id, rest_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TOKEN_PATH = "/restapi/oauth/token"
WSTOKEN_PATH = "/restapi/oauth/wstoken"
REVOKE_PATH = "/restapi/oauth/revoke"
WS_PATH = "/ws"
CONTROL_PREFIX = "/_sim/"

_SESSION_KEY = web.RequestKey("oauth_session", OAuthSession)
_DATA_PATH = re.compile(
    r"^/restapi/v1\.0/account/(?P<account>[^/]+)/"
    r"(?:(?P<what>call-log|extension)(?:/(?P<extension>[^/]+))?"
    r"|telephony/sessions/(?P<session>[^/]+))$"
)


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=ENCODER.encode(body), status=status, headers=headers, content_type="application/json"
    )


@dataclass
class PlatformRest:
    """The REST handlers and their shared middleware."""

    org: Organisation
    oauth: OAuthServer
    gateway: Gateway
    engine: Engine
    limiter: RateLimiter
    faults: Faults
    clock: Callable[[], float]
    # where navigation links of REST-over-WS answers point (set once the port is known)
    gateway_base_url: str = "http://127.0.0.1"

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(TOKEN_PATH, self.token),
            web.post(REVOKE_PATH, self.revoke),
            web.post(WSTOKEN_PATH, self.wstoken),
            web.get("/restapi/v1.0/account/{account}/call-log", self.data),
            web.get("/restapi/v1.0/account/{account}/extension", self.data),
            web.get("/restapi/v1.0/account/{account}/extension/{extension}", self.data),
            web.get("/restapi/v1.0/account/{account}/telephony/sessions/{session}", self.data),
            web.get(WS_PATH, self.gateway.handle),
        ]

    # -- middleware ------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(CONTROL_PREFIX) or path == WS_PATH:
            return await handler(request)
        await self.faults.wait_unpaused()
        now = self.clock()
        # budgets are per user and app (research C6): one simulated user, so per client id
        caller = self.oauth.client_of(request.headers.get("Authorization")) or request.remote or "?"
        if not path.startswith("/restapi/oauth/token") and not path.startswith(REVOKE_PATH):
            try:
                session = self.oauth.authenticate(request.headers.get("Authorization"), now)
            except OAuthError as exc:
                return json_response(self._api_auth_error(exc), exc.status)
            request[_SESSION_KEY] = session
            caller = session.client_id
        decision = self.limiter.check(caller, rate_group_for(request.method, path), now)
        headers = {"RCRequestId": request_id(), **decision.headers()}
        if not decision.allowed:
            return json_response(rate_exceeded_body(), 429, headers)
        fault = self.faults.take_rest_fault(path)
        if fault is not None:
            if fault.retry_after_s is not None:
                headers["Retry-After"] = str(fault.retry_after_s)
            code = (
                "CMN-301"
                if fault.status == 429
                else ("CMN-201" if fault.status >= 500 else "CMN-102")
            )
            return json_response(rest_error(code, "Injected fault"), fault.status, headers)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    @staticmethod
    def _api_auth_error(exc: OAuthError) -> dict[str, object]:
        """401 on an API call: REST envelope with the OAU code in `errors` (research C7, D)."""
        kind = "TokenExpired" if exc.code == "OAU-210" else "TokenInvalid"
        body = rest_error(kind, exc.description)
        body["errors"] = [{"errorCode": exc.code, "message": exc.description}]
        return body

    # -- OAuth -----------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        try:
            client_id = self.oauth.check_client(
                request.headers.get("Authorization"), form.get("client_id")
            )
            grant = self.oauth.grant(client_id, form, self.clock())
        except OAuthError as exc:
            return json_response(exc.body(), exc.status)
        return json_response(grant.body(endpoint_id="sim-endpoint-1"))

    async def revoke(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token", ""))
        try:
            session = self.oauth.session_for(token, self.clock())
        except OAuthError:
            return web.Response(status=200)
        session.revoked = True
        return web.Response(status=200)

    async def wstoken(self, request: web.Request) -> web.Response:
        session = request[_SESSION_KEY]
        token, ttl = self.gateway.issue_ws_token(session)
        # the uri points at this very server (issue 5 point 6), same host and port
        ws_url = URL.build(
            scheme="ws", host=request.url.host or "127.0.0.1", port=request.url.port, path=WS_PATH
        )
        return json_response(
            {"uri": str(ws_url), "ws_access_token": token, "expires_in": round(ttl)}
        )

    # -- data ------------------------------------------------------------------------------

    # -- data: pure (query, url) -> (status, body), served over HTTP and over the WebSocket --

    async def data(self, request: web.Request) -> web.Response:
        """call-log, extension list, telephony session."""
        status, body = self._data(request.path, request.query, request.url)
        return json_response(body, status)

    def ws_request(self, method: str, path: str, query: MultiMapping[str]) -> tuple[int, object]:
        """A REST call sent as a WS `ClientRequest` (research A3: any JSON REST call)."""
        if method != "GET" or _DATA_PATH.match(path) is None:
            return 404, rest_error("CMN-102", f"Resource [{method} {path}] is not found")
        url = URL(self.gateway_base_url + path).with_query(query)
        return self._data(path, query, url)

    def _data(self, path: str, query: MultiMapping[str], url: URL) -> tuple[int, object]:
        match = _DATA_PATH.match(path)
        if match is None:
            return 404, rest_error("CMN-102", f"Resource [{path}] is not found")
        account = match["account"]
        if account not in ("~", self.org.account_id):
            return 404, rest_error("CMN-102", f"Account [{account}] is not found")
        try:
            if match["session"] is not None:
                return self._session_body(match["session"])
            if match["what"] == "extension" and match["extension"] is not None:
                return self._extension_info(match["extension"])
            if match["what"] == "extension":
                return self._extension_body(query, url)
            if match["extension"] is not None:
                return 404, rest_error("CMN-102", f"Resource [{path}] is not found")
            return self._call_log_body(query, url)
        except ValueError as exc:
            return 400, rest_error("CMN-101", str(exc))

    def _session_body(self, sid: str) -> tuple[int, object]:
        live = self.engine.live.get(sid)
        if live is None:
            return 404, rest_error("TAS-102", f"Telephony session [{sid}] is not found")
        return 200, live.rest_object(self.org.account_id)

    def _extension_info(self, extension_id: str) -> tuple[int, object]:
        """Get Extension (group Light): the record with its regional settings."""
        if extension_id == "~":
            extension_id = self.org.owner_extension_id
        info = self.org.extension_info(extension_id)
        if info is None:
            return 404, rest_error("CMN-102", f"Extension [{extension_id}] is not found")
        return 200, info

    def _extension_body(self, query: MultiMapping[str], url: URL) -> tuple[int, object]:
        types = set(query.getall("type", []))
        statuses = set(query.getall("status", []))
        records = [
            r
            for r in self.org.extension_records()
            if (not types or r.get("type") in types)
            and (not statuses or r.get("status") in statuses)
        ]
        return 200, _page_body(url, records, *_paging(query))

    def _call_log_body(self, q: MultiMapping[str], url: URL) -> tuple[int, object]:
        date_to = _when(q.get("dateTo")) or self.engine.now_wall()
        date_from = _when(q.get("dateFrom")) or date_to - timedelta(hours=24)
        view = q.get("view", "Simple")
        if view not in ("Simple", "Detailed"):
            raise ValueError(f"Parameter [view] value [{view}] is invalid: use Simple or Detailed")
        tsid = q.get("telephonySessionId")
        sid = q.get("sessionId")
        directions = set(q.getall("direction", []))
        types = set(q.getall("type", []))
        page, per_page = _paging(q)
        selected: list[dict[str, object]] = []
        for entry in sorted(self.engine.call_log, key=lambda e: e.start, reverse=True):
            rec = entry.record
            if not date_from <= entry.start < date_to:
                continue
            if tsid and rec.get("telephonySessionId") != tsid:
                continue
            if sid and rec.get("sessionId") != sid:
                continue
            if directions and rec.get("direction") not in directions:
                continue
            if types and rec.get("type") not in types:
                continue
            selected.append(
                rec if view == "Detailed" else {k: v for k, v in rec.items() if k != "legs"}
            )
        answer = _page_body(url, selected, page, per_page)
        injected = self.faults.take_call_log_records() if page == 1 else []
        if injected and isinstance(records := answer["records"], list):
            # Among the real ones, not first or last: a decoder must take each record alone.
            middle = len(records) // 2
            answer["records"] = [*records[:middle], *injected, *records[middle:]]
        return 200, answer


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"Parameter [dateFrom/dateTo] value [{value}] is not an ISO 8601 date"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _paging(query: MultiMapping[str]) -> tuple[int, int]:
    raw_per_page = query.get("perPage", "100")
    raw_page = query.get("page", "1")
    try:
        per_page = 1000 if raw_per_page == "max" else int(raw_per_page)
        page = int(raw_page)
    except ValueError:
        raise ValueError(
            f"Parameter [perPage/page] value [{raw_per_page}/{raw_page}] is invalid"
        ) from None
    if not 1 <= per_page <= 1000 or page < 1:
        raise ValueError(
            f"Parameter [perPage/page] value [{raw_per_page}/{raw_page}] is out of range"
        )
    return page, per_page


def _page_body(
    url: URL, records: list[dict[str, object]], page: int, per_page: int
) -> dict[str, object]:
    """`{uri, records, navigation, paging}` (research C3)."""
    total = len(records)
    pages = max(1, math.ceil(total / per_page))
    start = (page - 1) * per_page
    chunk = records[start : start + per_page]

    def link(number: int) -> dict[str, str]:
        return {"uri": str(url.update_query(page=str(number), perPage=str(per_page)))}

    navigation: dict[str, object] = {"firstPage": link(1), "lastPage": link(pages)}
    if page < pages:
        navigation["nextPage"] = link(page + 1)
    if page > 1:
        navigation["previousPage"] = link(page - 1)
    paging: dict[str, object] = {
        "page": page,
        "perPage": per_page,
        "totalPages": pages,
        "totalElements": total,
    }
    if chunk:
        paging["pageStart"] = start
        paging["pageEnd"] = start + len(chunk) - 1
    return {"uri": str(url), "records": chunk, "navigation": navigation, "paging": paging}
