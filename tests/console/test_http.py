"""The console over HTTP on a real loopback socket, without a browser: who gets in (token,
session cookie, probes), CSRF on actions, the retry confirmation, security headers, and
skipped calls shown with their reason."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from tests.daemon.helpers import make_call

from sscl_daemon.admin import AdminServer
from sscl_daemon.calls.policy import Decision, SkipReason
from sscl_daemon.config import Settings, parse_config
from sscl_daemon.console.memory import RECENT_SKIPS
from sscl_daemon.console.web import WebConsole, record_links
from sscl_daemon.store import CommitFailure, Store, views

TOKEN = "console-http-token-0123456789abcdef"
HTML = {"Accept": "text/html,application/xhtml+xml"}
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass
class FakeDaemon:
    """What the console reads from the daemon (see console.web.DaemonFacts)."""

    settings: Settings
    store: Store | None
    holder: str = "test-host:1"
    held_accounts: list[str] = field(default_factory=lambda: ["default"])
    followed: set[str] = field(default_factory=set)
    failing: dict[str, CommitFailure] = field(default_factory=dict)

    def in_flight(self, telephony_session_id: str) -> bool:
        return telephony_session_id in self.followed

    def commit_failures(self) -> Mapping[str, CommitFailure]:
        return self.failing


async def _ready() -> Mapping[str, bool]:
    return {"subscribed": True, "store": True, "account:default": True}


# Every secret the configuration below holds; none may ever reach a page.
SECRETS = (
    TOKEN,
    "rc-client-secret-0123456789",
    "rc-jwt-eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl",
    "whsec_c2VjcmV0LWZvci10aGUtY29uc29sZS0xMjM0",
    "db-password-0123456789",
    "url-token-0123456789",
)


@asynccontextmanager
async def serve(
    store: Store,
    token: str | None,
    followed: set[str] | None = None,
    failing: dict[str, CommitFailure] | None = None,
) -> AsyncIterator[str]:
    config: dict[str, dict[str, object]] = {
        "ringcentral": {"client_id": "id", "client_secret": SECRETS[1], "jwt": SECRETS[2]},
        "store": {"dsn": f"postgresql://sscl:{SECRETS[4]}@db.example/sscl"},
        "writers": {
            "crm": {
                "type": "webhook",
                "url": f"https://hooks.example/calls?access_token={SECRETS[5]}",
                "secret": SECRETS[3],
            },
        },
        "admin": {"port": 0, **({"token": token} if token else {})},
    }
    settings = parse_config(config)
    daemon = FakeDaemon(settings, store, followed=followed or set(), failing=failing or {})
    console = WebConsole(daemon, _ready)
    server = AdminServer(settings.admin, _ready, console)
    port = await server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


def _client() -> aiohttp.ClientSession:
    # The console is on an IP address: aiohttp keeps cookies from one only when "unsafe".
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def _csrf(page: str) -> str:
    match = _CSRF.search(page)
    assert match is not None, "no CSRF token in the page"
    return match[1]


async def _park(store: Store) -> None:
    await store.commit_batch("default", [make_call(1), make_call(2)], ["crm"], None)
    for item in await store.claim_due("crm", 10, "test", 60.0):
        await store.mark_dead(item.id, "test", "crm rejected the request (HTTP 422)")


async def test_with_a_token_only_probes_and_the_login_page_are_open(store: Store) -> None:
    async with serve(store, TOKEN) as base, _client() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/", headers=HTML, allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/login"
        async with http.get(f"{base}/calls") as resp:  # not a browser: a plain 401
            assert resp.status == 401
        async with http.get(f"{base}/login") as resp:
            assert resp.status == 200
            assert "Content-Security-Policy" in resp.headers
            assert not resp.cookies, "the login page must not hand out a session"
        async with http.post(f"{base}/login", data={"token": "wrong"}) as resp:
            assert resp.status == 401
            assert "not the admin token" in await resp.text()
        async with http.post(f"{base}/login", data={"token": TOKEN}, allow_redirects=False) as resp:
            assert resp.status == 303
            cookie = resp.cookies["sscl_console"]
            assert cookie["httponly"]
            assert cookie["samesite"] == "Strict"
        async with http.get(f"{base}/calls") as resp:
            assert resp.status == 200
            assert TOKEN not in await resp.text()
        # The bearer token still opens everything, /metrics included.
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(f"{base}/metrics", headers=bearer) as resp:
            assert resp.status == 200


async def test_actions_need_the_csrf_token_and_a_confirmation(store: Store) -> None:
    await _park(store)
    async with serve(store, None) as base, _client() as http:
        async with http.get(f"{base}/dead") as resp:
            page = await resp.text()
            assert "crm rejected the request (HTTP 422)" in page
        csrf = _csrf(page)
        form = {"scope": "writer", "writer": "crm", "confirm": "yes"}
        async with http.post(f"{base}/dead/retry", data=form) as resp:
            assert resp.status == 403
        async with http.post(f"{base}/dead/retry", data={**form, "csrf": "0" * 64}) as resp:
            assert resp.status == 403
        assert len(await views.dead_calls(store)) == 2
        # Without confirm: a page asking for it, nothing moved yet.
        ask = {"scope": "writer", "writer": "crm", "csrf": csrf}
        async with http.post(f"{base}/dead/retry", data=ask) as resp:
            assert resp.status == 200
            assert "every dead call log of writer crm" in await resp.text()
        assert len(await views.dead_calls(store)) == 2
        async with http.post(
            f"{base}/dead/retry", data={**ask, "confirm": "yes"}, allow_redirects=False
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/dead?done=2"
        assert await views.dead_calls(store) == []
        async with http.post(
            f"{base}/dead/retry", data={"scope": "since", "since": "yesterday", "csrf": csrf}
        ) as resp:
            assert resp.status == 400
            assert "neither a duration" in await resp.text()


async def test_a_skipped_call_shows_its_reason_on_the_calls_page(store: Store) -> None:
    call = make_call(7, number="+14155550100")
    detail = "external number +14155550100 matches the blocklist"
    RECENT_SKIPS.add(call, Decision(call.key, False, SkipReason.BLOCKLISTED_NUMBER, detail))
    try:
        async with serve(store, None) as base, _client() as http:
            async with http.get(f"{base}/calls", params={"q": "415 555 0100"}) as resp:
                page = await resp.text()
            assert "skipped (blocklisted_number)" in page
            assert detail in page
            async with http.get(f"{base}/calls", params={"writer": "crm"}) as resp:
                assert detail not in await resp.text()  # skipped calls went to no writer
            async with http.get(f"{base}/calls", headers={"X-Console-Live": "1"}) as resp:
                fragment = await resp.text()
            assert "<html" not in fragment
            assert detail in fragment
    finally:
        RECENT_SKIPS.clear()


async def test_every_page_renders_and_static_files_are_served(store: Store) -> None:
    await _park(store)
    async with serve(store, None) as base, _client() as http:
        for path in ("/", "/calls", "/dead", "/blocklist?number=%2B14155550100", "/charts"):
            async with http.get(f"{base}{path}") as resp:
                assert resp.status == 200, path
                assert resp.headers["X-Frame-Options"] == "DENY"
                assert "<main" in await resp.text()
        for name in ("console.css", "console.js"):
            async with http.get(f"{base}/static/{name}") as resp:
                assert resp.status == 200
        async with http.get(f"{base}/static/..%2Fweb.py") as resp:
            assert resp.status == 404


async def test_no_page_ever_shows_a_secret(store: Store) -> None:
    await _park(store)
    async with serve(store, TOKEN) as base, _client() as http:
        async with http.post(f"{base}/login", data={"token": TOKEN}) as resp:
            assert resp.status == 200
        pages = ("/", "/calls", "/dead", "/blocklist?number=105", "/charts", "/config")
        for path in pages:
            async with http.get(f"{base}{path}") as resp:
                assert resp.status == 200, path
                text = await resp.text()
            leaked = [secret for secret in SECRETS if secret in text]
            assert not leaked, f"{path} shows a secret"
        async with http.get(f"{base}/config") as resp:
            config = await resp.text()
    assert "ringcentral.client_secret" in config
    assert "set (hidden)" in config
    assert "db.example" in config  # the DSN without its password
    assert "writers.crm.url" in config


def test_salesforce_records_link_to_their_page_and_other_writers_do_not() -> None:
    settings = parse_config(
        {
            "ringcentral": {"client_id": "id", "client_secret": SECRETS[1], "jwt": SECRETS[2]},
            "writers": {
                "sf": {
                    "type": "salesforce",
                    "instance_url": "https://acme.my.salesforce.com/",
                    "client_id": "sf-client",
                    "client_secret": "sf-client-secret-0123456789",
                    "refresh_token": "sf-refresh-token-0123456789",
                },
                "log": {"type": "jsonl", "path": "/tmp/sscl-console-http.jsonl"},
            },
        }
    )
    links = record_links(settings)
    assert set(links) == {("default", "sf")}
    link = links[("default", "sf")]
    assert link("00T5g00000AbCdEEAZ") == "https://acme.my.salesforce.com/00T5g00000AbCdEEAZ"
    assert link("../../evil") is None


async def test_a_session_still_followed_is_said_to_be_in_progress(store: Store) -> None:
    async with serve(store, None, followed={"s-live-1"}) as base, _client() as http:
        async with http.get(f"{base}/calls", params={"q": "s-live-1"}) as resp:
            assert "s-live-1</code> is still in progress" in await resp.text()
        async with http.get(f"{base}/calls", params={"q": "s-unknown"}) as resp:
            text = await resp.text()
        assert "still in progress" not in text
        assert "No calls match these filters" in text


async def test_the_overview_shows_an_account_whose_commits_fail(store: Store) -> None:
    async with serve(store, None) as base, _client() as http, http.get(base) as resp:
        assert '<span class="ok">ok</span>' in await resp.text()
    since = datetime.now(UTC) - timedelta(seconds=30)
    failing = {"default": CommitFailure(since, "could not extend file: No space left on device")}
    async with (
        serve(store, None, failing=failing) as base,
        _client() as http,
        http.get(base) as resp,
    ):
        text = await resp.text()
    assert "failing since 3" in text  # "30 s ago", give or take the page's own time
    assert "No space left on device" in text
