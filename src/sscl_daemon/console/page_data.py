"""What the console's pages show, computed from what they read (pure: data in, template
values out; ``console/web.py`` reads the store and the daemon, then renders these).

The jinja filters for times and ages, the rows of the Calls page (logged calls with links
to their CRM records, beside the calls the policy skipped), the bars of the Pictures page,
the blocklist tester's verdict and the ``/dead/retry`` form read into a request.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sscl_daemon.calls.policy import Policy
from sscl_daemon.config import AccountSettings, SalesforceOptions, Settings
from sscl_daemon.configured_policy import answer, policy_options
from sscl_daemon.console import charts
from sscl_daemon.console.memory import Skip
from sscl_daemon.since import parse_since
from sscl_daemon.store import views

RecordLink = Callable[[str], str | None]
RETRY_SCOPES = ("one", "writer", "since", "all")


# ---- filters and figures -------------------------------------------------------------


def counter_total(counter: Any) -> float:
    """The sum of a Prometheus counter's ``_total`` samples (over all labels)."""
    return float(
        sum(
            sample.value
            for family in counter.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )


def age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def since_now(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return f"{age((datetime.now(UTC) - moment).total_seconds())} ago"


# ---- the blocklist tester ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TesterAnswer:
    """The tester's verdict: the lines ``sscl-daemon blocklist check`` prints, and its status."""

    status: int  # 0 logged, 1 skipped, 2 not a number we can read
    lines: tuple[str, ...]


def blocklist_answer(account: AccountSettings, number: str, extension: str | None) -> TesterAnswer:
    """``sscl-daemon blocklist check`` for one account of the running configuration."""
    policy = Policy(policy_options(account))
    status, lines = answer(policy, number.strip(), extension, account.calls.default_region)
    return TesterAnswer(status, tuple(lines))


# ---- the Calls page ------------------------------------------------------------------


def skip_matches(skip: Skip, search: str | None, result: str | None, extension: str | None) -> bool:
    """Whether a skipped call answers the Calls page's filters (as the store's query does)."""
    call = skip.call
    if result and call.result != result:
        return False
    if extension and call.extension_number != extension:
        return False
    if not search:
        return True
    text = search.strip()
    digits = views.number_digits(text)
    return (
        call.telephony_session_id == text
        or text in (call.extension_number, call.internal_number)
        or bool(digits and call.external_number and digits in call.external_number)
    )


def _no_link(record_id: str) -> str | None:
    return None


def _salesforce_link(instance_url: str) -> RecordLink:
    base = instance_url.rstrip("/")

    def link(record_id: str) -> str | None:
        return f"{base}/{quote(record_id, safe='')}" if record_id.isalnum() else None

    return link


def record_links(settings: Settings) -> dict[tuple[str, str], RecordLink]:
    """(account, writer) -> the CRM page of a record id, for the writers whose record
    address is known from their settings alone: Salesforce (``INSTANCE/ID`` opens any
    record). HubSpot's needs the portal id and Pipedrive has no page per call log."""
    links: dict[tuple[str, str], RecordLink] = {}
    for account in settings.accounts:
        for writer in account.writers:
            if isinstance(writer.options, SalesforceOptions):
                links[(account.name, writer.name)] = _salesforce_link(writer.options.instance_url)
    return links


def call_rows(
    logged: Sequence[views.CallLogs],
    skipped: Sequence[Skip],
    links: Mapping[tuple[str, str], RecordLink],
    shown: int,
) -> list[dict[str, Any]]:
    """The Calls page's rows, newest first: logged calls and skipped ones, ``shown`` at most."""
    rows: list[dict[str, Any]] = [
        {
            "call": c.call,
            "account": c.account,
            "logs": c.logs,
            "links": {
                log.writer: link
                for log in c.logs
                if log.crm_record_id
                and (link := links.get((c.account, log.writer), _no_link)(log.crm_record_id))
            },
            "skip": None,
        }
        for c in logged
    ]
    rows += [
        {"call": s.call, "account": s.call.account_id, "logs": (), "links": {}, "skip": s.decision}
        for s in skipped[:shown]
    ]
    rows.sort(key=lambda row: row["call"].end_time, reverse=True)
    return rows[:shown]


# ---- the Pictures page ---------------------------------------------------------------


def latency_labels(bounds: tuple[float, ...]) -> list[str]:
    def s(value: float) -> str:
        return f"{value:g} s"

    labels = [f"< {s(bounds[0])}"]
    labels += [f"{s(lo)}–{s(hi)}" for lo, hi in itertools.pairwise(bounds)]
    labels.append(f"≥ {s(bounds[-1])}")
    return labels


def hourly_bars(
    hourly: Sequence[views.HourCount], start: datetime, results: Sequence[str]
) -> list[charts.Bar]:
    """One bar per hour of the 24 from ``start``, a part per call result."""
    hours = [start + timedelta(hours=i) for i in range(24)]
    by_hour: dict[datetime, dict[str, int]] = {h: {} for h in hours}
    for count in hourly:
        by_hour.setdefault(count.hour, {})[count.result] = count.calls
    return [
        charts.Bar(h.strftime("%H:00"), tuple((r, by_hour[h].get(r, 0)) for r in results))
        for h in hours
    ]


def latency_rows(latency: views.LatencyBuckets) -> list[tuple[str, int]]:
    """(bucket label, call logs) of the call end -> CRM latency, every bucket shown."""
    labels = latency_labels(latency.bounds)
    return list(zip(labels, latency.counts or [0] * len(labels), strict=True))


# ---- the retry form ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryRequest:
    """A ``/dead/retry`` form read: which dead call logs to send again."""

    scope: str  # one of RETRY_SCOPES
    writer: str | None
    since_text: str
    since: datetime | None
    item_id: int | None

    @property
    def what(self) -> str:
        """The request in words, for the confirmation page and the log."""
        return {
            "one": f"call log #{self.item_id}",
            "writer": f"every dead call log of writer {self.writer}",
            "since": f"every dead call log parked since {when(self.since)}",
            "all": "every dead call log",
        }[self.scope]


def read_retry(form: Mapping[str, object]) -> RetryRequest | str:
    """The form's retry request, or what is wrong with it (said to the user)."""
    scope = str(form.get("scope", ""))
    writer = str(form.get("writer", "")).strip() or None
    since_text = str(form.get("since", "")).strip()
    item_text = str(form.get("id", "")).strip()
    item_id = int(item_text) if item_text.isdigit() else None
    since: datetime | None = None
    if scope not in RETRY_SCOPES:
        return "Unknown retry."
    if scope == "one" and item_id is None:
        return "Choose the call log to send again."
    if scope == "writer" and writer is None:
        return "Choose a writer."
    if scope == "since":
        try:
            since = parse_since(since_text) if since_text else None
        except argparse.ArgumentTypeError as exc:
            return str(exc)
        if since is None:
            return "Give a time (2h, 30m, 7d or an ISO time such as 2026-01-31T08:00)."
    return RetryRequest(scope, writer, since_text, since, item_id)
