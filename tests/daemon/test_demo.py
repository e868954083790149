"""The demo shows calls being logged within seconds, with nothing but the package."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import msgspec
from tests.daemon.helpers import make_call, wait_until

from sscl_daemon.calls.model import CallResult
from sscl_daemon.demo import GROUP_WINDOW, HEADER, DemoOptions, DemoReport, _Printer, run_demo

CALL_LINE = re.compile(r"\d\d:\d\d:\d\d  (inbound|outbound|internal) ")


async def test_demo_at_its_default_rate_logs_several_calls_in_its_first_half_minute() -> None:
    out = io.StringIO()
    report = await run_demo(DemoOptions(duration=25.0), out)
    text = out.getvalue()
    assert report.exit_code == 0, text
    lines = text.splitlines()
    assert lines[0].startswith("sscl-daemon demo: ")
    assert "RingCentral (simulated): http://127.0.0.1:" in text
    assert "deleted at exit" in text
    assert HEADER in lines
    assert "admin console at http://127.0.0.1:" in text
    # Several calls, not one, while a newcomer is still watching (issue 18 item 12).
    assert len([t for t in report.logged_after if t <= 25.0]) >= 3, text
    calls = [line for line in lines if CALL_LINE.match(line)]
    assert len(calls) == len(report.shown)
    assert len(report.shown) <= sum(report.logged.values())
    summary = text[text.index("summary after") :]
    assert f"{sum(report.logged.values())} call logs in the CRM" in summary
    assert f"should give {report.simulated} call logs" in summary
    # The state is deleted: the last line must not promise logging "on its next run".
    assert "next run" not in text
    assert lines[-1].endswith("logs them after a restart.")
    assert "never logged" in lines[-1]


async def test_a_queue_call_nobody_answered_is_one_line_naming_the_agents() -> None:
    out = io.StringIO()
    report = DemoReport()
    printer = _Printer(report, out)
    end = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    base = make_call(1, end=end)
    missed = [
        msgspec.structs.replace(
            base,
            key=f"s-q:{ext}",
            telephony_session_id="s-q",
            extension_id=ext,
            extension_number=ext,
            user_name=None,
            result=CallResult.MISSED,
            queue_name="Sales Queue",
            answer_time=None,
        )
        for ext in ("101", "102", "103")
    ]
    answered = make_call(2, end=end + timedelta(seconds=1))
    for call in (missed[0], answered, missed[1], missed[2]):
        printer.landed(call)
    assert len(out.getvalue().splitlines()) == 1  # the answered call at once
    # The missed ones are held for the grouping window, then shown together.
    await wait_until(lambda: len(out.getvalue().splitlines()) == 2, GROUP_WINDOW * 5, "group")
    lines = out.getvalue().splitlines()
    assert "missed" in lines[1]
    assert "3 agents" in lines[1]
    assert "via Sales Queue, rang 101, 102, 103 (a missed log each)" in lines[1]
    assert report.shown == [answered.telephony_session_id, "s-q"]
    printer.landed(missed[0])
    printer.close()  # at the end a held line is printed at once, without waiting
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "missed      101 " in lines[2]
    assert lines[2].endswith("via Sales Queue")
