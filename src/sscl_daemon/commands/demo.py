"""``sscl-daemon demo``: see the daemon log calls, with no account, config or internet."""

from __future__ import annotations

import argparse
import asyncio

HELP = "run the simulator, an embedded PostgreSQL and the daemon, and watch calls being logged"


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number")
    return number


def configure(parser: argparse.ArgumentParser) -> None:
    from sscl_daemon.demo import DemoOptions

    defaults = DemoOptions()
    parser.add_argument(
        "--duration", type=_positive, metavar="S", help="stop after S seconds (default: Ctrl-C)"
    )
    parser.add_argument(
        "--calls-per-second",
        type=_positive,
        default=defaults.calls_per_second,
        metavar="R",
        help="how many calls the simulated organisation places per second "
        f"(default {defaults.calls_per_second:g})",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the simulated traffic"
    )
    from sscl_daemon.simulator.crm.standins import KINDS

    parser.add_argument(
        "--crm",
        choices=KINDS,
        default=defaults.crm,
        help=f"which CRM's stand-in receives the call logs (default {defaults.crm})",
    )


def run(args: argparse.Namespace) -> int:
    from sscl_daemon.demo import DemoOptions, run_demo

    options = DemoOptions(args.duration, args.calls_per_second, args.seed, args.crm)
    report = asyncio.run(run_demo(options))
    return report.exit_code
