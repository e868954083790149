"""What a SIGHUP may change: the pure comparison of the running and the new settings.

Live: the log level and, account by account, the blocklist, the scope, the
call policy (``[calls]``) and each writer's tuning (concurrency, rate limit,
batch size, attempts, retry delays, timeout). Everything else (state
directory, admin endpoint, store, RingCentral credentials, the set of
accounts, the set of writers and their destinations) only takes effect after
a restart: the plan keeps the running value and names the key so the log can
say so. Keys are named as the file writes them: ``accounts.NAME.`` first for
an ``[accounts.NAME]`` table, bare for the one account of a file without such
tables (:data:`DEFAULT_ACCOUNT`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sscl_daemon.config import (
    DEFAULT_ACCOUNT,
    AccountSettings,
    DaemonSettings,
    Settings,
    WriterSettings,
)

_WRITER_LIVE = (
    "concurrency",
    "rate_limit",
    "batch_size",
    "max_attempts",
    "retry_initial",
    "retry_max",
    "timeout",
)
_DAEMON_LIVE = ("log_level",)


@dataclass(frozen=True)
class ReloadPlan:
    """The settings to run with after a reload, and what changed."""

    effective: Settings
    applied: tuple[str, ...]
    needs_restart: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def _differences(section: str, old: object, new: object) -> list[str]:
    if not dataclasses.is_dataclass(old) or not dataclasses.is_dataclass(new):
        return [section] if old != new else []
    return [
        f"{section}.{f.name}"
        for f in dataclasses.fields(old)
        if getattr(old, f.name) != getattr(new, f.name)
    ]


def _daemon(old: DaemonSettings, new: DaemonSettings) -> tuple[DaemonSettings, list[str]]:
    changes = {name: getattr(new, name) for name in _DAEMON_LIVE}
    return dataclasses.replace(old, **changes), _differences("daemon", old, new)


def _writers(
    old: tuple[WriterSettings, ...], new: tuple[WriterSettings, ...]
) -> tuple[tuple[WriterSettings, ...], list[str], list[str]]:
    applied: list[str] = []
    restart: list[str] = []
    by_name = {w.name: w for w in new}
    for name in sorted(by_name.keys() - {w.name for w in old}):
        restart.append(f"writers.{name} (added)")
    effective: list[WriterSettings] = []
    for current in old:
        replacement = by_name.get(current.name)
        if replacement is None:
            restart.append(f"writers.{current.name} (removed)")
            effective.append(current)
            continue
        tuning = {name: getattr(replacement, name) for name in _WRITER_LIVE}
        for key in _differences(f"writers.{current.name}", current, replacement):
            (applied if key.rsplit(".", 1)[1] in _WRITER_LIVE else restart).append(key)
        effective.append(dataclasses.replace(current, **tuning))
    return tuple(effective), applied, restart


def _account(
    old: AccountSettings, new: AccountSettings
) -> tuple[AccountSettings, list[str], list[str]]:
    """One account's live parts of ``new`` merged into ``old``, and what changed."""
    applied = _differences("calls", old.calls, new.calls)
    applied.extend(
        name for name in ("blocklist", "scope") if getattr(old, name) != getattr(new, name)
    )
    restart = _differences("ringcentral", old.ringcentral, new.ringcentral)
    writers, writer_applied, writer_restart = _writers(old.writers, new.writers)
    applied.extend(writer_applied)
    restart.extend(writer_restart)
    effective = dataclasses.replace(
        old, calls=new.calls, blocklist=new.blocklist, scope=new.scope, writers=writers
    )
    return effective, applied, restart


def _prefix(name: str) -> str:
    return "" if name == DEFAULT_ACCOUNT else f"accounts.{name}."


def plan_reload(old: Settings, new: Settings) -> ReloadPlan:
    """Merge the live parts of ``new`` into ``old``; list what changed and what needs a restart.

    Accounts added or removed take effect after a restart, like writers added or removed.
    """
    applied: list[str] = []
    restart: list[str] = []
    daemon, daemon_changes = _daemon(old.daemon, new.daemon)
    for key in daemon_changes:
        (applied if key.rsplit(".", 1)[1] in _DAEMON_LIVE else restart).append(key)
    for section in ("admin", "store"):
        restart.extend(_differences(section, getattr(old, section), getattr(new, section)))
    fresh = {a.name: a for a in new.accounts}
    accounts: list[AccountSettings] = []
    for account in old.accounts:
        update = fresh.pop(account.name, None)
        if update is None:
            restart.append(f"accounts.{account.name} (removed)")
            accounts.append(account)
            continue
        effective, account_applied, account_restart = _account(account, update)
        prefix = _prefix(account.name)
        applied.extend(prefix + key for key in account_applied)
        restart.extend(prefix + key for key in account_restart)
        accounts.append(effective)
    restart.extend(f"accounts.{name} (added)" for name in fresh)
    effective_settings = dataclasses.replace(old, daemon=daemon, accounts=tuple(accounts))
    return ReloadPlan(effective_settings, tuple(applied), tuple(restart))
