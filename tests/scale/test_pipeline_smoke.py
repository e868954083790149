"""A small run of ``benchmarks/pipeline.py``: it completes, prints its table, loses nothing.

Only structural facts are asserted (every call log the simulator asked for reached the
writer stand-in exactly once, nothing else arrived, every figure was produced); the
timings themselves are the benchmark's business, never a test's.
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType

import pytest
from rich.console import Console

from sscl_daemon.store.testing import PostgresForTests

FIGURES = {
    "raw_events_per_s",
    "daemon_events_per_s",
    "daemon_calls_per_s",
    "committed_calls_per_s",
    "committed_events_per_s",
    "cpu_daemon",
    "cpu_postgres",
    "cpu_machine",
    "ratio",
    "latency_100_p50",
    "latency_100_p99",
    "latency_1000_p99",
    "recovery_ready_s",
    "recovery_first_write_s",
    "recovery_all_logged_s",
    "bytes_per_session",
    "tracker_peak_rss",
    "daemon_peak_rss",
}


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    # Imported by name (the repository root is on sys.path) so that the benchmark's
    # spawned child processes can import it too.
    return importlib.import_module("benchmarks.pipeline")


@pytest.mark.timeout(300)
def test_quick_run_logs_every_call_once_and_prints_the_table(
    bench: ModuleType, pg_server: PostgresForTests
) -> None:
    options = bench.Options(
        runs=1, quick=True, burst_events=600, paced_seconds=2.0, recovery_seconds=4.0,
        sessions=2_000,
    )  # fmt: skip
    report = bench.run(options, pg=pg_server)
    [result] = report.runs
    assert set(result.phases) == {"throughput", "latency 100/s", "latency 1000/s", "recovery"}
    for name, (expected, received, repeated) in result.phases.items():
        assert expected > 0, name
        assert received == expected, name
        if name != "recovery":  # after a SIGKILL a resend (answered 409) is allowed
            assert repeated == 0, name
    assert result.unexpected == 0
    missing = {name for name in FIGURES if math.isnan(result.figures.get(name, math.nan))}
    assert not missing
    assert result.figures["sessions_in_flight"] > 0.9 * options.sessions
    console = Console(record=True, width=200)
    console.print(report.table())
    console.print(report.facts())
    text = console.export_text()
    for row in ("(a) raw client", "(b)/(a)", "p50/p95/p99", "RSS per in-flight", "SIGKILL"):
        assert row in text
    assert report.machine_before["python"] in text
    assert set(report.verdicts()) == {"ratio", "latency", "memory", "recovery"}
