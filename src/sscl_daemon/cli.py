"""Command-line entry point: ``sscl-daemon COMMAND [options]``.

Each command lives in its own module under ``sscl_daemon.commands`` and is
imported only when it is chosen, so a command's heavy imports (the
simulator, the embedded PostgreSQL) cost nothing to the others. A command
module provides ``HELP`` (one line), ``configure(parser)`` and
``run(args) -> int`` (the process exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from sscl_daemon import __version__

# Command name -> module under sscl_daemon.commands, in the order --help lists them.
COMMANDS: dict[str, str] = {
    "run": "run",
    "demo": "demo",
    "status": "status",
    "check-config": "check_config",
    "migrate": "migrate",
    "blocklist": "blocklist",
    "replay": "replay",
    "backfill": "backfill",
    "retry-dead": "retry_dead",
    "simulate": "simulate",
    "oauth": "oauth",
}


class CommandModule(Protocol):
    HELP: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> CommandModule | None:
    try:
        module = importlib.import_module(f"sscl_daemon.commands.{COMMANDS[name]}")
    except ModuleNotFoundError as exc:
        if exc.name == f"sscl_daemon.commands.{COMMANDS[name]}":
            return None
        raise
    return cast(CommandModule, module)


def _usage() -> str:
    lines = ["usage: sscl-daemon COMMAND [options]", "", "commands:"]
    for name in COMMANDS:
        module = _load(name)
        if module is not None:
            lines.append(f"  {name:<14} {module.HELP}")
    lines.append("")
    lines.append("Run 'sscl-daemon COMMAND --help' for the options of a command.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"sscl-daemon {__version__}")
        return 0
    name = args[0]
    module = _load(name) if name in COMMANDS else None
    if module is None:
        print(f"sscl-daemon: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"sscl-daemon {name}", description=module.HELP)
    module.configure(parser)
    namespace = parser.parse_args(args[1:])
    runner: Callable[[argparse.Namespace], int] = module.run
    return runner(namespace)
