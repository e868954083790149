"""The zero-setup demo: the simulator, an embedded PostgreSQL and the daemon, in one process.

``sscl-daemon demo`` (``make demo``) starts the RingCentral simulator with a
small organisation placing calls, a stand-in CRM (the signed-webhook
receiver), and the daemon pointed at both with a temporary state directory
(so the embedded PostgreSQL lives there too), writing every call to the CRM
and to a jsonl file. Each call log is printed as it lands in the CRM; Ctrl-C
or ``--duration`` ends it with a summary that compares what the simulator
generated with what the CRM received. Nothing here needs an account, a
config file or the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import Settings, parse_config
from sscl_daemon.metrics import WriteOutcome
from sscl_daemon.sdnotify import Notifier

CRM_WRITER = "crm"
# Simulated calls are this much shorter than real ones, so they end within seconds.
TIME_SCALE = 0.1
CALL_LOG_DELAY = 5.0


@dataclass(frozen=True)
class DemoOptions:
    duration: float | None = None
    calls_per_second: float = 0.5
    seed: int = 1


@dataclass
class DemoReport:
    logged: Counter[str] = field(default_factory=Counter)
    first_logged_after: float | None = None
    simulated: int = 0
    pending: int = 0
    exit_code: int = 0


def _seconds(ms: int) -> str:
    total = (ms + 500) // 1000
    return f"{total // 60}:{total % 60:02d}"


def call_line(call: CompletedCall) -> str:
    """One readable line per logged call."""
    who = call.extension_number or "-"
    if call.user_name:
        who = f"{who} {call.user_name}"
    other = call.external_number or call.internal_number or "?"
    arrow = "<-" if call.direction.value == "inbound" else "->"
    local = call.end_time.astimezone().strftime("%H:%M:%S")
    extra = ""
    if call.transferred_to:
        extra = f"  transferred to {call.transferred_to}"
    elif call.queue_name:
        extra = f"  via {call.queue_name}"
    return (
        f"{local}  {call.direction.value:<8} {call.result.value:<11} {who:<24} {arrow} {other:<14}"
        f"  ring {_seconds(call.ring_ms)}  talk {_seconds(call.talk_ms)}"
        f"  hold {_seconds(call.hold_ms)}{extra}"
    )


def demo_settings(state_dir: Path, sim_url: str, crm_url: str, crm_secret: str) -> Settings:
    return parse_config(
        {
            "daemon": {
                "state_dir": str(state_dir),
                "log_level": "warning",
                "log_format": "console",
                "shutdown_timeout": 5.0,
                "snapshot_interval": 2.0,
            },
            "admin": {"enabled": False},
            "ringcentral": {
                "server": sim_url,
                "client_id": "demo",
                "client_secret": "demo-client-secret",
                "jwt": "demo-jwt",
                "call_log_delay": CALL_LOG_DELAY,
            },
            "calls": {"completion_grace": 0.5},
            "writers": {
                CRM_WRITER: {"type": "webhook", "url": f"{crm_url}/calls", "secret": crm_secret},
                "file": {"type": "jsonl", "path": str(state_dir / "calls.jsonl")},
            },
        },
        source="<demo>",
    )


async def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> DemoReport:
    from sscl_daemon.daemon.app import Daemon
    from sscl_daemon.simulator.app import Simulator, SimulatorConfig
    from sscl_daemon.simulator.crm.common import serve
    from sscl_daemon.simulator.crm.webhook import WebhookReceiverState, create_app
    from sscl_daemon.simulator.profiles import PlatformProfile

    report = DemoReport()
    started = time.monotonic()
    profile = dataclasses.replace(PlatformProfile.lenient(), call_log_delay_s=CALL_LOG_DELAY)
    sim_config = SimulatorConfig(
        seed=options.seed,
        calls_per_second=options.calls_per_second,
        time_scale=TIME_SCALE,
        profile=profile,
    )

    def landed(writer: str, call: CompletedCall, record_id: str, outcome: WriteOutcome) -> None:
        if writer != CRM_WRITER:
            return
        if report.first_logged_after is None:
            report.first_logged_after = time.monotonic() - started
        report.logged[call.result.value] += 1
        print(call_line(call), file=out, flush=True)

    crm = WebhookReceiverState()
    with tempfile.TemporaryDirectory(prefix="sscl-demo-") as tmp:
        state_dir = Path(tmp)
        async with Simulator(sim_config) as sim, serve(create_app(crm)) as crm_url:
            settings = demo_settings(state_dir, sim.base_url, crm_url, crm.secret)
            print(
                f"sscl-daemon demo: simulated RingCentral account at {sim.base_url} "
                f"({len(sim.org.users)} users), {options.calls_per_second:g} calls/s, "
                f"stand-in CRM at {crm_url}; state in {state_dir}\n"
                "starting the embedded PostgreSQL and the daemon ... (Ctrl-C to stop)\n",
                file=out,
                flush=True,
            )
            daemon = Daemon(settings, notifier=Notifier(None), on_sent=landed, handle_signals=False)
            task = asyncio.create_task(daemon.run())
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _until(stop, task), options.duration if options.duration else None
                    )
            finally:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
            daemon.stop()
            report.exit_code = await task
            report.simulated = len(sim.expected_logs())
            report.pending = report.simulated - sum(report.logged.values())
    _summary(report, time.monotonic() - started, out)
    return report


async def _until(stop: asyncio.Event, task: asyncio.Task[int]) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def _summary(report: DemoReport, elapsed: float, out: TextIO) -> None:
    logged = sum(report.logged.values())
    results = ", ".join(f"{name} {n}" for name, n in report.logged.most_common()) or "none"
    first = (
        f"first call logged {report.first_logged_after:.1f} s after start"
        if report.first_logged_after is not None
        else "no call ended in time to be logged"
    )
    print(
        f"\nsummary after {elapsed:.0f} s: {logged} call logs in the CRM ({results}); {first}.\n"
        f"The simulator generated {report.simulated} call logs; "
        f"{max(report.pending, 0)} were not in the CRM yet when it stopped (calls still going, "
        "or ended moments before); the daemon logs those on its next run.",
        file=out,
        flush=True,
    )
