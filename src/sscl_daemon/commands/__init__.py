"""One module per ``sscl-daemon`` command (see ``sscl_daemon.cli``), and how they load the file.

Only the configuration is imported here: ``cli`` imports a command's own module when it
is chosen, so a command that does not open the store does not import it.
"""

from __future__ import annotations

import argparse
import sys

from sscl_daemon.config import ConfigError, Need, Settings, load_for_command


def command_settings(args: argparse.Namespace, needs: Need) -> Settings | None:
    """The command's configuration; None once its problems are printed on stderr.

    The command then exits with :data:`~sscl_daemon.exitcodes.EXIT_CONFIG`.
    """
    try:
        return load_for_command(args, needs=needs)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
