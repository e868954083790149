"""The daemon's store, opened by a command (``status``, ``retry-dead``, ``backfill``, ``migrate``).

Where it sits: between a command's configuration (:func:`~sscl_daemon.commands.command_settings`)
and :meth:`sscl_daemon.store.Store.attach`. A command never creates a database: with the
embedded store it connects as a client to the running daemon's server (its socket in
the state directory) and starts the existing server itself only when the daemon does not
run; a state directory or DSN without the daemon's database is an error that names what
was looked at. Errors are one line on stderr; the exit status follows
:mod:`sscl_daemon.exitcodes` (a missing database or a refused login is for the admin to
fix).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TextIO

from sscl_daemon.commands import command_settings
from sscl_daemon.config import Need, Settings
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


def store_command(
    command: str, args: argparse.Namespace, work: Callable[[Settings], Coroutine[Any, Any, int]]
) -> int:
    """Run ``work`` (which opens the store) on the command's configuration; its exit status.

    A configuration that cannot be used or a store that fails is one line on stderr and
    the exit status that says who may fix it.
    """
    settings = command_settings(args, Need.STORE)
    if settings is None:
        return EXIT_CONFIG
    try:
        return asyncio.run(work(settings))
    except StoreError as exc:
        return store_failed(command, exc)
