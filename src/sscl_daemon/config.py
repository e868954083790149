"""Configuration: one TOML file loaded into typed, frozen settings.

Every part of the daemon reads its settings from here; nothing else parses
the file. Validation collects every problem at once and names the key path,
the bad value and what is allowed, so ``sscl-daemon check-config`` can print
them all. Unknown keys are errors: a typo must not silently fall back to a
default. Secrets may be written inline, as ``env:NAME`` or as
``credential:NAME`` (a file in ``$CREDENTIALS_DIRECTORY``, systemd's
``LoadCredential=``); they are held in :class:`Secret`, whose repr never
shows the value.
"""

from __future__ import annotations

import enum
import os
import socket
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from sscl_daemon.calls.blocklist import Blocklist, Scope
    from sscl_daemon.calls.policy import MissedAttribution

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")

DEFAULT_STATE_DIR = "./state"
# The shortest store.sent_retention_days (other than 0, forever): the call-log windows the
# daemon reads again are at most a day long; a week leaves room for late re-runs.
MIN_SENT_RETENTION_DAYS = 7


class Secret:
    """A configured secret. ``str()``/``repr()`` never reveal it; use :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class LogFormat(enum.StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class WriterType(enum.StrEnum):
    HUBSPOT = "hubspot"
    PIPEDRIVE = "pipedrive"
    SALESFORCE = "salesforce"
    WEBHOOK = "webhook"
    JSONL = "jsonl"


class NoContactPolicy(enum.StrEnum):
    """What a CRM writer does when no contact matches the external number."""

    UNASSOCIATED = "unassociated"
    CREATE = "create"
    SKIP = "skip"


class SeveralContactsPolicy(enum.StrEnum):
    """What a CRM writer does when several contacts match the external number."""

    ALL = "all"
    FIRST = "first"
    UNASSOCIATED = "unassociated"
    SKIP = "skip"


def _calls_api() -> type[MissedAttribution]:
    # The call core is imported lazily so that loading settings types stays cheap.
    from sscl_daemon.calls.policy import MissedAttribution

    return MissedAttribution


def _empty_blocklist() -> Blocklist:
    from sscl_daemon.calls.blocklist import parse_blocklist

    return parse_blocklist([])


def _all_scope() -> Scope:
    from sscl_daemon.calls.blocklist import Scope, ScopeMode

    return Scope(ScopeMode.ALL, frozenset(), frozenset())


@dataclass(frozen=True)
class DaemonSettings:
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    instance_name: str = field(default_factory=socket.gethostname)
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.AUTO
    shutdown_timeout: float = 10.0
    snapshot_interval: float = 10.0
    # An account's lease lasts lease_ttl seconds without renewal (renewed every third of it);
    # a standby asks for free accounts every lease_poll seconds.
    lease_ttl: float = 6.0
    lease_poll: float = 1.0
    # Fair sharing: instances sharing a store split the accounts evenly (an instance above
    # ceil(accounts / live instances) hands accounts over); false: first come, first served.
    balance: bool = True


@dataclass(frozen=True)
class AdminSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9474
    token: Secret | None = None


@dataclass(frozen=True)
class StoreSettings:
    # "embedded" starts a private PostgreSQL under state_dir; anything else is a DSN.
    dsn: str = "embedded"
    password: Secret | None = None
    pool_min_size: int = 1
    pool_max_size: int = 10
    connect_timeout: float = 10.0
    commit_interval_ms: float = 5.0
    commit_max_batch: int = 500
    # Sent outbox rows (the dedupe record of logged calls) older than this many days are
    # deleted, every prune_interval seconds (daemon/retention.py); 0 keeps them forever.
    sent_retention_days: int = 30
    prune_interval: float = 3600.0

    @property
    def embedded(self) -> bool:
        return self.dsn == "embedded"


@dataclass(frozen=True)
class RingCentralSettings:
    server: str = "https://platform.ringcentral.com"
    client_id: str = ""
    client_secret: Secret = field(default_factory=lambda: Secret(""))
    jwt: Secret = field(default_factory=lambda: Secret(""))
    request_timeout: float = 30.0
    heartbeat_interval: float = 60.0
    dead_connection_timeout: float = 120.0
    reconnect_initial_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    call_log_delay: float = 30.0
    directory_refresh: float = 3600.0


@dataclass(frozen=True)
class CallSettings:
    default_region: str | None = None
    completion_grace: float = 2.0
    session_timeout: float = 14400.0
    log_internal: bool = False
    log_abandoned: bool = True
    missed_attribution: MissedAttribution = field(default_factory=lambda: _calls_api().RANG)
    missed_owner_extension: str | None = None


@dataclass(frozen=True)
class ContactSettings:
    no_contact: NoContactPolicy = NoContactPolicy.UNASSOCIATED
    several_contacts: SeveralContactsPolicy = SeveralContactsPolicy.ALL
    cache_ttl: float = 300.0
    cache_size: int = 10000
    owner_by_email: bool = True
    # RingCentral extension number -> CRM owner (id or email), checked before email matching.
    owners: Mapping[str, str] = field(default_factory=dict)
    # Look for a log the user's own RingCentral client already made before creating one
    # (one request per write or batch); off, such calls are logged twice.
    detect_client_logs: bool = True


@dataclass(frozen=True)
class OAuthClientSettings:
    client_id: str
    client_secret: Secret
    refresh_token: Secret


@dataclass(frozen=True)
class HubSpotOptions:
    base_url: str = "https://api.hubapi.com"
    access_token: Secret | None = None
    oauth: OAuthClientSettings | None = None
    # The call property (unique values) that holds our idempotency key.
    key_property: str = "sscl_call_key"


@dataclass(frozen=True)
class PipedriveOptions:
    base_url: str = "https://api.pipedrive.com"
    api_token: Secret | None = None
    oauth: OAuthClientSettings | None = None
    token_url: str = "https://oauth.pipedrive.com/oauth/token"


@dataclass(frozen=True)
class SalesforceOptions:
    instance_url: str
    oauth: OAuthClientSettings
    login_url: str = "https://login.salesforce.com"
    api_version: str = "v61.0"
    external_id_field: str = "SSCL_Call_Key__c"


@dataclass(frozen=True)
class WebhookOptions:
    url: str
    secret: Secret


@dataclass(frozen=True)
class JsonlOptions:
    path: Path


WriterOptions = (
    HubSpotOptions | PipedriveOptions | SalesforceOptions | WebhookOptions | JsonlOptions
)


@dataclass(frozen=True)
class WriterSettings:
    name: str
    type: WriterType
    options: WriterOptions
    enabled: bool = True
    concurrency: int = 4
    rate_limit: float = 10.0  # requests per second
    batch_size: int = 1
    max_attempts: int = 50
    retry_initial: float = 1.0
    retry_max: float = 900.0
    timeout: float = 30.0
    contacts: ContactSettings = field(default_factory=ContactSettings)


DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True)
class AccountSettings:
    """One RingCentral account (organisation) and where its calls are logged.

    ``name`` is the key of the account's checkpoint, outbox rows and lease in
    the store: ``"default"`` for a file with top-level ``[ringcentral]``, or
    the NAME of an ``[accounts.NAME]`` table.
    """

    name: str = DEFAULT_ACCOUNT
    ringcentral: RingCentralSettings = field(default_factory=RingCentralSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    blocklist: Blocklist = field(default_factory=lambda: _empty_blocklist())
    scope: Scope = field(default_factory=lambda: _all_scope())
    writers: tuple[WriterSettings, ...] = ()

    def secrets(self) -> list[Secret | None]:
        found: list[Secret | None] = [self.ringcentral.client_secret, self.ringcentral.jwt]
        for writer in self.writers:
            opts = writer.options
            if isinstance(opts, HubSpotOptions):
                found.append(opts.access_token)
            elif isinstance(opts, PipedriveOptions):
                found.append(opts.api_token)
            elif isinstance(opts, WebhookOptions):
                found.append(opts.secret)
            oauth = getattr(opts, "oauth", None)
            if isinstance(oauth, OAuthClientSettings):
                found.extend((oauth.client_secret, oauth.refresh_token))
        return found


@dataclass(frozen=True)
class Settings:
    """The whole file. The account fields (``ringcentral`` ... ``writers``) describe the
    single account of a one-organisation file; a file with ``[accounts.NAME]`` tables
    lists its accounts in ``accounts`` instead. :meth:`account_list` gives both forms."""

    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    ringcentral: RingCentralSettings = field(default_factory=RingCentralSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    blocklist: Blocklist = field(default_factory=lambda: _empty_blocklist())
    scope: Scope = field(default_factory=lambda: _all_scope())
    writers: tuple[WriterSettings, ...] = ()
    accounts: tuple[AccountSettings, ...] = ()
    source: Path | None = None

    def account_list(self) -> tuple[AccountSettings, ...]:
        if self.accounts:
            return self.accounts
        single = AccountSettings(
            DEFAULT_ACCOUNT, self.ringcentral, self.calls, self.blocklist, self.scope, self.writers
        )
        return (single,)

    def secrets(self) -> list[str]:
        """Every configured secret value, for the log redactor."""
        found: list[Secret | None] = [self.admin.token, self.store.password]
        for account in self.account_list():
            found.extend(account.secrets())
        return [s.reveal() for s in found if s is not None and s.reveal()]


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """The configuration is invalid; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"invalid configuration {source}:\n{lines}")


class _Table:
    """Reads typed values from one TOML table, recording problems instead of raising."""

    def __init__(self, data: Mapping[str, object], path: str, issues: list[ConfigIssue]) -> None:
        self._data = data
        self._path = path
        self._issues = issues
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def problem(self, name: str, message: str) -> None:
        self._issues.append(ConfigIssue(self.key(name), message))

    def _get(self, name: str) -> object | None:
        self._seen.add(name)
        return self._data.get(name)

    def has(self, name: str) -> bool:
        return name in self._data

    def _typed(self, name: str, default: T, kind: type, label: str) -> T:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            self.problem(name, f"expected {label}, got {value!r}")
            return default
        return value  # type: ignore[return-value]

    def string(self, name: str, default: str) -> str:
        return self._typed(name, default, str, "a string")

    def boolean(self, name: str, default: bool) -> bool:
        return self._typed(name, default, bool, "true or false")

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._typed(name, default, int, "an integer")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and <= {maximum}" if maximum is not None else ""
            self.problem(name, f"{value!r} is out of range: must be >= {minimum}{upper}")
            return default
        return value

    def number(self, name: str, default: float, minimum: float = 0.0) -> float:
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(name, f"expected a number of seconds, got {value!r}")
            return default
        if value < minimum:
            self.problem(name, f"{value!r} is out of range: must be >= {minimum}")
            return default
        return float(value)

    def choice(self, name: str, default: E) -> E:
        enum_type = type(default)
        value = self._get(name)
        if value is None:
            return default
        try:
            return enum_type(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in enum_type)
            self.problem(name, f"{value!r} is not allowed; use one of {allowed}")
            return default

    def string_list(self, name: str) -> list[str]:
        """A TOML list of strings, or one comma-separated string."""
        value = self._get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
            return [str(v).strip() for v in value if str(v).strip()]
        self.problem(name, f"expected a list of strings or a comma-separated string, got {value!r}")
        return []

    def url(self, name: str, default: str) -> str:
        value = self.string(name, default).rstrip("/")
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.problem(name, f"{value!r} is not an http(s) URL")
        return value

    def secret(self, name: str, required: bool = False, resolve: bool = True) -> Secret | None:
        """A secret value; with ``resolve=False`` an unset ``env:``/``credential:`` is no error."""
        value = self._get(name)
        if value is None or value == "":
            if required:
                self.problem(
                    name,
                    "is required: give the value inline, as 'env:NAME' or as 'credential:NAME'",
                )
            return None
        if not isinstance(value, str):
            self.problem(name, "expected a string (inline, 'env:NAME' or 'credential:NAME')")
            return None
        issues: list[ConfigIssue] = []
        resolved = _resolve_secret(value, self.key(name), issues)
        if resolve:
            self._issues.extend(issues)
        return None if resolved is None else Secret(resolved)

    def table(self, name: str) -> _Table:
        value = self._get(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(name, f"expected a table ([{self.key(name)}]), got {value!r}")
            value = {}
        return _Table(value, self.key(name), self._issues)

    def consume(self, name: str) -> str:
        """Mark a free-form key (a name chosen by the user) as known."""
        self._seen.add(name)
        return name

    def items(self) -> list[tuple[str, object]]:
        return list(self._data.items())

    def finish(self) -> None:
        for name in self._data:
            if name not in self._seen:
                self.problem(name, "unknown key (check the spelling against config.example.toml)")


def _resolve_secret(value: str, path: str, issues: list[ConfigIssue]) -> str | None:
    if value.startswith("env:"):
        name = value[4:]
        resolved = os.environ.get(name)
        if not resolved:
            issues.append(ConfigIssue(path, f"environment variable {name} is not set or empty"))
        return resolved or None
    if value.startswith("credential:"):
        name = value[len("credential:") :]
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            issues.append(
                ConfigIssue(
                    path,
                    f"credential {name!r} requested but $CREDENTIALS_DIRECTORY is not set "
                    "(use LoadCredential= in the systemd unit)",
                )
            )
            return None
        try:
            return (Path(directory) / name).read_text().strip()
        except OSError as exc:
            issues.append(
                ConfigIssue(
                    path, f"cannot read credential {name!r} from {directory}: {exc.strerror}"
                )
            )
            return None
    return value


def _daemon(t: _Table) -> DaemonSettings:
    state_default = os.environ.get("STATE_DIRECTORY", DEFAULT_STATE_DIR).split(":")[0]
    settings = DaemonSettings(
        state_dir=Path(t.string("state_dir", state_default)),
        instance_name=t.string("instance_name", socket.gethostname()) or socket.gethostname(),
        log_level=t.choice("log_level", LogLevel.INFO),
        log_format=t.choice("log_format", LogFormat.AUTO),
        shutdown_timeout=t.number("shutdown_timeout", 10.0),
        snapshot_interval=t.number("snapshot_interval", 10.0, minimum=0.1),
        lease_ttl=t.number("lease_ttl", 6.0, minimum=1.0),
        lease_poll=t.number("lease_poll", 1.0, minimum=0.1),
        balance=t.boolean("balance", True),
    )
    t.finish()
    return settings


def _admin(t: _Table) -> AdminSettings:
    settings = AdminSettings(
        enabled=t.boolean("enabled", True),
        host=t.string("host", "127.0.0.1"),
        port=t.integer("port", 9474, minimum=0, maximum=65535),
        token=t.secret("token"),
    )
    t.finish()
    return settings


def _store(t: _Table) -> StoreSettings:
    dsn = t.string("dsn", "embedded")
    if dsn != "embedded" and not dsn.startswith(("postgresql://", "postgres://")):
        t.problem(
            "dsn",
            f"{dsn!r} is neither 'embedded' nor a postgresql:// URL (postgresql://user@host/db)",
        )
    settings = StoreSettings(
        dsn=dsn,
        password=t.secret("password"),
        pool_min_size=t.integer("pool_min_size", 1, minimum=1),
        pool_max_size=t.integer("pool_max_size", 10, minimum=1),
        connect_timeout=t.number("connect_timeout", 10.0, minimum=0.1),
        commit_interval_ms=t.number("commit_interval_ms", 5.0),
        commit_max_batch=t.integer("commit_max_batch", 500, minimum=1),
        sent_retention_days=t.integer("sent_retention_days", 30, minimum=0, maximum=36500),
        prune_interval=t.number("prune_interval", 3600.0, minimum=0.1),
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


def _ringcentral(t: _Table, required: bool) -> RingCentralSettings:
    client_id = t.string("client_id", "")
    if required and not client_id:
        t.problem("client_id", "is required (the client id of your RingCentral app)")
    settings = RingCentralSettings(
        server=t.url("server", RingCentralSettings.server),
        client_id=client_id,
        client_secret=t.secret("client_secret", required, resolve=required) or Secret(""),
        jwt=t.secret("jwt", required, resolve=required) or Secret(""),
        request_timeout=t.number("request_timeout", 30.0, minimum=0.1),
        heartbeat_interval=t.number("heartbeat_interval", 60.0, minimum=0.1),
        dead_connection_timeout=t.number("dead_connection_timeout", 120.0, minimum=0.1),
        reconnect_initial_delay=t.number("reconnect_initial_delay", 1.0),
        reconnect_max_delay=t.number("reconnect_max_delay", 60.0),
        call_log_delay=t.number("call_log_delay", 30.0),
        directory_refresh=t.number("directory_refresh", 3600.0, minimum=1.0),
    )
    t.finish()
    return settings


def _calls(t: _Table) -> CallSettings:
    region = t.string("default_region", "").upper() or None
    if region is not None:
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            t.problem("default_region", f"{region!r} is not a known region code (e.g. 'US', 'GB')")
            region = None
    attribution = t.choice("missed_attribution", _calls_api().RANG)
    owner = t.string("missed_owner_extension", "") or None
    if attribution is _calls_api().OWNER and owner is None:
        t.problem("missed_owner_extension", "is required when missed_attribution = 'owner'")
    settings = CallSettings(
        default_region=region,
        completion_grace=t.number("completion_grace", 2.0),
        session_timeout=t.number("session_timeout", 14400.0, minimum=1.0),
        log_internal=t.boolean("log_internal", False),
        log_abandoned=t.boolean("log_abandoned", True),
        missed_attribution=attribution,
        missed_owner_extension=owner,
    )
    t.finish()
    return settings


def _blocklist(t: _Table, region: str | None) -> Blocklist:
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
    t.finish()
    return parse_blocklist(good, region)


def _scope(t: _Table) -> Scope:
    from sscl_daemon.calls.blocklist import Scope, ScopeMode

    mode = t.choice("mode", ScopeMode.ALL)
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


def _contacts(t: _Table) -> ContactSettings:
    owners_table = t.table("owners")
    owners: dict[str, str] = {}
    for ext, owner in owners_table.items():
        if not isinstance(owner, str | int) or isinstance(owner, bool):
            owners_table.problem(ext, f"expected a CRM owner id or email, got {owner!r}")
            continue
        owners[owners_table.consume(ext)] = str(owner)
    return ContactSettings(
        no_contact=t.choice("no_contact", NoContactPolicy.UNASSOCIATED),
        several_contacts=t.choice("several_contacts", SeveralContactsPolicy.ALL),
        cache_ttl=t.number("contact_cache_ttl", 300.0),
        cache_size=t.integer("contact_cache_size", 10000, minimum=1),
        owner_by_email=t.boolean("owner_by_email", True),
        owners=owners,
        detect_client_logs=t.boolean("detect_client_logs", True),
    )


def _oauth(t: _Table, what: str, required: bool) -> OAuthClientSettings | None:
    if not required and not any(t.has(k) for k in ("client_id", "client_secret", "refresh_token")):
        return None
    client_id = t.string("client_id", "")
    if not client_id:
        t.problem("client_id", f"is required for {what}")
    secret = t.secret("client_secret", required=True)
    refresh = t.secret("refresh_token", required=True)
    if secret is None or refresh is None or not client_id:
        return None
    return OAuthClientSettings(client_id, secret, refresh)


def _writer_options(t: _Table, kind: WriterType) -> WriterOptions | None:
    if kind is WriterType.HUBSPOT:
        token = t.secret("access_token")
        oauth = _oauth(t, "HubSpot OAuth", required=False)
        if token is None and oauth is None:
            t.problem(
                "access_token",
                "give a private-app access_token or client_id/client_secret/refresh_token",
            )
        key = t.string("key_property", HubSpotOptions.key_property)
        name_ok = key.isascii() and key[:1].isalpha() and key.replace("_", "").isalnum()
        if not name_ok or key != key.lower():
            t.problem(
                "key_property",
                f"{key!r} is not a HubSpot internal property name: use lowercase letters,"
                " digits and _, starting with a letter (the default is 'sscl_call_key')",
            )
        return HubSpotOptions(t.url("base_url", HubSpotOptions.base_url), token, oauth, key)
    if kind is WriterType.PIPEDRIVE:
        api_token = t.secret("api_token")
        oauth = _oauth(t, "Pipedrive OAuth", required=False)
        if api_token is None and oauth is None:
            t.problem("api_token", "give an api_token or client_id/client_secret/refresh_token")
        return PipedriveOptions(
            t.url("base_url", PipedriveOptions.base_url),
            api_token,
            oauth,
            t.url("token_url", PipedriveOptions.token_url),
        )
    if kind is WriterType.SALESFORCE:
        instance = t.url("instance_url", "")
        if not instance:
            t.problem("instance_url", "is required (https://yourorg.my.salesforce.com)")
        oauth = _oauth(t, "Salesforce", required=True)
        login = t.url("login_url", "https://login.salesforce.com")
        version = t.string("api_version", "v61.0")
        field_name = t.string("external_id_field", "SSCL_Call_Key__c")
        if oauth is None or not instance:
            return None
        return SalesforceOptions(instance, oauth, login, version, field_name)
    if kind is WriterType.WEBHOOK:
        url = t.url("url", "")
        if not url:
            t.problem("url", "is required (the https:// address that receives the call logs)")
        secret = t.secret("secret", required=True)
        if not url or secret is None:
            return None
        return WebhookOptions(url, secret)
    path = t.string("path", "")
    if not path:
        t.problem("path", "is required (the file the call logs are appended to)")
        return None
    return JsonlOptions(Path(path))


def _writer(name: str, t: _Table) -> WriterSettings | None:
    kind_value = t.string("type", "")
    try:
        kind = WriterType(kind_value)
    except ValueError:
        allowed = ", ".join(repr(k.value) for k in WriterType)
        t.problem("type", f"{kind_value!r} is not a writer type; use one of {allowed}")
        return None
    enabled = t.boolean("enabled", True)
    concurrency = t.integer("concurrency", 4, minimum=1)
    rate_limit = t.number("rate_limit", 10.0, minimum=0.01)
    batch_size = t.integer("batch_size", 1, minimum=1, maximum=100)
    max_attempts = t.integer("max_attempts", 50, minimum=1)
    retry_initial = t.number("retry_initial", 1.0)
    retry_max = t.number("retry_max", 900.0)
    timeout = t.number("timeout", 30.0, minimum=0.1)
    crm = kind not in (WriterType.WEBHOOK, WriterType.JSONL)
    contacts = _contacts(t) if crm else ContactSettings()
    options = _writer_options(t, kind)
    t.finish()
    if options is None:
        return None
    return WriterSettings(
        name=name,
        type=kind,
        options=options,
        enabled=enabled,
        concurrency=concurrency,
        rate_limit=rate_limit,
        batch_size=batch_size,
        max_attempts=max_attempts,
        retry_initial=retry_initial,
        retry_max=retry_max,
        timeout=timeout,
        contacts=contacts,
    )


_ACCOUNT_SECTIONS = ("ringcentral", "calls", "blocklist", "scope", "writers")


def _account(name: str, t: _Table, require_credentials: bool) -> AccountSettings:
    ringcentral = _ringcentral(t.table("ringcentral"), require_credentials)
    calls = _calls(t.table("calls"))
    blocklist = _blocklist(t.table("blocklist"), calls.default_region)
    scope = _scope(t.table("scope"))
    writers_table = t.table("writers")
    writers: list[WriterSettings] = []
    for writer_name, _ in writers_table.items():
        writer = _writer(writer_name, writers_table.table(writer_name))
        if writer is not None:
            writers.append(writer)
    return AccountSettings(name, ringcentral, calls, blocklist, scope, tuple(writers))


def _accounts(t: _Table, require_credentials: bool) -> list[AccountSettings]:
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
    root = _Table(data, "", issues)
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
