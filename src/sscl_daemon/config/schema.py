"""Configuration schema: the typed, frozen settings and the only place a default is written.

Where it sits: :mod:`.loader` reads the TOML file into these dataclasses (the parser
takes every default from here, see :func:`default_of`); every other part of the daemon
receives them ready-made and never parses the file. ``config.example.toml`` shows the
same defaults and ``tests/foundation/test_config_schema.py`` fails when they disagree.
"""

from __future__ import annotations

import dataclasses
import enum
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sscl_daemon.errors import SsclError

if TYPE_CHECKING:
    from sscl_daemon.calls.blocklist import Blocklist, Scope
    from sscl_daemon.calls.policy import MissedAttribution

# The file every command reads unless given --config FILE or this environment variable.
DEFAULT_CONFIG_PATH = Path("/etc/sscl-daemon/config.toml")
CONFIG_ENV = "SSCL_DAEMON_CONFIG"
# Where the state lives when neither daemon.state_dir nor $STATE_DIRECTORY says otherwise:
# the directory the unit's StateDirectory=sscl-daemon creates, so an admin shell finds it.
DEFAULT_STATE_DIR = "/var/lib/sscl-daemon"
# The files `credential:NAME` reads outside systemd; the unit's LoadCredential= lines load
# the same files into $CREDENTIALS_DIRECTORY.
DEFAULT_CREDENTIALS_DIR = "/etc/sscl-daemon/credentials"
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
    # The one whose record changed last / was created first (the CRM's own timestamps).
    MOST_RECENTLY_UPDATED = "most-recently-updated"
    OLDEST = "oldest"
    UNASSOCIATED = "unassociated"
    SKIP = "skip"


class PipedriveLog(enum.StrEnum):
    """What the Pipedrive writer writes for a call."""

    CALL_LOG = "call-log"
    ACTIVITY = "activity"


class DealsPolicy(enum.StrEnum):
    """Which deal / opportunity a CRM writer attaches a call log to (crm/deals.py)."""

    NONE = "none"
    IF_EXACTLY_ONE_OPEN = "if-exactly-one-open"
    MOST_RECENT_OPEN = "most-recent-open"


class RecordingsMode(enum.StrEnum):
    """What a CRM writer does with a call's recording and voicemail audio."""

    # Fetch the audio from RingCentral and attach it to the CRM record (playable there).
    UPLOAD = "upload"
    # A link a RingCentral user opens in a browser (RingCentral's media reader).
    LINK = "link"
    # Neither; a voicemail's transcription is still added.
    OFF = "off"


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
    # $STATE_DIRECTORY (systemd's StateDirectory=) takes precedence over this default.
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    # $CREDENTIALS_DIRECTORY (systemd's LoadCredential=) takes precedence over this default.
    credentials_dir: Path = Path(DEFAULT_CREDENTIALS_DIR)
    instance_name: str = field(default_factory=socket.gethostname)
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.AUTO
    shutdown_timeout: float = 10.0
    # A SIGKILL loses the calls begun since the last snapshot whose events before the
    # gateway's 100-notification replay are gone with the process: kept short (issue 19).
    snapshot_interval: float = 2.0
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
    # Seconds the store may stay unusable (daemon/storewatch.py: reconnecting, restarting
    # the embedded server) before the daemon exits with status 1 for the unit to restart it.
    outage_limit: float = 120.0

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
    # Evidence for `replay` (ringcentral/recorder.py): a file under state_dir; "" is off.
    record_notifications: str = ""
    record_max_mb: int = 100


@dataclass(frozen=True)
class CallSettings:
    default_region: str | None = None
    completion_grace: float = 2.0
    session_timeout: float = 14400.0
    log_internal: bool = False
    log_abandoned: bool = True
    missed_attribution: MissedAttribution = field(default_factory=lambda: _calls_api().RANG)
    missed_owner_extension: str | None = None
    # IANA zone for times in call logs and CRM date fields (None: UTC), or "user" (each
    # call in its handling user's RingCentral zone, else UTC); writers may override.
    timezone: str | None = None


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
    # IANA zone of this writer's times (note, CRM date fields); None: calls.timezone, or UTC.
    timezone: str | None = None
    # Show each call in its handling user's RingCentral time zone when the directory knows
    # it (``timezone = "user"``); ``timezone`` is then the zone of the other calls.
    user_timezone: bool = False
    # Recordings and voicemail audio: attached, linked or left out (crm/enrich.py).
    recordings: RecordingsMode = RecordingsMode.LINK
    # The largest audio file uploaded (larger ones are linked instead).
    media_max_mb: int = 100
    # Seconds from a create to the first look for its recording / voicemail at RingCentral.
    media_first_look: float = 20.0
    # Subject and note from templates with {variables} (crm/templates.py); None: the default.
    subject_template: str | None = None
    note_template: str | None = None
    # The contact's open deal the log is attached to, if any.
    deals: DealsPolicy = DealsPolicy.NONE


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
    # What a call becomes: a call log (phone integration) or an activity marked done, which
    # is what Pipedrive users see in their timeline (and what App Connect writes).
    log_as: PipedriveLog = PipedriveLog.CALL_LOG
    # The activity type key of such activities (Pipedrive's default call type is "call").
    activity_type: str = "call"


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
    # The writer plug-in's type name (a WriterType value for the original writers).
    type: str
    # What the plug-in's option parser returned (WriterOptions for the original writers).
    options: object
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


def secrets_in(options: object) -> list[Secret]:
    """Every Secret in a writer's options (dataclasses, nested), whichever plug-in made them."""
    if isinstance(options, Secret):
        return [options]
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        return [
            s for f in dataclasses.fields(options) for s in secrets_in(getattr(options, f.name))
        ]
    return []


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
            found.extend(secrets_in(writer.options))
        return found


@dataclass(frozen=True)
class Settings:
    """The whole file. Both of its shapes (one account's sections at the top level, or
    ``[accounts.NAME]`` tables) are read into ``accounts``: the first as the one account
    named :data:`DEFAULT_ACCOUNT`, so nothing downstream knows which shape was written."""

    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    accounts: tuple[AccountSettings, ...] = field(default_factory=lambda: (AccountSettings(),))
    source: Path | None = None
    # Problems that do not stop the daemon (a secret readable by every user), for the admin.
    warnings: tuple[str, ...] = ()

    def account(self, name: str | None = None) -> AccountSettings:
        """The account a one-account command works on: ``name`` (``--account``), or the
        file's only one; :class:`ConfigError` naming the choices otherwise."""
        if name is None and len(self.accounts) == 1:
            return self.accounts[0]
        for account in self.accounts:
            if account.name == name:
                return account
        names = ", ".join(a.name for a in self.accounts)
        problem = (
            f"no account {name!r} (the file has {names})"
            if name is not None
            else f"the file has several accounts ({names}): name one with --account"
        )
        source = str(self.source) if self.source else "<config>"
        raise ConfigError(source, [ConfigIssue("accounts", problem)])

    def secrets(self) -> list[str]:
        """Every configured secret value, for the log redactor."""
        found: list[Secret | None] = [self.admin.token, self.store.password]
        for account in self.accounts:
            found.extend(account.secrets())
        return [s.reveal() for s in found if s is not None and s.reveal()]


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(SsclError):
    """The configuration is invalid; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        super().__init__(f"invalid configuration {source}:\n{lines}")


def default_of(settings_type: type[Any], name: str) -> Any:
    """The default of field ``name`` of a settings dataclass (calling its factory if any).

    The loader asks this for defaults built by a factory; plain defaults it reads as class
    attributes (``DaemonSettings.lease_ttl``), so no default is typed twice.
    """
    for item in dataclasses.fields(settings_type):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
            break
    raise KeyError(f"{settings_type.__name__}.{name} has no default")
