"""Where the configuration file and the state directory are, for every command.

Where it sits: each command's ``--config`` option (:func:`add_config_argument`) and
:func:`load_for_command` find the file the same way, so the daemon under systemd and an
admin's ``sudo sscl-daemon status`` read the same file and, through it, the same state
directory and database: ``--config FILE``, else ``$SSCL_DAEMON_CONFIG``, else
``/etc/sscl-daemon/config.toml``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sscl_daemon.config.loader import load_config
from sscl_daemon.config.schema import CONFIG_ENV, DEFAULT_CONFIG_PATH, Settings
from sscl_daemon.config.secrets import Need


def config_path(given: str | Path | None) -> Path:
    """The file a command reads: ``given`` (``--config``), ``$SSCL_DAEMON_CONFIG``, the default."""
    if given:
        return Path(given)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` (``-c``), optional: :func:`config_path` finds the file without it."""
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default=None,
        help=f"the TOML configuration file (default: ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})",
    )


def load_for_command(args: argparse.Namespace, needs: Need) -> Settings:
    """Load the file named by ``args.config`` (see :func:`config_path`) for a command.

    ``needs`` names the parts whose secrets the command uses; the others' ``env:`` and
    ``credential:`` references are not looked up, so ``status`` works without the CRM
    tokens. Raises :class:`~.schema.ConfigError` listing every problem.
    """
    return load_config(config_path(getattr(args, "config", None)), needs=needs)
