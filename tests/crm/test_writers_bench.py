"""The writers benchmark runs end to end at a small size and logs every call exactly once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "writers.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("writers_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up by name while the file executes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_small_run_logs_each_call_once_and_batches_stay_under_target(
    bench: ModuleType,
) -> None:
    sc = bench.scenario(calls=120, contacts=15, users=4, seed=3)
    assert len({c.key for c in sc.calls}) == 120
    hubspot = await bench.run_hubspot(sc, 100, 100, "batched")
    salesforce = await bench.run_salesforce(sc, 60, 60, "batched")
    single = await bench.run_salesforce(sc, 1, 20, "single")
    for run in (hubspot, salesforce, single):
        assert run.logged == run.stored == 120
    assert hubspot.steady <= bench.TARGET
    assert salesforce.steady <= bench.TARGET
    assert single.per_call > 2.0  # one duplicate check + one create per call, plus lookups


def test_scenario_is_seeded(bench: ModuleType) -> None:
    first = bench.scenario(calls=30, contacts=5, users=2, seed=9)
    again = bench.scenario(calls=30, contacts=5, users=2, seed=9)
    assert first == again
    assert len(set(first.contacts)) == 5


@pytest.mark.parametrize("kind", ["webhook", "pipedrive", "zoho", "dynamics", "clio", "bullhorn"])
async def test_every_stand_in_writer_logs_each_call_once(bench: ModuleType, kind: str) -> None:
    sc = bench.scenario(calls=120, contacts=15, users=4, seed=3)
    run = await bench.run_standin(kind, sc, 100, 100, "batched")
    assert run.logged == run.stored == 120
    if run.batching:
        assert run.steady <= bench.TARGET
