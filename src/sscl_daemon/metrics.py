"""Prometheus metrics of the whole daemon, served by the admin endpoint's ``/metrics``.

Every part records what it does here (the pipeline counts events and calls,
the dispatcher counts writes and CRM latency, the RingCentral client counts
reconnects, recoveries and gaps); nothing else creates metric objects. The
objects live in one private :data:`REGISTRY` rather than prometheus-client's
global one, so importing the package never clashes with an embedding
application's metrics. Outbox depth and age are read from Postgres by a
periodic task and published through :class:`OutboxGauges`, because a
collector must not do I/O while the scrape waits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# CRM requests: tens of milliseconds to the writer timeout (30 s by default).
_CRM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Call end to CRM request: the target is well under a second; retries stretch the tail.
_END_TO_CRM_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)


EVENTS_RECEIVED = Counter(
    "sscl_events_received",
    "Telephony-session notifications received, by the party status they report "
    "('malformed' for notifications that could not be decoded).",
    ["status"],
    registry=REGISTRY,
)
CALLS_COMPLETED = Counter(
    "sscl_calls_completed",
    "Call logs committed to the outbox, by result.",
    ["result"],
    registry=REGISTRY,
)
CALLS_BY_SOURCE = Counter(
    "sscl_calls_by_source",
    "Call logs committed to the outbox, by source (live, call_log, live+call_log, backfill).",
    ["source"],
    registry=REGISTRY,
)
SESSIONS_AWAITING_CALL_LOG = Gauge(
    "sscl_sessions_awaiting_call_log",
    "Sessions that may have lost events, waiting for their call-log record.",
    registry=REGISTRY,
)
SESSIONS_GIVEN_UP = Counter(
    "sscl_sessions_given_up",
    "Sessions whose call-log record never came: logged from what was seen live.",
    registry=REGISTRY,
)
CALLS_SKIPPED = Counter(
    "sscl_calls_skipped",
    "Completed calls not logged, by reason (blocklist, scope, internal, ...).",
    ["reason"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "sscl_dead_letters",
    "Inputs parked in the dead-letter table, by kind.",
    ["kind"],
    registry=REGISTRY,
)
COMMIT_BATCH = Histogram(
    "sscl_commit_batch_calls",
    "Calls per group commit (one transaction with the checkpoint).",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
    registry=REGISTRY,
)
COMMIT_FAILURES = Counter(
    "sscl_commit_failures",
    "Group commits that failed and were kept to be retried (the store failing).",
    registry=REGISTRY,
)
COMMITS_FAILING = Gauge(
    "sscl_commits_failing",
    "Accounts whose last group commit failed (nothing committed since): 0 when healthy.",
    registry=REGISTRY,
)
COMMIT_REFUSED = Counter(
    "sscl_commit_refused",
    "Items the store refused alone, dead-lettered so the rest of their batch committed.",
    ["kind"],
    registry=REGISTRY,
)
IN_FLIGHT_SESSIONS = Gauge(
    "sscl_in_flight_sessions",
    "Telephony sessions the tracker is following.",
    registry=REGISTRY,
)
WRITES = Counter(
    "sscl_writes",
    "Outbox write attempts, by writer and outcome.",
    ["writer", "outcome"],
    registry=REGISTRY,
)
ENRICHMENTS = Counter(
    "sscl_enrichments",
    "Updates of logged calls (recording, voicemail), by writer, kind and outcome.",
    ["writer", "kind", "outcome"],
    registry=REGISTRY,
)
ENRICHMENTS_PENDING = Gauge(
    "sscl_enrichments_pending",
    "Updates of logged calls still waiting for their recording or voicemail, by writer.",
    ["writer"],
    registry=REGISTRY,
)
CRM_LATENCY = Histogram(
    "sscl_crm_request_seconds",
    "Duration of one writer call (one CRM request or batch), by writer.",
    ["writer"],
    buckets=_CRM_BUCKETS,
    registry=REGISTRY,
)
END_TO_CRM_LATENCY = Histogram(
    "sscl_call_end_to_crm_seconds",
    "Time from a call's end to the CRM request that logged it, by writer.",
    ["writer"],
    buckets=_END_TO_CRM_BUCKETS,
    registry=REGISTRY,
)
WS_RECONNECTS = Counter(
    "sscl_ws_reconnects",
    "WebSocket connections to RingCentral opened again after a loss.",
    registry=REGISTRY,
)
WS_RECOVERIES = Counter(
    "sscl_ws_recoveries",
    "WebSocket session recoveries with the wsc token, by result (successful, failed).",
    ["result"],
    registry=REGISTRY,
)
WS_GAPS = Counter(
    "sscl_ws_gaps",
    "Periods in which notifications may have been missed (closed from the call log).",
    registry=REGISTRY,
)
RECONCILE_RUNS = Counter(
    "sscl_reconcile_runs",
    "Call-log reconciliations, by trigger (startup, gap) and result (ok, error).",
    ["trigger", "result"],
    registry=REGISTRY,
)
SUBSCRIBED = Gauge(
    "sscl_subscribed",
    "1 while the account's telephony-session subscription is live.",
    registry=REGISTRY,
)
TASK_RESTARTS = Counter(
    "sscl_task_restarts",
    "Supervised tasks restarted after a crash, by task.",
    ["task"],
    registry=REGISTRY,
)
OUTBOX_PRUNED = Counter(
    "sscl_outbox_pruned",
    "Sent outbox rows deleted by the retention (older than store.sent_retention_days).",
    registry=REGISTRY,
)
CONFIG_RELOADS = Counter(
    "sscl_config_reloads",
    "SIGHUP reloads, by result (applied, rejected).",
    ["result"],
    registry=REGISTRY,
)


@dataclass(frozen=True)
class OutboxFigures:
    """One writer's ledger as last read from Postgres."""

    pending: int
    oldest_pending_seconds: float
    dead: int


class OutboxGauges(Collector):
    """Publishes the latest outbox figures per writer; fed by the daemon's poller."""

    def __init__(self) -> None:
        self._figures: dict[str, OutboxFigures] = {}

    def update(self, figures: Mapping[str, OutboxFigures]) -> None:
        self._figures = dict(figures)

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "sscl_outbox_depth", "Call logs waiting to be written, by writer.", labels=["writer"]
        )
        age = GaugeMetricFamily(
            "sscl_outbox_oldest_pending_seconds",
            "Age of the oldest call log waiting to be written, by writer.",
            labels=["writer"],
        )
        dead = GaugeMetricFamily(
            "sscl_outbox_dead", "Call logs parked as dead letters, by writer.", labels=["writer"]
        )
        for writer, figures in sorted(self._figures.items()):
            depth.add_metric([writer], figures.pending)
            age.add_metric([writer], figures.oldest_pending_seconds)
            dead.add_metric([writer], figures.dead)
        return [depth, age, dead]

    def describe(self) -> Iterable[Metric]:
        return self.collect()


OUTBOX = OutboxGauges()
REGISTRY.register(OUTBOX)


def render() -> bytes:
    """The registry in Prometheus' text exposition format."""
    return generate_latest(REGISTRY)


CounterChild = Counter
_CHILDREN: dict[tuple[int, tuple[tuple[str, str], ...]], Counter] = {}


def counter_child(counter: Counter, **labels: str) -> CounterChild:
    """``counter.labels(**labels)``, cached: the lookup costs more than the increment.

    For the per-event and per-call hot paths; the label values must come from a bounded
    set (enum values), as every label value of these counters does anyway.
    """
    key = (id(counter), tuple(labels.items()))
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = counter.labels(**labels)
    return child
