"""The writers benchmark's lifecycle table (issue 15): every update a call expects is made,
and a call without media costs its share of the creates only (<= 1.5 requests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sscl_daemon.config import RecordingsMode

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "writers.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("writers_bench_lifecycle", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", [RecordingsMode.LINK, RecordingsMode.UPLOAD])
@pytest.mark.parametrize("kind", ["hubspot", "salesforce"])
async def test_lifecycle_updates_each_media_call_once_and_plain_calls_stay_cheap(
    bench: ModuleType, kind: str, mode: RecordingsMode
) -> None:
    sc = bench.scenario(calls=120, contacts=15, users=4, seed=3)
    run = await bench.run_lifecycle(kind, sc, mode)
    assert run.logged == run.calls == 120
    assert run.updates == run.with_media > 0
    assert run.without_media <= bench.MEDIA_TARGET
    # An update costs a read and a write, plus one upload per file.
    assert run.update_requests >= 2 * run.updates


@pytest.mark.parametrize("kind", ["zoho", "dynamics", "clio", "bullhorn"])
async def test_lifecycle_of_the_plugin_writers_updates_each_media_call_once(
    bench: ModuleType, kind: str
) -> None:
    sc = bench.scenario(calls=60, contacts=10, users=3, seed=3)
    run = await bench.run_lifecycle(kind, sc, RecordingsMode.UPLOAD)
    assert run.logged == run.calls == 60
    assert run.updates == run.with_media > 0
    # An update is a read and a write, plus the upload's requests per file (Clio's three).
    assert 2 * run.updates <= run.update_requests <= 5 * run.updates
