"""The console's page data, pure: the retry form read into a request or a reason, and the
Pictures page's bars and latency rows (every hour and bucket shown, zeros included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sscl_daemon.console.page_data import (
    RetryRequest,
    hourly_bars,
    latency_rows,
    read_retry,
)
from sscl_daemon.store import views


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"scope": "nonsense"}, "Unknown retry."),
        ({"scope": "one", "id": "x1"}, "Choose the call log to send again."),
        ({"scope": "writer", "writer": "  "}, "Choose a writer."),
        ({"scope": "since"}, "Give a time"),
    ],
)
def test_a_retry_form_without_what_it_needs_says_what_is_missing(
    form: dict[str, object], problem: str
) -> None:
    read = read_retry(form)
    assert isinstance(read, str)
    assert read.startswith(problem)


def test_a_retry_form_reads_into_the_request_it_names() -> None:
    one = read_retry({"scope": "one", "id": "42"})
    assert one == RetryRequest("one", None, "", None, 42)
    assert one.what == "call log #42"
    since = read_retry({"scope": "since", "since": "2026-01-31T08:00", "writer": "hs"})
    assert isinstance(since, RetryRequest)
    assert since.since is not None
    assert (since.since.day, since.since.hour) == (31, 8)
    assert since.what.startswith("every dead call log parked since 2026-01-31")


def test_hourly_bars_cover_24_hours_with_every_result_in_order() -> None:
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    counts = [views.HourCount(start + timedelta(hours=2), "missed", 3)]
    bars = hourly_bars(counts, start, ["answered", "missed"])
    assert len(bars) == 24
    assert bars[0].label == "09:00"
    assert bars[2].parts == (("answered", 0), ("missed", 3))


def test_latency_rows_name_every_bucket_even_when_none_were_counted() -> None:
    empty = latency_rows(views.LatencyBuckets((1.0, 5.0), ()))
    assert empty == [("< 1 s", 0), ("1 s–5 s", 0), ("≥ 5 s", 0)]
    assert latency_rows(views.LatencyBuckets((1.0,), (4, 2))) == [("< 1 s", 4), ("≥ 1 s", 2)]
