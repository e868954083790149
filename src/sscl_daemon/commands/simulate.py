"""``sscl-daemon simulate``: run the RingCentral simulator standalone until stopped.

Starts `sscl_daemon.simulator.app.Simulator` on the given host/port, prints the
`[ringcentral]` settings that point the daemon at it, and serves (generated traffic at
`--calls-per-second`, plus the `/_sim/` control API) until SIGINT/SIGTERM. With no
`--client-id/--client-secret/--jwt` any credentials are accepted, so any RingCentral client
can log in; given, they are checked. Secrets are never echoed back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.oauth import Credentials
from sscl_daemon.simulator.profiles import PlatformProfile

HELP = "run the built-in RingCentral simulator (for trying the daemon without an account)"


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port to listen on (default: any free port)"
    )
    parser.add_argument(
        "--calls-per-second",
        type=_non_negative,
        default=0.2,
        help="average rate of generated calls (0: only calls placed through /_sim/calls)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the organisation and its calls"
    )
    parser.add_argument("--users", type=int, default=20, help="users in the simulated organisation")
    parser.add_argument(
        "--profile",
        choices=("lenient", "strict"),
        default="lenient",
        help="doubtful protocol behaviours: what the SDKs rely on, or the docs to the letter",
    )
    parser.add_argument(
        "--call-log-delay",
        type=_non_negative,
        default=20.0,
        help="seconds before a finished call shows in the call log (the platform: 15-30)",
    )
    parser.add_argument("--client-id", help="accept only this client id (default: any)")
    parser.add_argument(
        "--client-secret",
        default=os.environ.get("SSCL_SIM_CLIENT_SECRET"),
        help="accept only this client secret (default: $SSCL_SIM_CLIENT_SECRET, else any)",
    )
    parser.add_argument(
        "--jwt",
        default=os.environ.get("SSCL_SIM_JWT"),
        help="accept only this JWT assertion (default: $SSCL_SIM_JWT, else any)",
    )


def settings_text(sim: Simulator, credentials: Credentials) -> str:
    """The config-file lines that point the daemon at this simulator."""
    client_id = credentials.client_id or "simulator-client"
    if credentials.client_secret is None:
        secret_line = 'client_secret = "any-value-works"'
    else:
        secret_line = 'client_secret = "env:SSCL_RC_CLIENT_SECRET"  # the --client-secret you gave'
    if credentials.jwt is None:
        jwt_line = 'jwt = "any-value-works"'
    else:
        jwt_line = 'jwt = "env:SSCL_RC_JWT"  # the --jwt you gave'
    return "\n".join(
        [
            "[ringcentral]",
            f'server = "{sim.base_url}"',
            f'client_id = "{client_id}"',
            secret_line,
            jwt_line,
            f"call_log_delay = {sim.config.profile.call_log_delay_s + 10:g}",
        ]
    )


async def serve(args: argparse.Namespace) -> int:
    credentials = Credentials(args.client_id, args.client_secret, args.jwt)
    base = PlatformProfile.strict() if args.profile == "strict" else PlatformProfile.lenient()
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        users=args.users,
        calls_per_second=args.calls_per_second,
        profile=base.with_changes(call_log_delay_s=args.call_log_delay),
        credentials=credentials,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        sim = await Simulator(config).start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        print(
            f"RingCentral simulator on {sim.base_url} (account {sim.org.account_id}, "
            f"{args.users} users, {args.calls_per_second:g} calls/s, {args.profile} profile)"
        )
        print("Put these settings in the daemon's configuration file:\n")
        print(settings_text(sim, credentials))
        print(f"\nFaults and ground truth: {sim.base_url}/_sim/status (Ctrl-C stops)", flush=True)
        await stop.wait()
    finally:
        await sim.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.users < 1:
        print(f"--users {args.users}: the organisation needs at least 1 user", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(args))
    return 0
