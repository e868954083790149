"""The daemon's store, opened by a command (``status``, ``retry-dead``, ``backfill``, ``migrate``).

Where it sits: between a command's configuration (``config.load_for_command``) and
:meth:`sscl_daemon.store.Store.attach`. A command never creates a database: with the
embedded store it connects as a client to the running daemon's server (its socket in
the state directory) and starts the existing server itself only when the daemon does not
run; a state directory or DSN without the daemon's database is an error that names what
was looked at. Errors are one line on stderr; the exit status follows
:mod:`sscl_daemon.exitcodes` (a missing database or a refused login is for the admin to
fix).
"""

from __future__ import annotations

import sys
from typing import TextIO

from sscl_daemon.config import Settings
from sscl_daemon.exitcodes import EXIT_CONFIG, EXIT_FAILURE
from sscl_daemon.store import Store, StoreError


async def open_store(settings: Settings, *, require_schema: bool = True) -> Store:
    """The daemon's existing store (see :meth:`Store.attach`); close it when done."""
    return await Store.attach(
        settings.store, settings.daemon.state_dir, require_schema=require_schema
    )


def store_failed(command: str, exc: StoreError, err: TextIO | None = None) -> int:
    """Report ``exc`` on ``err`` (stderr) for ``sscl-daemon command``; returns the exit status."""
    print(f"sscl-daemon {command}: {exc}", file=err or sys.stderr)
    return EXIT_CONFIG if exc.permanent else EXIT_FAILURE
