"""Loading the configuration file: TOML decoding, section parsing, error collection.

Where it sits: the commands call :func:`load_config` (or :func:`parse_config` for an
already decoded document); it walks the document section by section with a
:class:`~.table.Table`, hands writer tables to :mod:`.writers`, and either returns
:class:`~.schema.Settings` or raises :class:`~.schema.ConfigError` listing every problem
with its key path. Unknown keys are errors: a typo must not silently fall back to a
default. Defaults come from :mod:`.schema` only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sscl_daemon.config.schema import (
    DEFAULT_ACCOUNT,
    MIN_SENT_RETENTION_DAYS,
    AccountSettings,
    AdminSettings,
    CallSettings,
    ConfigError,
    ConfigIssue,
    DaemonSettings,
    RingCentralSettings,
    Secret,
    Settings,
    StoreSettings,
    WriterSettings,
    default_of,
)
from sscl_daemon.config.table import Table
from sscl_daemon.config.writers import parse_writer

if TYPE_CHECKING:
    from sscl_daemon.calls.blocklist import Blocklist, Scope


def _daemon(t: Table) -> DaemonSettings:
    d = DaemonSettings
    state_default = os.environ.get("STATE_DIRECTORY", str(d.state_dir)).split(":")[0]
    instance_default: str = default_of(d, "instance_name")
    settings = DaemonSettings(
        state_dir=Path(t.string("state_dir", state_default)),
        instance_name=t.string("instance_name", instance_default) or instance_default,
        log_level=t.choice("log_level", d.log_level),
        log_format=t.choice("log_format", d.log_format),
        shutdown_timeout=t.number("shutdown_timeout", d.shutdown_timeout),
        snapshot_interval=t.number("snapshot_interval", d.snapshot_interval, minimum=0.1),
        lease_ttl=t.number("lease_ttl", d.lease_ttl, minimum=1.0),
        lease_poll=t.number("lease_poll", d.lease_poll, minimum=0.1),
        balance=t.boolean("balance", d.balance),
    )
    t.finish()
    return settings


def _admin(t: Table) -> AdminSettings:
    d = AdminSettings
    settings = AdminSettings(
        enabled=t.boolean("enabled", d.enabled),
        host=t.string("host", d.host),
        port=t.integer("port", d.port, minimum=0, maximum=65535),
        token=t.secret("token"),
    )
    t.finish()
    return settings


def _store(t: Table) -> StoreSettings:
    d = StoreSettings
    dsn = t.string("dsn", d.dsn)
    if dsn != "embedded" and not dsn.startswith(("postgresql://", "postgres://")):
        t.problem(
            "dsn",
            f"{dsn!r} is neither 'embedded' nor a postgresql:// URL (postgresql://user@host/db)",
        )
    settings = StoreSettings(
        dsn=dsn,
        password=t.secret("password"),
        pool_min_size=t.integer("pool_min_size", d.pool_min_size, minimum=1),
        pool_max_size=t.integer("pool_max_size", d.pool_max_size, minimum=1),
        connect_timeout=t.number("connect_timeout", d.connect_timeout, minimum=0.1),
        commit_interval_ms=t.number("commit_interval_ms", d.commit_interval_ms),
        commit_max_batch=t.integer("commit_max_batch", d.commit_max_batch, minimum=1),
        sent_retention_days=t.integer(
            "sent_retention_days", d.sent_retention_days, minimum=0, maximum=36500
        ),
        prune_interval=t.number("prune_interval", d.prune_interval, minimum=0.1),
    )
    if settings.pool_min_size > settings.pool_max_size:
        t.problem("pool_min_size", "must not be larger than pool_max_size")
    if 0 < settings.sent_retention_days < MIN_SENT_RETENTION_DAYS:
        t.problem(
            "sent_retention_days",
            f"{settings.sent_retention_days} days is too short to dedupe calls RingCentral "
            f"may still report again: use at least {MIN_SENT_RETENTION_DAYS}, or 0 to keep "
            "sent rows forever",
        )
    t.finish()
    return settings


def _ringcentral(t: Table, required: bool) -> RingCentralSettings:
    d = RingCentralSettings
    client_id = t.string("client_id", d.client_id)
    if required and not client_id:
        t.problem("client_id", "is required (the client id of your RingCentral app)")
    settings = RingCentralSettings(
        server=t.url("server", d.server),
        client_id=client_id,
        client_secret=t.secret("client_secret", required, resolve=required) or Secret(""),
        jwt=t.secret("jwt", required, resolve=required) or Secret(""),
        request_timeout=t.number("request_timeout", d.request_timeout, minimum=0.1),
        heartbeat_interval=t.number("heartbeat_interval", d.heartbeat_interval, minimum=0.1),
        dead_connection_timeout=t.number(
            "dead_connection_timeout", d.dead_connection_timeout, minimum=0.1
        ),
        reconnect_initial_delay=t.number("reconnect_initial_delay", d.reconnect_initial_delay),
        reconnect_max_delay=t.number("reconnect_max_delay", d.reconnect_max_delay),
        call_log_delay=t.number("call_log_delay", d.call_log_delay),
        directory_refresh=t.number("directory_refresh", d.directory_refresh, minimum=1.0),
        record_notifications=t.string("record_notifications", d.record_notifications),
        record_max_mb=t.integer("record_max_mb", d.record_max_mb, minimum=1),
    )
    t.finish()
    return settings


def _calls(t: Table) -> CallSettings:
    from sscl_daemon.calls.policy import MissedAttribution

    d = CallSettings
    region = t.string("default_region", d.default_region or "").upper() or None
    if region is not None:
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            t.problem("default_region", f"{region!r} is not a known region code (e.g. 'US', 'GB')")
            region = None
    attribution = t.choice("missed_attribution", default_of(d, "missed_attribution"))
    owner = t.string("missed_owner_extension", d.missed_owner_extension or "") or None
    if attribution is MissedAttribution.OWNER and owner is None:
        t.problem("missed_owner_extension", "is required when missed_attribution = 'owner'")
    settings = CallSettings(
        default_region=region,
        completion_grace=t.number("completion_grace", d.completion_grace),
        session_timeout=t.number("session_timeout", d.session_timeout, minimum=1.0),
        log_internal=t.boolean("log_internal", d.log_internal),
        log_abandoned=t.boolean("log_abandoned", d.log_abandoned),
        missed_attribution=attribution,
        missed_owner_extension=owner,
    )
    t.finish()
    return settings


def _blocklist(t: Table, region: str | None) -> Blocklist:
    from sscl_daemon.calls.blocklist import BlocklistError, parse_blocklist

    entries = t.string_list("entries")
    good: list[str] = []
    for index, entry in enumerate(entries):
        try:
            parse_blocklist([entry], region)
        except BlocklistError as exc:
            t.problem(f"entries[{index}]", f"{entry!r}: {exc.reason}")
        else:
            good.append(entry)
    others = t.boolean("log_other_parties", parse_blocklist([]).log_other_parties)
    t.finish()
    return parse_blocklist(good, region, log_other_parties=others)


def _scope(t: Table) -> Scope:
    from sscl_daemon.calls.blocklist import Scope, ScopeMode

    default: Scope = default_of(AccountSettings, "scope")
    mode = t.choice("mode", default.mode)
    extensions = frozenset(t.string_list("extensions"))
    departments = frozenset(t.string_list("departments"))
    for ext in sorted(extensions):
        if not ext.isdigit():
            t.problem("extensions", f"{ext!r} is not an extension number (digits only)")
    if mode is not ScopeMode.ALL and not (extensions or departments):
        t.problem(
            "mode", f"mode {mode.value!r} needs at least one entry in extensions or departments"
        )
    t.finish()
    return Scope(mode, extensions, departments)


_ACCOUNT_SECTIONS = ("ringcentral", "calls", "blocklist", "scope", "writers")


def _account(name: str, t: Table, require_credentials: bool) -> AccountSettings:
    ringcentral = _ringcentral(t.table("ringcentral"), require_credentials)
    calls = _calls(t.table("calls"))
    blocklist = _blocklist(t.table("blocklist"), calls.default_region)
    scope = _scope(t.table("scope"))
    writers_table = t.table("writers")
    writers: list[WriterSettings] = []
    for writer_name, _ in writers_table.items():
        writer = parse_writer(writer_name, writers_table.table(writer_name))
        if writer is not None:
            writers.append(writer)
    return AccountSettings(name, ringcentral, calls, blocklist, scope, tuple(writers))


def _accounts(t: Table, require_credentials: bool) -> list[AccountSettings]:
    accounts: list[AccountSettings] = []
    for name, _ in t.items():
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            t.problem(name, "account names may use letters, digits, '-' and '_' only")
        table = t.table(name)
        accounts.append(_account(name, table, require_credentials))
        table.finish()
    return accounts


def parse_config(
    data: Mapping[str, object], source: str = "<config>", require_credentials: bool = True
) -> Settings:
    """Validate a decoded TOML document; raise :class:`ConfigError` listing every problem."""
    issues: list[ConfigIssue] = []
    root = Table(data, "", issues)
    daemon = _daemon(root.table("daemon"))
    admin = _admin(root.table("admin"))
    store = _store(root.table("store"))
    accounts: list[AccountSettings] = []
    single = AccountSettings()
    if root.has("accounts"):
        accounts = _accounts(root.table("accounts"), require_credentials)
        if not accounts:
            root.problem("accounts", "lists no account: add an [accounts.NAME] table")
        for section in _ACCOUNT_SECTIONS:
            if root.has(section):
                root.problem(
                    section,
                    "cannot be used together with [accounts.NAME] tables: "
                    f"move it into each account as [accounts.NAME.{section}]",
                )
    else:
        single = _account(DEFAULT_ACCOUNT, root, require_credentials)
    root.finish()
    if issues:
        raise ConfigError(source, issues)
    return Settings(
        daemon=daemon,
        admin=admin,
        store=store,
        ringcentral=single.ringcentral,
        calls=single.calls,
        blocklist=single.blocklist,
        scope=single.scope,
        writers=single.writers,
        accounts=tuple(accounts),
        source=Path(source) if source != "<config>" else None,
    )


def load_config(path: str | Path, require_credentials: bool = True) -> Settings:
    """Read and validate a TOML file; raise :class:`ConfigError` on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            str(path), [ConfigIssue("", f"cannot read the file: {exc.strerror}")]
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), [ConfigIssue("", "the file is not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [ConfigIssue("", f"not valid TOML: {exc}")]) from None
    return parse_config(data, str(path), require_credentials)
