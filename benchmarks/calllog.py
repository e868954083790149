"""What reading a call-log answer one record at a time costs (issue 19, ringcentral/calllog_page.py).

A page of simulated Detailed records (CallFactory, the realistic mix) decoded three ways:
the whole page into typed records in one msgspec call (how the answers were read before),
the page's records one by one (``decode_call_log_page`` without a window), and one by one
and dated (with the read's window, as ``RestClient.call_log_pages`` does). Then the mapping
(``calls_from_records``) of the same records for scale. Prints the median of ``--repeat``
runs per page and per record (the ways take turns).

    .venv/bin/python benchmarks/calllog.py [--records 1000] [--repeat 30] [--seed 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec

from sscl_daemon.calls.directory import Directory
from sscl_daemon.ringcentral.calllog import calls_from_records
from sscl_daemon.ringcentral.calllog_page import decode_call_log_page
from sscl_daemon.ringcentral.records import CallLogRecord, Navigation
from sscl_daemon.simulator.org import Organisation
from sscl_daemon.simulator.scenarios import CallFactory

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class _WholePage(msgspec.Struct, kw_only=True):
    """The page as one typed decode (the records' shapes are the same bounded ones)."""

    records: list[CallLogRecord] = msgspec.field(default_factory=list)
    navigation: Navigation = msgspec.field(default_factory=Navigation)


def _medians_ms(runs: list[Callable[[], object]], repeat: int) -> list[float]:
    """Each run's median time; the runs take turns, so a loaded machine slows them alike."""
    times: list[list[float]] = [[] for _ in runs]
    for round_ in range(repeat + 1):
        for run, spent in zip(runs, times, strict=True):
            began = time.perf_counter()
            run()
            if round_:  # the first round warms up
                spent.append(time.perf_counter() - began)
    return [statistics.median(spent) * 1000 for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000, help="records per page")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    org = Organisation.build(args.seed, users=40, queues=3)
    factory = CallFactory(org, args.seed)
    records: list[dict[str, object]] = []
    while len(records) < args.records:
        records.extend(factory.make(START + timedelta(seconds=20 * len(records))).call_log_records)
    body = msgspec.json.encode({"records": records[: args.records], "navigation": {}})
    read_at = START + timedelta(seconds=20 * args.records + 3600)
    directory = Directory.from_api(org.extension_records())
    page = decode_call_log_page(body, START, read_at)
    assert not page.refused, page.refused[:1]

    rows = [
        ("whole page, one decode", lambda: msgspec.json.decode(body, type=_WholePage)),
        ("one record at a time", lambda: decode_call_log_page(body)),
        ("one at a time, dated", lambda: decode_call_log_page(body, START, read_at)),
        ("mapping (calls_from_records)", lambda: calls_from_records(page.records, "1", directory)),
    ]
    count = len(page.records)
    print(f"{count} records, {len(body) / 1024:.0f} KiB, median of {args.repeat}")
    medians = _medians_ms([run for _, run in rows], args.repeat)
    for (name, _), ms in zip(rows, medians, strict=True):
        print(f"{name:30} {ms:8.2f} ms/page {ms * 1000 / count:8.2f} µs/record")


if __name__ == "__main__":
    main()
