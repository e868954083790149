"""The zero-setup demo: the simulator, an embedded PostgreSQL and the daemon, in one process.

``sscl-daemon demo`` (``make demo``) starts the RingCentral simulator with a
small organisation placing calls, a stand-in CRM (the signed-webhook
receiver), and the daemon pointed at both with a temporary state directory
(so the embedded PostgreSQL lives there too), writing every call to the CRM
and to a jsonl file. It prints a header (what runs where, then the
columns), one line per call as its logs land in the CRM, and, on Ctrl-C or
at the end of ``--duration``, a summary that compares what the simulator
generated with what the CRM received. With HubSpot, Salesforce or Pipedrive as the CRM, the
calls' recordings and voicemail are uploaded (``recordings = "upload"``) and each is printed
as it is attached to its log. A queue call nobody answered gives
one ``missed`` log per agent it rang; the demo shows it once, naming the
agents (logs of one call landing within :data:`GROUP_WINDOW` of each
other). Nothing here needs an account, a config file or the internet, and
nothing is kept: the state directory is deleted at exit.
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
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sscl_daemon.calls.model import CallResult, CompletedCall
from sscl_daemon.config import Settings, parse_config
from sscl_daemon.dispatch import WriteOutcome
from sscl_daemon.sdnotify import Notifier

if TYPE_CHECKING:
    from sscl_daemon.daemon.app import Daemon
    from sscl_daemon.simulator.app import Simulator

CRM_WRITER = "crm"
# Simulated calls are this much shorter than real ones, so they end within seconds
# (a three-minute call lasts 9 s) and several are logged in the first half minute.
TIME_SCALE = 0.05
CALL_LOG_DELAY = 5.0
# Missed logs of one call that land this close together are shown as one line.
GROUP_WINDOW = 1.0
# CRMs whose stand-in takes the recordings and voicemail the daemon uploads after the call.
MEDIA_CRMS = frozenset({"hubspot", "salesforce", "pipedrive"})
MEDIA_POLL = 0.5


@dataclass(frozen=True)
class DemoOptions:
    duration: float | None = None
    calls_per_second: float = 0.5
    seed: int = 1
    # The writer type whose stand-in plays the CRM (simulator/crm/standins.py).
    crm: str = "webhook"


@dataclass
class DemoReport:
    logged: Counter[str] = field(default_factory=Counter)
    first_logged_after: float | None = None
    # Seconds after start at which each call log landed in the CRM.
    logged_after: list[float] = field(default_factory=list)
    # The telephony session of each printed call line, in order.
    shown: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # call logs in the CRM
    simulated: int = 0  # call logs the simulator expects for the calls that ended
    pending: int = 0  # of those, not in the CRM when the demo stopped
    still_going: int = 0  # calls not ended when the demo stopped
    attached: int = 0  # recordings and voicemail attached to the CRM's logs
    exit_code: int = 0


def _seconds(ms: int) -> str:
    total = (ms + 500) // 1000
    return f"{total // 60}:{total % 60:02d}"


# Column titles of call_line, aligned with its fields.
HEADER = (
    f"{'ended':<8}  {'call':<8} {'result':<11} {'user (extension)':<24}    {'other party':<14}"
    "  durations (ring, talk, hold)"
)


def call_line(call: CompletedCall, missed_too: tuple[CompletedCall, ...] = ()) -> str:
    """One readable line per call: one user's log, or a queue call missed by several."""
    who = call.extension_number or "-"
    if call.user_name:
        who = f"{who} {call.user_name}"
    other = call.external_number or call.internal_number or "?"
    arrow = "<-" if call.direction.value == "inbound" else "->"
    local = call.end_time.astimezone().strftime("%H:%M:%S")
    extra = ""
    if missed_too:
        rang = ", ".join(c.extension_number or "?" for c in (call, *missed_too))
        who = f"{1 + len(missed_too)} agents"
        extra = f"  via {call.queue_name or 'a queue'}, rang {rang} (a missed log each)"
    elif call.transferred_to:
        extra = f"  transferred to {call.transferred_to}"
    elif call.queue_name:
        extra = f"  via {call.queue_name}"
    return (
        f"{local}  {call.direction.value:<8} {call.result.value:<11} {who:<24} {arrow} {other:<14}"
        f"  ring {_seconds(call.ring_ms)}  talk {_seconds(call.talk_ms)}"
        f"  hold {_seconds(call.hold_ms)}{extra}"
    )


class _Printer:
    """Prints landed call logs; holds a call's missed logs briefly to show them as one line."""

    def __init__(self, report: DemoReport, out: TextIO) -> None:
        self._report = report
        self._out = out
        self._missed: dict[str, list[CompletedCall]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def landed(self, call: CompletedCall) -> None:
        if call.result is not CallResult.MISSED:
            self._print(call.telephony_session_id, call_line(call))
            return
        tsid = call.telephony_session_id
        self._missed.setdefault(tsid, []).append(call)
        if tsid not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[tsid] = loop.call_later(GROUP_WINDOW, self._flush, tsid)

    def _flush(self, tsid: str) -> None:
        self._timers.pop(tsid, None)
        first, *others = self._missed.pop(tsid)
        self._print(tsid, call_line(first, tuple(others)))

    def close(self) -> None:
        for tsid, timer in list(self._timers.items()):
            timer.cancel()
            self._flush(tsid)

    def _print(self, tsid: str, line: str) -> None:
        self._report.shown.append(tsid)
        print(line, file=self._out, flush=True)


def demo_settings(
    state_dir: Path,
    sim_url: str,
    crm_url: str,
    crm_secret: str,
    crm_writer: dict[str, object] | None = None,
) -> Settings:
    return parse_config(
        {
            "daemon": {
                "state_dir": str(state_dir),
                "log_level": "warning",
                "log_format": "console",
                "shutdown_timeout": 5.0,
                "snapshot_interval": 2.0,
            },
            # Loopback, any free port: the console is printed once the daemon is ready.
            "admin": {"port": 0},
            "ringcentral": {
                "server": sim_url,
                "client_id": "demo",
                "client_secret": "demo-client-secret",
                "jwt": "demo-jwt",
                "call_log_delay": CALL_LOG_DELAY,
            },
            "calls": {"completion_grace": 0.5},
            "writers": {
                CRM_WRITER: crm_writer
                or {"type": "webhook", "url": f"{crm_url}/calls", "secret": crm_secret},
                "file": {"type": "jsonl", "path": str(state_dir / "calls.jsonl")},
            },
        },
        source="<demo>",
    )


async def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> DemoReport:
    from sscl_daemon.daemon.app import Daemon
    from sscl_daemon.simulator.app import Simulator, SimulatorConfig
    from sscl_daemon.simulator.crm.standins import running
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

    printer = _Printer(report, out)

    def landed(writer: str, call: CompletedCall, record_id: str, outcome: WriteOutcome) -> None:
        if writer != CRM_WRITER:
            return
        after = time.monotonic() - started
        if report.first_logged_after is None:
            report.first_logged_after = after
        report.logged_after.append(after)
        report.logged[call.result.value] += 1
        report.keys.add(call.key)
        printer.landed(call)

    with tempfile.TemporaryDirectory(prefix="sscl-demo-") as tmp:
        state_dir = Path(tmp)
        async with Simulator(sim_config) as sim, running(options.crm) as crm:
            writer = crm.writer
            if options.crm in MEDIA_CRMS:
                # The recordings and voicemail are fetched and attached once RingCentral
                # has them (some seconds after the call): each is printed as it lands.
                writer = {**writer, "recordings": "upload"}
            settings = demo_settings(state_dir, sim.base_url, crm.url, "", writer)
            print(
                "sscl-daemon demo: a simulated organisation makes calls; each call log is "
                "printed as it lands in the CRM\n"
                f"  RingCentral (simulated): {sim.base_url}, {len(sim.org.users)} users, "
                f"{options.calls_per_second:g} calls/s, calls {1 / TIME_SCALE:g}x shorter "
                "than real ones\n"
                f"  CRM (stand-in for {crm.label}): {crm.url}\n"
                f"  state (embedded PostgreSQL, calls.jsonl): {state_dir}, deleted at exit\n"
                "starting the embedded PostgreSQL and the daemon ... (Ctrl-C to stop)\n\n"
                f"{HEADER}",
                file=out,
                flush=True,
            )
            daemon = Daemon(settings, notifier=Notifier(None), on_sent=landed, handle_signals=False)
            task = asyncio.create_task(daemon.run())
            announcer = asyncio.create_task(_announce_ready(daemon, started, out))
            watcher = asyncio.create_task(_watch_media(crm.state, crm.label, report, out))
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
            announcer.cancel()
            watcher.cancel()
            daemon.stop()
            report.exit_code = await task
            printer.close()
            _compare(report, sim)
    _summary(report, time.monotonic() - started, out)
    return report


async def _announce_ready(daemon: Daemon, started: float, out: TextIO) -> None:
    await daemon.ready.wait()
    console = (
        f"; admin console at http://127.0.0.1:{daemon.admin_port}/" if daemon.admin_port else ""
    )
    print(
        f"-- daemon subscribed {time.monotonic() - started:.1f} s after start{console}",
        file=out,
        flush=True,
    )


def attached_media(state: object) -> list[tuple[str, int]]:
    """(file name, bytes) of the recordings and voicemail a CRM stand-in holds."""
    from sscl_daemon.simulator.crm import hubspot, pipedrive, salesforce

    if isinstance(state, hubspot.HubSpotState):
        return [(f.name, len(f.data)) for f in state.files.values()]
    if isinstance(state, salesforce.SalesforceState):
        return [
            (str(v["PathOnClient"]), len(state.version_data.get(vid, b"")))
            for vid, v in state.versions.items()
        ]
    if isinstance(state, pipedrive.PipedriveState):
        return [(name, len(data)) for name, data in state.recordings.values()]
    return []


def print_new_media(state: object, label: str, report: DemoReport, out: TextIO) -> None:
    """Print the recordings and voicemail attached since the last look."""
    files = attached_media(state)
    for name, size in files[report.attached :]:
        print(f"{'':8}  + {name} attached in {label} ({size // 1024} KB)", file=out, flush=True)
    report.attached = len(files)


async def _watch_media(state: object, label: str, report: DemoReport, out: TextIO) -> None:
    """Print each recording or voicemail as it is attached in the CRM stand-in."""
    while True:
        print_new_media(state, label, report, out)
        await asyncio.sleep(MEDIA_POLL)


def _compare(report: DemoReport, sim: Simulator) -> None:
    """What the simulator generated for the calls that ended, against what the CRM has."""
    now = sim.engine.now_wall()
    expected: set[str] = set()
    for call in sim.engine.calls:
        if call.start + timedelta(milliseconds=call.end_offset_ms) <= now:
            expected.update(log.key for log in call.expected)
        else:
            report.still_going += 1
    report.simulated = len(expected)
    report.pending = len(expected - report.keys)


async def _until(stop: asyncio.Event, task: asyncio.Task[int]) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _summary(report: DemoReport, elapsed: float, out: TextIO) -> None:
    logged = sum(report.logged.values())
    results = ", ".join(f"{name} {n}" for name, n in report.logged.most_common()) or "none"
    first = (
        f"the first {report.first_logged_after:.1f} s after start"
        if report.first_logged_after is not None
        else "none ended in time to be logged"
    )
    lines = [
        f"\nsummary after {elapsed:.0f} s: {logged} call logs in the CRM ({results}), "
        f"shown as {len(report.shown)} lines; {first}.",
        f"The calls that ended should give {report.simulated} call logs: "
        + (
            "all of them are in the CRM."
            if report.pending == 0
            else f"{_count(report.pending, 'was', 'were')} not in the CRM yet (their calls "
            "ended moments before the stop)."
        ),
        *(
            [
                f"{_count(report.attached, 'recording or voicemail was', 'recordings and voicemail were')}"
                " attached to their logs in the CRM, playable there."
            ]
            if report.attached
            else []
        ),
        f"{_count(report.still_going, 'call was', 'calls were')} still going. The demo's "
        "state is deleted now, so those are never logged; a real daemon keeps its state and "
        "logs them after a restart.",
    ]
    print("\n".join(lines), file=out, flush=True)
