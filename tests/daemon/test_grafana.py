"""The Grafana dashboard only queries metrics the daemon exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sscl_daemon import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "sscl-daemon.json"


def _exported_series() -> set[str]:
    metrics.OUTBOX.update({"w": metrics.OutboxFigures(0, 0.0, 0)})
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            names.add(f"{family.name}_bucket")
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_every_panel_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs
    used = {name for expr in exprs for name in re.findall(r"\bsscl_[a-z_]+", expr)}
    missing = used - _exported_series()
    assert not missing, f"dashboard queries metrics the daemon does not export: {missing}"
    for needed in ("sscl_events_received_total", "sscl_outbox_depth", "sscl_ws_gaps_total"):
        assert needed in used
