"""``sscl-daemon status [--config FILE] [--json]``: what the daemon's store says, from Postgres alone.

Shows which database it read (and whose server that is), the daemon instances
sharing it (live ones with the accounts each holds, those whose commits are
failing, and the fair share; recently gone ones), which instance holds which account's lease, the
checkpoint and how long ago it advanced, the WebSocket recovery token's
expiry, the in-flight sessions of the last snapshot, the outbox per writer
(pending, in flight, sent, skipped by the contact policy, dead, oldest
pending age, and the writer's last error), HubSpot writers' key mode (``unique`` or
``search``, as the instance holding the account read it at start), the dead call logs (the outbox's
dead rows, which ``retry-dead`` sends again) and the unprocessable events
(the ``dead_letters`` table) by kind. ``--json`` prints the same as one JSON
object. Moments read as "12 s ago (07:31:02 UTC)".

It never creates a database (:mod:`.attach`): with the embedded store it is
a client of the running daemon's server, or starts the existing server
itself when the daemon is stopped.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sscl_daemon.commands.attach import open_store, store_command
from sscl_daemon.config import (
    Settings,
    StoreSettings,
    add_config_argument,
)
from sscl_daemon.exitcodes import EXIT_OK
from sscl_daemon.store import InstanceInfo, LeaseInfo, StoreError, StoreStatus
from sscl_daemon.store.enrichments import Enrichments

HELP = "show who holds each account, checkpoints, in-flight calls, outbox and dead letters"

RETRY_HINT = "send them again with: sscl-daemon retry-dead [--writer NAME]"


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the text report"
    )


# --- what was read -----------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Everything ``status`` shows, read once."""

    database: str
    origin: str
    status: StoreStatus
    instances: list[InstanceInfo] | None  # None: a database without the instances table
    instance_ttl: float
    leases: list[LeaseInfo]
    configured_accounts: list[str]
    in_flight: dict[str, int | None]
    retention: StoreSettings
    # Writer -> updates of logged calls waiting for their recording / voicemail (issue 15).
    updates_pending: dict[str, int] = field(default_factory=dict)

    @property
    def now(self) -> datetime:
        return self.status.read_at or datetime.now(UTC)


async def collect(settings: Settings) -> Report:
    from sscl_daemon.daemon.pipeline import snapshot_session_count

    store = await open_store(settings)
    ttl = settings.daemon.lease_ttl
    try:
        instances: list[InstanceInfo] | None
        try:
            instances = await store.instances(ttl)
        except StoreError:  # a database not yet migrated to the instances table
            instances = None
        holders = await store.lease_holders()
        status = await store.status()
        in_flight: dict[str, int | None] = {}
        for account in status.accounts:
            data = await store.load_snapshot(account.account)
            in_flight[account.account] = snapshot_session_count(data)
        try:
            updates = await Enrichments(store).pending()
        except StoreError:  # a database not yet migrated to the enrichments table
            updates = {}
    finally:
        await store.close()
    return Report(
        database=store.target,
        origin=store.origin,
        status=status,
        instances=instances,
        instance_ttl=ttl,
        leases=holders,
        configured_accounts=[account.name for account in settings.accounts],
        in_flight=in_flight,
        retention=settings.store,
        updates_pending=updates,
    )


# --- text ----------------------------------------------------------------------------------


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _clock(moment: datetime, now: datetime) -> str:
    """The UTC time of day, with the date when it is not ``now``'s day."""
    moment, now = moment.astimezone(UTC), now.astimezone(UTC)
    if moment.date() == now.date():
        return f"{moment:%H:%M:%S} UTC"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def when(moment: datetime | None, now: datetime) -> str:
    """``12 s ago (07:31:02 UTC)``, ``in 2.9 min (07:34:00 UTC)``, or ``-``."""
    if moment is None:
        return "-"
    delta = (now - moment).total_seconds()
    relative = f"{_age(delta)} ago" if delta >= 0 else f"in {_age(-delta)}"
    return f"{relative} ({_clock(moment, now)})"


def _time(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "-"


def _lease_state(lease: LeaseInfo | None) -> str:
    if lease is None:
        return "never held (no instance has taken it yet)"
    if lease.held:
        return f"held by {lease.holder} since {_time(lease.acquired_at)} (token {lease.token})"
    if lease.connected:
        return f"{lease.holder} is connected but its lease expired {_time(lease.expires_at)}"
    return f"free (last held by {lease.holder} until {_time(lease.expires_at)})"


def render_leases(configured: list[str], leases: list[LeaseInfo]) -> list[str]:
    """One line per account: the configured ones, and any other the database has a lease for."""
    by_account = {lease.account: lease for lease in leases}
    names = [*configured, *sorted(set(by_account) - set(configured))]
    width = max((len(name) for name in names), default=7)
    lines = ["account leases"]
    lines += [f"  {name:<{width}}  {_lease_state(by_account.get(name))}" for name in names]
    return [*lines, ""]


def _accounts(count: int) -> str:
    return f"{count} account{'' if count == 1 else 's'}"


def render_instances(
    instances: list[InstanceInfo], ttl: float, now: datetime | None = None
) -> list[str]:
    """The daemon instances: live ones with what they hold and whose commits fail, then the
    recently gone ones (``now``: the moment the report was read, else now)."""
    now = now or datetime.now(UTC)
    from sscl_daemon.daemon.balance import fair_share

    live = [i for i in instances if i.live]
    configured = {account for i in live for account in i.accounts}
    share = fair_share(len(configured), len(live))
    head = f"instances (live: heartbeat within {ttl:g} s"
    if live:
        head += f"; fair share {share} of {_accounts(len(configured))} over {len(live)})"
    else:
        head += "; none is running)"
    width = max((len(i.instance_id) for i in instances), default=0)
    lines = [head]
    for i in live:
        held = f" ({', '.join(i.held)})" if i.held else ""
        lines.append(
            f"  {i.instance_id:<{width}}  holds {_accounts(len(i.held))}{held}; host {i.host}, "
            f"pid {i.pid}, started {_time(i.started_at)}, heartbeat {_age(i.heartbeat_age)} ago"
        )
        for account, failure in sorted(i.commit_failures.items()):
            lines.append(
                f"    {account}: commits failing since {when(failure.since, now)}: "
                f"{_one_line(failure.error)}"
            )
    for i in instances:
        if not i.live:
            lines.append(
                f"  {i.instance_id:<{width}}  gone (last heartbeat {_age(i.heartbeat_age)} ago; "
                f"host {i.host}, pid {i.pid})"
            )
    return [*lines, ""]


# What HubSpot's key modes mean (crm/hubspot.py KeyMode), as status says it.
KEY_MODES = {
    "unique": "the key property has unique values: HubSpot refuses a second log of a call",
    "search": "the key property is not unique: a retried call is searched by key before creating",
}


def writer_facts(instances: list[InstanceInfo] | None) -> dict[str, dict[str, dict[str, str]]]:
    """Account -> writer -> fact, as the live instances holding the accounts recorded them."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    for i in instances or []:
        for account, writers in i.writer_facts.items() if i.live else ():
            if account in i.held:
                found[account] = {w: dict(f) for w, f in writers.items()}
    return found


def render_writer_facts(facts: Mapping[str, Mapping[str, Mapping[str, str]]]) -> list[str]:
    """One line per writer with a key mode (HubSpot): which one, and what it means."""
    lines = []
    for account, writers in sorted(facts.items()):
        for writer, found in sorted(writers.items()):
            mode = found.get("key_mode")
            if mode is not None:
                meaning = KEY_MODES.get(mode, "unknown")
                lines.append(f"key mode of {writer} ({account}): {mode} ({meaning})")
    return lines


def render_retention(status: StoreStatus, store: StoreSettings) -> str:
    """The sent rows kept as dedupe records (sent and skipped), and how long they are kept."""
    kept = sum(w.sent + w.skipped for w in status.writers)
    if store.sent_retention_days <= 0:
        return f"sent rows kept: {kept} (forever: store.sent_retention_days = 0)"
    return (
        f"sent rows kept: {kept} (store.sent_retention_days = {store.sent_retention_days}: "
        f"older ones are deleted every {_age(store.prune_interval)})"
    )


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render(report: Report) -> str:
    status, now = report.status, report.now
    database = report.database + (f"; {report.origin}" if report.origin else "")
    lines = [f"database: {database}", f"schema version {status.schema_version}", ""]
    if report.instances is None:
        lines += ["instances: unknown (the database predates the instances table)", ""]
    else:
        lines += render_instances(report.instances, report.instance_ttl, now)
    lines += render_leases(report.configured_accounts, report.leases)
    if not status.accounts:
        lines.append("no checkpoint yet (the daemon has not committed anything)")
    for account in status.accounts:
        sessions = report.in_flight.get(account.account)
        advanced = (
            None
            if account.checkpoint_age is None
            else now - timedelta(seconds=account.checkpoint_age)
        )
        lines += [
            f"account {account.account}",
            f"  last event:           {when(account.last_event_time, now)}",
            f"  checkpoint advanced:  {when(advanced, now)}",
            f"  recovery token until: {when(account.recovery_token_expires_at, now)}",
            f"  snapshot taken:       {when(account.snapshot_taken_at, now)}; "
            f"in-flight sessions: {'-' if sessions is None else sessions}",
        ]
    # "skipped": settled on purpose by a contact policy ("skip"); neither sent nor dead.
    head = f"{'pending':>8} {'in flight':>9} {'sent':>8} {'skipped':>7} {'dead':>6}"
    lines += ["", f"{'writer':<16} {head}  oldest pending"]
    for w in status.writers:
        lines.append(
            f"{w.writer:<16} {w.pending:>8} {w.in_flight:>9} {w.sent:>8} {w.skipped:>7} "
            f"{w.dead:>6}  {_age(w.oldest_pending_age)}"
        )
    if not status.writers:
        lines.append("(no call logs in the outbox yet)")
    if report.updates_pending:
        waiting = ", ".join(f"{w}: {n}" for w, n in sorted(report.updates_pending.items()))
        lines.append(f"updates waiting for a recording or voicemail: {waiting}")
    lines += render_writer_facts(writer_facts(report.instances))
    errors = [w for w in status.writers if w.last_error]
    if errors:
        lines += ["", "last error per writer (among pending and dead call logs)"]
        for w in errors:
            assert w.last_error is not None
            lines.append(f"  {w.writer}: {when(w.last_error_at, now)}: {_one_line(w.last_error)}")
    lines += ["", render_retention(status, report.retention), ""]
    dead = {w.writer: w.dead for w in status.writers if w.dead}
    if dead:
        per_writer = ", ".join(f"{name}: {n}" for name, n in sorted(dead.items()))
        lines.append(f"dead call logs: {sum(dead.values())} ({per_writer}); {RETRY_HINT}")
    else:
        lines.append("dead call logs: none")
    events = ", ".join(f"{kind}: {n}" for kind, n in sorted(status.dead_letters.items()))
    lines.append(f"unprocessable events kept as dead letters: {events or 'none'}")
    return "\n".join(lines)


# --- JSON ------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def as_json(report: Report) -> dict[str, object]:
    """The report as plain JSON values (times in ISO 8601 UTC, ages in seconds)."""
    status = report.status

    def lease(info: LeaseInfo) -> Mapping[str, object]:
        return {
            "account": info.account,
            "holder": info.holder,
            "held": info.held,
            "acquired_at": _iso(info.acquired_at),
            "expires_at": _iso(info.expires_at),
            "token": info.token,
        }

    return {
        "database": report.database,
        "origin": report.origin,
        "read_at": _iso(report.now),
        "schema_version": status.schema_version,
        "instances": None
        if report.instances is None
        else [
            {
                "instance": i.instance_id,
                "host": i.host,
                "pid": i.pid,
                "live": i.live,
                "accounts": list(i.accounts),
                "held": list(i.held),
                "started_at": _iso(i.started_at),
                "heartbeat_age_seconds": i.heartbeat_age,
                "commit_failures": {
                    account: {"since": _iso(failure.since), "error": failure.error}
                    for account, failure in i.commit_failures.items()
                },
            }
            for i in report.instances
        ],
        "leases": [lease(info) for info in report.leases],
        "configured_accounts": report.configured_accounts,
        "accounts": [
            {
                "account": a.account,
                "last_event_time": _iso(a.last_event_time),
                "checkpoint_age_seconds": a.checkpoint_age,
                "recovery_token_expires_at": _iso(a.recovery_token_expires_at),
                "snapshot_taken_at": _iso(a.snapshot_taken_at),
                "in_flight_sessions": report.in_flight.get(a.account),
            }
            for a in status.accounts
        ],
        "updates_pending": report.updates_pending,
        "writers": [
            {
                "writer": w.writer,
                "pending": w.pending,
                "in_flight": w.in_flight,
                "sent": w.sent,
                "skipped": w.skipped,
                "dead": w.dead,
                "due": w.due,
                "oldest_pending_age_seconds": w.oldest_pending_age,
                "last_error": w.last_error,
                "last_error_at": _iso(w.last_error_at),
            }
            for w in status.writers
        ],
        # Account -> writer -> what it found out about its CRM: HubSpot's "key_mode".
        "writer_facts": writer_facts(report.instances),
        "dead_call_logs": sum(w.dead for w in status.writers),
        "dead_letters": dict(status.dead_letters),
        "sent_retention_days": report.retention.sent_retention_days,
    }


def run(args: argparse.Namespace) -> int:
    async def show(settings: Settings) -> int:
        report = await collect(settings)
        print(json.dumps(as_json(report), indent=2) if args.json else render(report))
        return EXIT_OK

    return store_command("status", args, show)
