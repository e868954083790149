"""The console in a real browser: headless Chromium (Debian's, driven by Playwright) against a
real daemon, the simulator and the webhook CRM stand-in on loopback, and a real PostgreSQL.

Each test saves a screenshot under ``test-artefacts/console/`` (``$SSCL_TEST_ARTEFACTS``
overrides the directory). Without Chromium or Playwright the module is skipped with one line
saying how to enable it, unless ``SSCL_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a
failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.console.harness import ADMIN_TOKEN, CHROMIUM, RunningConsole, running_console
from tests.daemon.helpers import wait_until

from sscl_daemon.cli import main
from sscl_daemon.simulator.scenarios import CallKind, SimCall
from sscl_daemon.store import views

_MISSING = [
    what
    for what, present in (
        (f"Chromium at {CHROMIUM}", shutil.which(CHROMIUM) is not None),
        ("the playwright package", importlib.util.find_spec("playwright") is not None),
    )
    if not present
]
if _MISSING:
    _WHY = (
        f"browser tests of the console did not run: no {' and no '.join(_MISSING)}; "
        "enable them with `apt-get install chromium` and `make venv` (or run .ci/run)"
    )
    if os.environ.get("SSCL_REQUIRE_BROWSER") == "1":
        pytest.fail(_WHY, pytrace=False)
    pytest.skip(_WHY, allow_module_level=True)

from playwright.async_api import Browser, Page, async_playwright, expect  # noqa: E402

ARTEFACTS = Path(
    os.environ.get("SSCL_TEST_ARTEFACTS", Path(__file__).parents[2] / "test-artefacts")
)
TIMEOUT_MS = 20_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # No sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def console(pg_dsn: str, tmp_path: Path) -> AsyncIterator[RunningConsole]:
    async with running_console(pg_dsn, tmp_path) as running:
        yield running


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    try:
        yield opened
    finally:
        ARTEFACTS.joinpath("console").mkdir(parents=True, exist_ok=True)
        shot = ARTEFACTS / "console" / f"{request.node.name}.png"
        await opened.screenshot(path=str(shot), full_page=True)
        await context.close()


async def log_in(page: Page, base: str, token: str = ADMIN_TOKEN) -> None:
    await page.goto(f"{base}/")
    await expect(page).to_have_url(f"{base}/login")
    await page.get_by_label("Admin token").fill(token)
    await page.get_by_role("button", name="Log in").click()


def _calls(console: RunningConsole, kind: CallKind, count: int) -> list[SimCall]:
    now = datetime.now(UTC)
    return [console.sim.factory.make(now, kind, salt=i) for i in range(count)]


def _external_call(console: RunningConsole) -> tuple[SimCall, str]:
    """An answered inbound call with an outside number, and that number."""
    for call in _calls(console, CallKind.INBOUND_ANSWERED, 20):
        number = next((log.external_number for log in call.expected if log.external_number), None)
        if number is not None:
            return call, number
    raise AssertionError("the simulator made no inbound call with an outside number")


async def _reload_with_blocklist(console: RunningConsole, entries: list[str]) -> None:
    """Edit the file and reload, as SIGHUP does."""
    empty = "[blocklist]\nentries = []\n"
    text = console.config_path.read_text()
    assert empty in text, "the test starts without a blocklist"
    # A JSON list of strings is a TOML array.
    console.config_path.write_text(
        text.replace(empty, f"[blocklist]\nentries = {json.dumps(entries)}\n")
    )
    assert await console.daemon.reload()


async def test_a_simulated_call_appears_on_the_calls_page_without_a_reload(
    console: RunningConsole, page: Page
) -> None:
    base = console.base_url
    await log_in(page, base)
    await page.goto(f"{base}/calls")
    await page.evaluate("window.__loadedOnce = true")
    call = console.sim.inject(_external_call(console)[0])
    tsid = call.telephony_session_ids[0]
    row = page.locator(f'#calls tr[data-session="{tsid}"]').first
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("crm")
    await expect(row).to_contain_text("sent")
    # The same document: the row came by the live refresh, not by a navigation.
    assert await page.evaluate("window.__loadedOnce === true")


async def test_a_blocked_number_shows_as_skipped_with_the_deciding_entry(
    console: RunningConsole, page: Page
) -> None:
    base = console.base_url
    call, number = _external_call(console)
    await _reload_with_blocklist(console, [number])
    await log_in(page, base)
    console.sim.inject(call)
    await page.goto(f"{base}/calls?q={number.lstrip('+')}")
    row = page.locator(f'#calls tr[data-session="{call.telephony_session_ids[0]}"]').first
    await expect(row).to_contain_text("skipped (blocklisted_number)")
    await expect(row).to_contain_text(f"external number {number} matches the blocklist")
    assert not any(log.key in console.crm.deliveries for log in call.expected)
    # The blocklist page shows the entry and the reload that put it there.
    await page.goto(f"{base}/blocklist")
    await expect(page.locator("ul.entries")).to_contain_text(number)
    await expect(page.get_by_text("applied", exact=True)).to_be_visible()


async def test_a_dead_letter_is_retried_from_the_page_and_then_shows_as_sent(
    console: RunningConsole, page: Page
) -> None:
    base = console.base_url
    store = console.daemon.store
    assert store is not None
    console.crm.faults.fail(422, path="/hooks/calls", times=1000, body={"error": "bad field"})
    call, _ = _external_call(console)
    console.sim.inject(call)
    tsid = call.telephony_session_ids[0]

    async def parked() -> bool:
        return any(d.call.telephony_session_id == tsid for d in await views.dead_calls(store))

    await wait_until(parked, 20, "the call parked as dead")
    console.crm.faults.queue.clear()  # the cause is fixed
    await log_in(page, base)
    await page.goto(f"{base}/dead")
    row = page.locator(f'#dead tr[data-session="{tsid}"]').first
    await expect(row).to_contain_text("HTTP 422")
    await row.get_by_role("button", name="Retry").click()
    await expect(page.get_by_role("heading", name="Send again?")).to_be_visible()
    await page.get_by_role("button", name="Yes, send again").click()
    await expect(page.get_by_role("status")).to_contain_text("moved back to pending")
    await page.goto(f"{base}/calls?q={tsid}")
    logs = page.locator(f'#calls tr[data-session="{tsid}"]').first.locator("li", has_text="crm")
    await expect(logs.first).to_contain_text("sent")
    assert any(log.key in console.crm.deliveries for log in call.expected)


def _cli_check(config: Path, number: str) -> list[str]:
    """What ``sscl-daemon blocklist check NUMBER --config FILE`` prints (run in-process)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        main(["blocklist", "check", number, "--config", str(config)])
    return out.getvalue().strip().splitlines()


async def test_the_tester_answers_as_blocklist_check_does(
    console: RunningConsole, page: Page
) -> None:
    base = console.base_url
    blocked = "+16505550199"
    await _reload_with_blocklist(console, [blocked, "+1415555*", "105"])
    await log_in(page, base)
    verdicts: dict[str, list[str]] = {}
    for number in (blocked, "+14155550123", "+12125550100", "105"):
        expected = _cli_check(console.config_path, number)
        await page.goto(f"{base}/blocklist")
        await page.get_by_label("Number or extension").fill(number)
        await page.get_by_role("button", name="Check").click()
        await expect(page.locator("#answer")).to_be_visible()
        assert await page.locator("#answer p").all_inner_texts() == expected, number
        verdicts[number] = expected
    assert verdicts[blocked][0].startswith("NOT LOGGED")
    assert verdicts["+14155550123"][0].startswith("NOT LOGGED")  # the prefix entry
    assert verdicts["+12125550100"][0].startswith("LOGGED")
    assert len(verdicts["105"]) == 2  # the extension's own calls, and the other people's


async def test_a_wrong_token_and_a_missing_csrf_token_are_refused(
    console: RunningConsole, page: Page
) -> None:
    base = console.base_url
    await log_in(page, base, token="not-the-token")
    await expect(page).to_have_url(f"{base}/login")
    await expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    assert not [c for c in await page.context.cookies() if c["name"] == "sscl_console"]
    # Without a session, an action is refused before any form is read.
    refused = await page.request.post(f"{base}/dead/retry", form={"scope": "all", "confirm": "yes"})
    assert refused.status == 401

    await log_in(page, base)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == "sscl_console"]
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert ADMIN_TOKEN not in await page.content()
    for form in (
        {"scope": "all", "confirm": "yes"},
        {"scope": "all", "confirm": "yes", "csrf": "x"},
    ):
        answer = await page.request.post(f"{base}/dead/retry", form=form)
        assert answer.status == 403
    csp = (await page.request.get(f"{base}/")).headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    await page.goto(f"{base}/dead")  # the screenshot shows the page the refused actions belong to


_UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map(el => el.outerHTML)"""


async def test_every_page_is_labelled_keyboard_reachable_and_fits_a_phone(
    console: RunningConsole, page: Page
) -> None:
    base = console.base_url
    await log_in(page, base)
    await page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/", "/calls", "/dead", "/blocklist", "/charts", "/config"):
        await page.goto(f"{base}{path}")
        assert await page.evaluate(_UNLABELLED) == [], path
        # The first Tab stop is the skip link, and it leads to the main content.
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip", path
        # Nothing is wider than the phone's screen (tables scroll or stack, never the page).
        overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, path
