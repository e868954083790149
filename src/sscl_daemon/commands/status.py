"""``sscl-daemon status --config FILE``: what the daemon's store says, from Postgres alone.

Shows the daemon instances sharing the database (live ones with the accounts
each holds and the fair share; recently gone ones), which instance holds which
account's lease (active/standby and fleets), the checkpoint and its age, the WebSocket recovery token's expiry, the
in-flight sessions of the last snapshot, the outbox per writer (pending, in
flight, sent, skipped by the contact policy, dead, oldest pending age) and the dead letters by kind. Works
whether or not the daemon runs: with the embedded store it attaches to the
running daemon's server, or starts the server itself when the daemon is
stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

from sscl_daemon.config import ConfigError, Settings, StoreSettings, load_config
from sscl_daemon.store import InstanceInfo, LeaseInfo, Store, StoreError, StoreStatus

HELP = "show who holds each account, checkpoints, in-flight calls, outbox and dead letters"


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        required=True,
        metavar="FILE",
        help="the daemon's TOML configuration file (for the store settings)",
    )


def load(args: argparse.Namespace) -> Settings | None:
    try:
        return load_config(args.config, require_credentials=False)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


async def open_store(settings: Settings) -> Store:
    """The daemon's store; with the embedded server, the running daemon's one if it runs."""
    try:
        return await Store.open(settings.store, settings.daemon.state_dir)
    except StoreError as exc:
        if not settings.store.embedded or "in use by another process" not in str(exc):
            raise
    from sscl_daemon.store.embedded import EmbeddedServer
    from sscl_daemon.store.store import EMBEDDED_DATABASE

    server = EmbeddedServer(settings.daemon.state_dir / "postgres")
    attach = StoreSettings(dsn=server.dsn(EMBEDDED_DATABASE), pool_min_size=1, pool_max_size=2)
    return await Store.open(attach, settings.daemon.state_dir, apply_migrations=False)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


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


def render_instances(instances: list[InstanceInfo], ttl: float) -> list[str]:
    """The daemon instances: live ones with what they hold, then the recently gone ones."""
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
    for i in instances:
        if not i.live:
            lines.append(
                f"  {i.instance_id:<{width}}  gone (last heartbeat {_age(i.heartbeat_age)} ago; "
                f"host {i.host}, pid {i.pid})"
            )
    return [*lines, ""]


def render_retention(status: StoreStatus, store: StoreSettings) -> str:
    """The sent rows kept as dedupe records (sent and skipped), and how long they are kept."""
    kept = sum(w.sent + w.skipped for w in status.writers)
    if store.sent_retention_days <= 0:
        return f"sent rows kept: {kept} (forever: store.sent_retention_days = 0)"
    return (
        f"sent rows kept: {kept} (store.sent_retention_days = {store.sent_retention_days}: "
        f"older ones are deleted every {_age(store.prune_interval)})"
    )


def render(
    status: StoreStatus,
    in_flight: dict[str, int | None],
    leases: list[str] | None = None,
    retention: StoreSettings | None = None,
) -> str:
    lines = [f"schema version {status.schema_version}", "", *(leases or [])]
    if not status.accounts:
        lines.append("no checkpoint yet (the daemon has not committed anything)")
    for account in status.accounts:
        sessions = in_flight.get(account.account)
        lines += [
            f"account {account.account}",
            f"  checkpoint:           {_time(account.last_event_time)} "
            f"(advanced {_age(account.checkpoint_age)} ago)",
            f"  recovery token until: {_time(account.recovery_token_expires_at)}",
            f"  snapshot taken:       {_time(account.snapshot_taken_at)}; "
            f"in-flight sessions: {'-' if sessions is None else sessions}",
        ]
    # "skipped": settled on purpose by a contact policy ("skip"); neither sent nor dead.
    head = f"{'pending':>8} {'in flight':>9} {'sent':>8} {'skipped':>7} {'dead':>6}"
    lines += ["", f"{'writer':<16} {head}  oldest"]
    for w in status.writers:
        lines.append(
            f"{w.writer:<16} {w.pending:>8} {w.in_flight:>9} {w.sent:>8} {w.skipped:>7} "
            f"{w.dead:>6}  {_age(w.oldest_pending_age)}"
        )
    if not status.writers:
        lines.append("(no call logs in the outbox yet)")
    if retention is not None:
        lines.append(render_retention(status, retention))
    dead = ", ".join(f"{kind}: {n}" for kind, n in sorted(status.dead_letters.items()))
    lines += ["", f"dead letters: {dead or 'none'}"]
    if any(w.dead for w in status.writers):
        lines.append("retry dead call logs with: sscl-daemon retry-dead --config FILE")
    return "\n".join(lines)


async def _status(settings: Settings) -> str:
    from sscl_daemon.daemon.pipeline import snapshot_session_count

    store = await open_store(settings)
    ttl = settings.daemon.lease_ttl
    try:
        try:
            instances = render_instances(await store.instances(ttl), ttl)
        except StoreError as exc:  # a database not yet migrated to the instances table
            instances = [f"instances: unknown ({exc})", ""]
        holders = await store.lease_holders()
        status = await store.status()
        in_flight: dict[str, int | None] = {}
        for account in status.accounts:
            data = await store.load_snapshot(account.account)
            in_flight[account.account] = snapshot_session_count(data)
    finally:
        await store.close()
    configured = [account.name for account in settings.account_list()]
    leases = [*instances, *render_leases(configured, holders)]
    return render(status, in_flight, leases, settings.store)


def run(args: argparse.Namespace) -> int:
    settings = load(args)
    if settings is None:
        return 2
    try:
        print(asyncio.run(_status(settings)))
    except StoreError as exc:
        print(f"sscl-daemon status: {exc}", file=sys.stderr)
        return 1
    return 0
