"""Configuration: one TOML file loaded into typed, frozen settings.

Where it sits: every command loads the file through this package before anything
else runs; the rest of the daemon only receives the settings. The package is split
by job: :mod:`.schema` (the dataclasses, the only place a default is written),
:mod:`.loader` (TOML, sections, error collection), :mod:`.table` (typed reading of one
table), :mod:`.secrets` (``env:``/``credential:`` references) and :mod:`.writers`
(``[writers.NAME]`` options per writer type) and :mod:`.locations` (which file a
command reads: ``--config``, ``$SSCL_DAEMON_CONFIG``, ``/etc/sscl-daemon/config.toml``).
The names other modules use are re-exported here, so they import from
``sscl_daemon.config``; they are listed once, in ``__all__`` (the schema's come in by the
star import, as ``asyncio`` gathers its submodules' names).
"""

# ruff: noqa: F403, F405

from sscl_daemon.config.loader import load_config, parse_config
from sscl_daemon.config.locations import add_config_argument, config_path, load_for_command
from sscl_daemon.config.schema import *
from sscl_daemon.config.secrets import Need

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_ACCOUNT",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_STATE_DIR",
    "MIN_SENT_RETENTION_DAYS",
    "AccountSettings",
    "AdminSettings",
    "CallSettings",
    "ConfigError",
    "ConfigIssue",
    "ContactSettings",
    "DaemonSettings",
    "DealsPolicy",
    "HubSpotOptions",
    "JsonlOptions",
    "LogFormat",
    "LogLevel",
    "Need",
    "NoContactPolicy",
    "OAuthClientSettings",
    "PipedriveLog",
    "PipedriveOptions",
    "RecordingsMode",
    "RingCentralSettings",
    "SalesforceOptions",
    "Secret",
    "Settings",
    "SeveralContactsPolicy",
    "StoreSettings",
    "WebhookOptions",
    "WriterOptions",
    "WriterSettings",
    "WriterType",
    "add_config_argument",
    "config_path",
    "load_config",
    "load_for_command",
    "parse_config",
]
