"""Loading the configuration file: TOML decoding, section parsing, error collection.

Where it sits: the commands call :func:`load_config` (or :func:`parse_config` for an
already decoded document); it walks the document section by section with a
:class:`~.table.Table`, hands writer tables to :mod:`.writers`, and either returns
:class:`~.schema.Settings` or raises :class:`~.schema.ConfigError` listing every problem
with its key path. Unknown keys are errors: a typo must not silently fall back to a
default. Defaults come from :mod:`.schema` only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sscl_daemon.config.files import exposure_warnings
from sscl_daemon.config.schema import (
    CONFIG_ENV,
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
from sscl_daemon.config.secrets import Need, credential_source
from sscl_daemon.config.table import LoadContext, Table
from sscl_daemon.config.writers import parse_writer, timezone_key

if TYPE_CHECKING:
    from sscl_daemon.calls.blocklist import Blocklist, Scope


# systemd's StateDirectory= sets it (several directories are separated by ':').
STATE_DIRECTORY_ENV = "STATE_DIRECTORY"


def _daemon(t: Table, file_dir: Path) -> DaemonSettings:
    """``[daemon]``; relative directories are taken relative to the file's directory."""
    d = DaemonSettings
    systemd_state = os.environ.get(STATE_DIRECTORY_ENV, "").split(":")[0]
    state_default = systemd_state or str(d.state_dir)
    instance_default: str = default_of(d, "instance_name")
    settings = DaemonSettings(
        state_dir=file_dir / t.string("state_dir", state_default),
        credentials_dir=file_dir / t.string("credentials_dir", str(d.credentials_dir)),
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


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to any interface


def _admin(t: Table) -> AdminSettings:
    d = AdminSettings
    settings = AdminSettings(
        enabled=t.boolean("enabled", d.enabled),
        host=t.string("host", d.host),
        port=t.integer("port", d.port, minimum=0, maximum=65535),
        token=t.secret("token"),
    )
    if settings.enabled and settings.token is None and not _loopback(settings.host):
        t.problem(
            "host",
            f"{settings.host!r} lets other machines reach the admin endpoint, whose /metrics "
            "and status pages tell what the organisation's calls are: set admin.token (e.g. "
            '"credential:admin-token"; /healthz and /readyz stay open for probes), or keep '
            f"host = {d.host!r}",
        )
    t.finish()
    return settings


def _store(t: Table) -> StoreSettings:
    d = StoreSettings
    dsn = t.string("dsn", d.dsn)
    if dsn != "embedded" and not dsn.startswith(("postgresql://", "postgres://")):
        # Not echoed: a malformed DSN may well hold a password.
        t.problem(
            "dsn", "is neither 'embedded' nor a postgresql:// URL (postgresql://user@host/db)"
        )
    elif _dsn_password(dsn):
        t.context.inline_secrets.append(t.key("dsn"))
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
        outage_limit=t.number("outage_limit", d.outage_limit, minimum=1.0),
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


def _dsn_password(dsn: str) -> bool:
    try:
        return bool(urlsplit(dsn).password)
    except ValueError:
        return False


def _ringcentral(t: Table, required: bool) -> RingCentralSettings:
    d = RingCentralSettings
    client_id = t.string("client_id", d.client_id)
    if required and not client_id:
        t.problem("client_id", "is required (the client id of your RingCentral app)")
    settings = RingCentralSettings(
        server=t.url("server", d.server),
        client_id=client_id,
        client_secret=t.secret("client_secret", required=True) or Secret(""),
        jwt=t.secret("jwt", required=True) or Secret(""),
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
        timezone=timezone_key(t, None),
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


def _account(name: str, t: Table, needs: Need) -> AccountSettings:
    rc_needed = Need.RINGCENTRAL in needs
    ringcentral = _ringcentral(t.table("ringcentral", resolve=rc_needed), rc_needed)
    calls = _calls(t.table("calls"))
    blocklist = _blocklist(t.table("blocklist"), calls.default_region)
    scope = _scope(t.table("scope"))
    writers_table = t.table("writers", resolve=Need.WRITERS in needs)
    if Need.WRITERS in needs and not writers_table.items():
        t.problem(
            "writers",
            "no writer is configured, so no call would be logged anywhere: add a "
            '[writers.NAME] table (type = "jsonl", "webhook" or a CRM; see config.example.toml)',
        )
    writers: list[WriterSettings] = []
    for writer_name, _ in writers_table.items():
        writer = parse_writer(writer_name, writers_table.table(writer_name), calls.timezone)
        if writer is not None:
            writers.append(writer)
    return AccountSettings(name, ringcentral, calls, blocklist, scope, tuple(writers))


def _accounts(t: Table, needs: Need) -> list[AccountSettings]:
    accounts: list[AccountSettings] = []
    for name, _ in t.items():
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            t.problem(name, "account names may use letters, digits, '-' and '_' only")
        table = t.table(name)
        accounts.append(_account(name, table, needs))
        table.finish()
    return accounts


def parse_config(
    data: Mapping[str, object], source: str = "<config>", *, needs: Need = Need.ALL
) -> Settings:
    """Validate a decoded TOML document; raise :class:`ConfigError` listing every problem.

    ``needs`` names the parts whose secrets are resolved (:class:`Need`); secrets of the
    other parts are not looked up and a missing one is no problem.
    """
    context = LoadContext()
    root = Table(data, "", context)
    file_dir = Path(source).parent if source != "<config>" else Path.cwd()
    daemon = _daemon(root.table("daemon"), file_dir.absolute())
    context.secrets = credential_source(daemon.credentials_dir)
    context.base_dir = daemon.state_dir
    admin = _admin(root.table("admin", resolve=Need.ADMIN in needs))
    store = _store(root.table("store", resolve=Need.STORE in needs))
    accounts: list[AccountSettings] = []
    if root.has("accounts"):
        accounts = _accounts(root.table("accounts"), needs)
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
        accounts = [_account(DEFAULT_ACCOUNT, root, needs)]
    root.finish()
    if context.issues:
        raise ConfigError(source, context.issues)
    settings = Settings(
        daemon=daemon,
        admin=admin,
        store=store,
        accounts=tuple(accounts),
        source=Path(source) if source != "<config>" else None,
    )
    config_file = settings.source
    warnings = exposure_warnings(config_file, context.inline_secrets, context.credential_files)
    return dataclasses.replace(settings, warnings=tuple(warnings))


def load_config(path: str | Path, *, needs: Need = Need.ALL) -> Settings:
    """Read and validate a TOML file; raise :class:`ConfigError` on any problem.

    ``needs`` as in :func:`parse_config`.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror}"
        if isinstance(exc, PermissionError):
            message += (
                f" (this process runs as uid {os.geteuid()}; the service reads it through its"
                ' group: chown root:sscl-daemon and chmod 0640, README "Install under systemd")'
            )
        elif isinstance(exc, FileNotFoundError):
            message += f" (give --config FILE or set ${CONFIG_ENV} for another file)"
        raise ConfigError(str(path), [ConfigIssue("", message)]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), [ConfigIssue("", "the file is not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [ConfigIssue("", f"not valid TOML: {exc}")]) from None
    return parse_config(data, str(path), needs=needs)
