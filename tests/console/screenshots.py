"""Take the README's console screenshots from a running ``sscl-daemon demo``.

    .venv/bin/python -m tests.console.screenshots [--out docs]

Starts the demo (simulator, embedded PostgreSQL, daemon), reads the console's address from
its output, lets calls land, and saves the Calls page and the Pictures (desktop) and the
Overview and the Calls page (phone width) as PNGs with headless Chromium. A tool for the docs, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path

from playwright.async_api import async_playwright
from tests.console.harness import CHROMIUM

_ADDRESS = re.compile(r"admin console at (http://127\.0\.0\.1:\d+)/")


async def _address(demo: asyncio.subprocess.Process) -> str:
    assert demo.stdout is not None
    async with asyncio.timeout(120):
        while line := (await demo.stdout.readline()).decode():
            sys.stdout.write(line)
            if match := _ADDRESS.search(line):
                return match[1]
    raise RuntimeError("the demo ended without printing the console's address")


async def main(out: Path, calls: int) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sscl_daemon",
        "demo",
        "--duration",
        "300",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        base = await _address(demo)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            page = await browser.new_page(viewport={"width": 1280, "height": 760})
            await page.goto(f"{base}/calls")
            rows = page.locator("#calls tbody tr[data-session]")
            async with asyncio.timeout(180):
                while await rows.count() < calls:
                    await page.wait_for_timeout(1000)  # the page refreshes itself
            await page.screenshot(path=str(out / "console-calls.png"))
            await page.goto(f"{base}/charts")
            await page.screenshot(path=str(out / "console-charts.png"), full_page=True)
            phone = await browser.new_page(viewport={"width": 390, "height": 844})
            await phone.goto(f"{base}/")
            await phone.screenshot(path=str(out / "console-overview-phone.png"), full_page=True)
            await phone.goto(f"{base}/calls")
            await phone.screenshot(path=str(out / "console-calls-phone.png"))
            await browser.close()
    finally:
        demo.terminate()
        await demo.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--calls", type=int, default=12, help="wait for this many calls")
    args = parser.parse_args()
    asyncio.run(main(args.out, args.calls))
