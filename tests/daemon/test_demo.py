"""The demo shows calls being logged within seconds, with nothing but the package."""

from __future__ import annotations

import io
import re

from sscl_daemon.demo import DemoOptions, run_demo


async def test_demo_logs_calls_within_seconds() -> None:
    out = io.StringIO()
    report = await run_demo(DemoOptions(duration=12.0, calls_per_second=2.0, seed=4), out)
    text = out.getvalue()
    assert report.exit_code == 0, text
    assert sum(report.logged.values()) >= 1, text
    assert report.first_logged_after is not None
    assert report.first_logged_after < 12.0
    lines = [line for line in text.splitlines() if re.match(r"\d\d:\d\d:\d\d  (in|out)", line)]
    assert len(lines) == sum(report.logged.values())
    assert "call logs in the CRM" in text
    assert report.simulated >= sum(report.logged.values())
