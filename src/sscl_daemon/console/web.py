"""The console's pages, mounted on the admin endpoint (:mod:`sscl_daemon.admin`).

Server-rendered HTML (jinja2, autoescaped) over the store's read-only views
(:mod:`sscl_daemon.store.views`), the daemon's own state (accounts held,
subscriptions, settings) and what the process remembers
(:mod:`.memory`: skipped calls, the last reload). The live parts of a page
sit in one ``live`` block: ``console.js`` asks for that block again every
few seconds (header ``X-Console-Live``) and swaps it in, so the page
refreshes without a reload and works without script too.

Actions are the CLI's operations, never copies of them: retrying dead call
logs is :meth:`Store.retry_dead` (``sscl-daemon retry-dead``); the tester
asks :meth:`Policy.explain` about the same probe call as ``sscl-daemon
blocklist check``. Every action is a POST with the session's CSRF token and,
for retries, a confirmation step.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Protocol

import jinja2
from aiohttp import web

from sscl_daemon import __version__, metrics
from sscl_daemon.calls.model import CallResult
from sscl_daemon.config import DEFAULT_ACCOUNT, Settings
from sscl_daemon.console import charts
from sscl_daemon.console.memory import LAST_RELOAD, RECENT_SKIPS
from sscl_daemon.console.page_data import (
    RetryRequest,
    age,
    blocklist_answer,
    call_rows,
    counter_total,
    hourly_bars,
    latency_rows,
    read_retry,
    since_now,
    skip_matches,
    when,
)
from sscl_daemon.console.page_data import record_links as record_links
from sscl_daemon.console.security import SECURITY_HEADERS, SESSION_COOKIE, SESSION_SECONDS, Sessions
from sscl_daemon.console.settings_view import SECRET_SET, effective_settings
from sscl_daemon.logging import get_logger
from sscl_daemon.store import CommitFailure, Store, StoreError, views

log = get_logger(__name__)

# How often the live block of a page is fetched again (seconds). The overview counts the
# whole outbox of today (half a second on 600,000 rows), the other pages read a few rows.
REFRESH_SECONDS = 2
OVERVIEW_REFRESH_SECONDS = 5
# Latency buckets of the call-end -> CRM chart (seconds).
LATENCY_BOUNDS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
CALLS_SHOWN = 100

_PACKAGE = resources.files("sscl_daemon.console")
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}


class DaemonFacts(Protocol):
    """What the console reads from the running daemon."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store | None: ...

    @property
    def holder(self) -> str: ...

    @property
    def held_accounts(self) -> list[str]: ...

    def in_flight(self, telephony_session_id: str) -> bool: ...

    def commit_failures(self) -> Mapping[str, CommitFailure]: ...


Readiness = Callable[[], Awaitable[Mapping[str, bool]]]


class WebConsole:
    """The console: :meth:`mount` adds its routes; :meth:`admits` and :meth:`refuse` are
    asked by the admin endpoint's token check (see :class:`sscl_daemon.admin.Console`)."""

    def __init__(self, daemon: DaemonFacts, readiness: Readiness) -> None:
        self._daemon = daemon
        self._readiness = readiness
        token = daemon.settings.admin.token
        self._sessions = Sessions(token.reveal() if token is not None else None)
        self._started = time.monotonic()
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("sscl_daemon.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["when"] = when
        self._env.filters["ago"] = since_now
        self._env.filters["age"] = age

    # ---- admission (asked by admin.build_app's middleware) ---------------------------

    def admits(self, request: web.Request) -> bool:
        if request.path == "/login" or request.path.startswith("/static/"):
            return True
        return self._sessions.valid(request.cookies.get(SESSION_COOKIE), time.monotonic())

    def refuse(self, request: web.Request) -> web.StreamResponse | None:
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            return web.Response(status=303, headers={"Location": "/login"})
        return None

    # ---- routes ----------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        app.on_response_prepare.append(self._headers)
        app.router.add_get("/", self.overview)
        app.router.add_get("/calls", self.calls)
        app.router.add_get("/dead", self.dead)
        app.router.add_post("/dead/retry", self.retry)
        app.router.add_get("/blocklist", self.blocklist)
        app.router.add_get("/charts", self.charts)
        app.router.add_get("/config", self.config)
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        app.router.add_get("/static/{name}", self.static)

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)

    # ---- rendering -------------------------------------------------------------------

    def _session(self, request: web.Request) -> tuple[str | None, bool]:
        """The request's session id, and whether it is new. Without a token anyone gets a
        session; with one, only the login form makes them (the login page has none)."""
        sid = request.cookies.get(SESSION_COOKIE)
        if sid and self._sessions.valid(sid, time.monotonic()):
            return sid, False
        if self._sessions.needs_login:
            return None, False
        return self._sessions.open(time.monotonic()), True

    def _set_cookie(self, response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=False,  # the endpoint speaks plain HTTP on loopback; see README "Console"
        )

    def _render(
        self, request: web.Request, template: str, page: str, status: int = 200, **values: Any
    ) -> web.Response:
        sid, new = self._session(request)
        tmpl = self._env.get_template(template)
        context = {
            "page": page,
            "csrf": self._sessions.csrf(sid) if sid is not None else "",
            "login_needed": self._sessions.needs_login,
            "refresh": REFRESH_SECONDS,
            "version": __version__,
            **values,
        }
        if request.headers.get("X-Console-Live") and "live" in tmpl.blocks:
            body = "".join(tmpl.blocks["live"](tmpl.new_context(context)))
        else:
            body = tmpl.render(context)
        response = web.Response(text=body, content_type="text/html", status=status)
        if new and sid is not None:
            self._set_cookie(response, sid)
        return response

    def _store(self) -> Store:
        store = self._daemon.store
        if store is None:
            raise web.HTTPServiceUnavailable(text="the store is not open yet")
        return store

    # ---- pages -----------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.Response:
        daemon = self._daemon
        settings = daemon.settings
        store = self._store()
        checks = dict(await self._readiness())
        held = set(daemon.held_accounts)
        failing = daemon.commit_failures()
        try:
            holders = {lease.account: lease for lease in await store.lease_holders()}
            last = await views.last_events(store)
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            names = [a.name for a in settings.accounts]
            figures = {w.writer: w for w in await views.writer_days(store, today, names)}
            error = None
        except StoreError as exc:
            holders, last, figures, error = {}, {}, {}, str(exc)
        accounts = [
            {
                "name": account.name,
                "held": account.name in held,
                "subscribed": checks.get(f"account:{account.name}", False),
                "holder": holders[account.name].holder if account.name in holders else None,
                "last_event": last.get(account.name),
                "writers": [w.name for w in account.writers],
                "commits_failing": failing.get(account.name),
            }
            for account in settings.accounts
        ]
        writer_names = sorted({w.name for a in settings.accounts for w in a.writers})
        writers = [{"name": name, "figures": figures.get(name)} for name in writer_names]
        ws = {
            "reconnects": counter_total(metrics.WS_RECONNECTS),
            "recoveries": counter_total(metrics.WS_RECOVERIES),
            "gaps": counter_total(metrics.WS_GAPS),
        }
        return self._render(
            request,
            "overview.html",
            "overview",
            accounts=accounts,
            writers=writers,
            ws=ws,
            holder=daemon.holder,
            uptime=age(time.monotonic() - self._started),
            store_target=store.target,
            refresh=OVERVIEW_REFRESH_SECONDS,
            error=error,
            now=datetime.now(UTC),
        )

    async def calls(self, request: web.Request) -> web.Response:
        q = request.query
        search = q.get("q", "").strip() or None
        result = q.get("result", "").strip() or None
        writer = q.get("writer", "").strip() or None
        extension = q.get("extension", "").strip() or None
        store = self._store()
        try:
            logged = await views.recent_calls(
                store,
                search=search,
                result=result,
                writer=writer,
                extension=extension,
                limit=CALLS_SHOWN,
            )
            error = None
        except StoreError as exc:
            logged, error = [], str(exc)
        skipped = (
            []
            if writer
            else [s for s in RECENT_SKIPS.newest() if skip_matches(s, search, result, extension)]
        )
        rows = call_rows(logged, skipped, record_links(self._daemon.settings), CALLS_SHOWN)
        settings = self._daemon.settings
        in_progress = bool(search) and not rows and self._daemon.in_flight(search or "")
        return self._render(
            request,
            "calls.html",
            "calls",
            in_progress=in_progress,
            rows=rows,
            search=search or "",
            result=result or "",
            writer=writer or "",
            extension=extension or "",
            results=[r.value for r in CallResult],
            writers=sorted({w.name for a in settings.accounts for w in a.writers}),
            error=error,
        )

    async def dead(self, request: web.Request) -> web.Response:
        store = self._store()
        writer = request.query.get("writer", "").strip() or None
        try:
            dead = await views.dead_calls(store, writer=writer)
            letters = await store.dead_letters(limit=50)
            error = None
        except StoreError as exc:
            dead, letters, error = [], [], str(exc)
        settings = self._daemon.settings
        return self._render(
            request,
            "dead.html",
            "dead",
            dead=dead,
            letters=letters,
            writer=writer or "",
            writers=sorted({w.name for a in settings.accounts for w in a.writers}),
            done=request.query.get("done"),
            error=error,
        )

    async def retry(self, request: web.Request) -> web.Response:
        form = await request.post()
        sid = request.cookies.get(SESSION_COOKIE)
        csrf = form.get("csrf")
        if not self._sessions.csrf_ok(
            sid, csrf if isinstance(csrf, str) else None, time.monotonic()
        ):
            log.warning(
                "admin.console.csrf_refused",
                path=request.path,
                reason="missing or wrong CSRF token",
            )
            return self._render(
                request,
                "message.html",
                "dead",
                status=403,
                title="Refused",
                message="This action came without a valid form token. Open the page again "
                "and repeat it from there.",
            )
        retry = read_retry(form)
        if not isinstance(retry, RetryRequest):
            return self._render(
                request, "message.html", "dead", status=400, title="Not retried", message=retry
            )
        if form.get("confirm") != "yes":
            return self._render(
                request,
                "confirm.html",
                "dead",
                what=retry.what,
                scope=retry.scope,
                writer=retry.writer or "",
                since=retry.since_text,
                item_id=retry.item_id or "",
            )
        moved = await self._store().retry_dead(
            writer=retry.writer if retry.scope == "writer" else None,
            since=retry.since,
            item_id=retry.item_id if retry.scope == "one" else None,
        )
        log.info("admin.console.retry_requested", what=retry.what, moved=moved)
        raise web.HTTPSeeOther(f"/dead?done={moved}")

    async def blocklist(self, request: web.Request) -> web.Response:
        settings = self._daemon.settings
        accounts = settings.accounts
        chosen_name = request.query.get("account") or accounts[0].name
        chosen = next((a for a in accounts if a.name == chosen_name), accounts[0])
        number = request.query.get("number", "").strip()
        extension = request.query.get("extension", "").strip()
        answer = blocklist_answer(chosen, number, extension or None) if number else None
        source = str(settings.source) if settings.source else "the built-in defaults"
        return self._render(
            request,
            "blocklist.html",
            "blocklist",
            accounts=accounts,
            chosen=chosen,
            # Named [accounts.NAME] tables (a file without them holds the default account).
            multi=any(a.name != DEFAULT_ACCOUNT for a in accounts),
            number=number,
            extension=extension,
            answer=answer,
            source=source,
            reload=LAST_RELOAD.result,
        )

    async def charts(self, request: web.Request) -> web.Response:
        store = self._store()
        now = datetime.now(UTC)
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
        try:
            names = [a.name for a in self._daemon.settings.accounts]
            hourly = await views.calls_per_hour(store, start, names)
            latency = await views.end_to_crm_latency(
                store, now - timedelta(days=1), names, LATENCY_BOUNDS
            )
            error = None
        except StoreError as exc:
            hourly, latency, error = [], views.LatencyBuckets(LATENCY_BOUNDS, ()), str(exc)
        results = [r.value for r in CallResult]
        bars = hourly_bars(hourly, start, results)
        lat_rows = latency_rows(latency)
        lat_bars = [charts.Bar(label, (("latency", n),)) for label, n in lat_rows]
        return self._render(
            request,
            "charts.html",
            "charts",
            calls_chart=charts.stacked_bars(
                "calls",
                "Calls per hour by result, last 24 hours (UTC)",
                "One bar per hour; each colour is a result.",
                bars,
                every=3,
            ),
            latency_chart=charts.stacked_bars(
                "latency",
                "Call end to CRM, last 24 hours",
                "How many call logs reached their CRM within each time after the call ended.",
                lat_bars,
            ),
            results=[(r, charts.colour(r)) for r in results],
            table=[(bar.label, dict(bar.parts), bar.total) for bar in bars],
            latency_table=lat_rows,
            error=error,
        )

    async def config(self, request: web.Request) -> web.Response:
        settings = self._daemon.settings
        source = str(settings.source) if settings.source else "the built-in defaults"
        return self._render(
            request,
            "config.html",
            "config",
            source=source,
            rows=effective_settings(settings),
            secret_set=SECRET_SET,
            reload=LAST_RELOAD.result,
        )

    # ---- login -----------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.Response:
        if not self._sessions.needs_login:
            raise web.HTTPSeeOther("/")
        return self._render(request, "login.html", "login", failed=False)

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        offered = form.get("token")
        sid = self._sessions.login(offered if isinstance(offered, str) else "", time.monotonic())
        if sid is None:
            log.warning("admin.console.login_refused", reason="wrong admin token")
            return self._render(request, "login.html", "login", status=401, failed=True)
        response = web.HTTPSeeOther("/")
        self._set_cookie(response, sid)
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        form = await request.post()
        sid = request.cookies.get(SESSION_COOKIE)
        csrf = form.get("csrf")
        if self._sessions.csrf_ok(sid, csrf if isinstance(csrf, str) else None, time.monotonic()):
            self._sessions.end(sid)
        response = web.HTTPSeeOther("/login" if self._sessions.needs_login else "/")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = next((t for ext, t in _STATIC_TYPES.items() if name.endswith(ext)), None)
        item = _PACKAGE.joinpath("static", name)
        if kind is None or "/" in name or name.startswith(".") or not item.is_file():
            raise web.HTTPNotFound()
        return web.Response(
            body=item.read_bytes(),
            content_type=kind,
            headers={"Cache-Control": "max-age=3600"},
        )
