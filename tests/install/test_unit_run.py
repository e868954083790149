"""The README's install, run the way the systemd unit runs the daemon (short of systemd).

The files are installed with exactly the modes and owners of the README's "Install under
systemd" block (parsed from it, re-rooted under a temporary directory that stands for
``/``); the daemon runs as an unprivileged user (``nobody`` when the tests run as root,
else the current user) with working directory ``/``, the unit's umask,
``$STATE_DIRECTORY``, ``$CREDENTIALS_DIRECTORY`` (the unit's ``LoadCredential=`` files,
copied as systemd does) and ``$NOTIFY_SOCKET`` (a datagram socket the test reads), on the
embedded PostgreSQL the example configuration uses, against the simulator. It must reach
READY=1 and log the simulated calls. Problems a restart cannot fix exit with the status
the unit does not restart on (``RestartPreventExitStatus=``), saying what to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.daemon.helpers import wait_until
from tests.install.runtime import Runtime, as_user, runtime_for

from sscl_daemon.exitcodes import EXIT_CONFIG, FINAL
from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.oauth import Credentials
from sscl_daemon.simulator.profiles import PlatformProfile, RateGroup, RateLimit

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
UNIT = ROOT / "systemd" / "sscl-daemon.service"
ETC = "/etc/sscl-daemon"
# The group the README gives the service (systemd/sscl-daemon.sysusers).
SERVICE_GROUP = "sscl-daemon"
CLIENT_ID = "unit-test-client"


def install_block() -> list[str]:
    """The commands of the README's install block (comments and blank lines dropped)."""
    section = README.read_text().split("## Install under systemd\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


@dataclass(frozen=True)
class ServiceUser:
    uid: int
    gid: int

    @classmethod
    def pick(cls) -> ServiceUser:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            return cls(nobody.pw_uid, nobody.pw_gid)
        return cls(os.getuid(), os.getgid())


@dataclass
class Installed:
    """The re-rooted install: ``root`` stands for ``/``."""

    root: Path
    user: ServiceUser

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    @property
    def config(self) -> Path:
        return self.path(f"{ETC}/config.toml")


def _owner(name: str, user: ServiceUser) -> int:
    if os.geteuid() != 0:
        return -1  # an ordinary user cannot give files away: they stay the test's (= service's)
    return 0 if name == "root" else user.uid


def _group(name: str, user: ServiceUser) -> int:
    if os.geteuid() != 0:
        return -1
    return user.gid if name == SERVICE_GROUP else 0


def _install(args: list[str], target: Installed) -> None:
    """``install [-d] [-D] -m MODE [-o OWNER] [-g GROUP] ...`` for the files under /etc."""
    mode, owner, group, directory, paths = 0o755, "root", "root", False, []
    it = iter(args)
    for arg in it:
        if arg == "-d":
            directory = True
        elif arg == "-D":
            pass
        elif arg == "-m":
            mode = int(next(it), 8)
        elif arg == "-o":
            owner = next(it)
        elif arg == "-g":
            group = next(it)
        else:
            paths.append(arg)
    targets = paths if directory else paths[-1:]
    if not all(p.startswith(ETC) for p in targets):
        return  # the unit, the doc, sysusers.d: systemd's side, not the daemon's
    uid, gid = _owner(owner, target.user), _group(group, target.user)
    if directory:
        for path in paths:
            made = target.path(path)
            system_dirs(made.parent)
            made.mkdir()
            made.chmod(mode)
            os.chown(made, uid, gid)
        return
    source, dest = paths
    made = target.path(dest)
    if source == "/dev/null":
        made.write_bytes(b"")
    else:
        shutil.copyfile(ROOT / source, made)
    made.chmod(mode)
    os.chown(made, uid, gid)


def system_dirs(path: Path) -> None:
    """``mkdir -p`` with the 0755 of a system's /etc, whatever the test run's umask."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for made in reversed(missing):
        made.mkdir()
        made.chmod(0o755)


def _write(line: str, target: Installed) -> None:
    """``printf %s 'VALUE' > FILE``: the shell keeps the file's mode and owner."""
    command, dest = line.split(">", 1)
    args = shlex.split(command)
    assert args[:2] == ["printf", "%s"], line
    target.path(dest.strip()).write_text(args[2])


def install(target: Installed) -> list[str]:
    """Follow the README's install block; returns the commands left to systemd and pip."""
    left = []
    for line in install_block():
        args = shlex.split(line)
        if args[0] == "install":
            _install(args[1:], target)
        elif args[0] == "printf":
            _write(line, target)
        else:
            left.append(args[0])
    return left


def load_credentials(target: Installed) -> Path:
    """What systemd does for the unit's LoadCredential= lines: a private copy per service."""
    directory = target.path("/run/credentials/sscl-daemon.service")
    system_dirs(directory)
    for line in UNIT.read_text().splitlines():
        if line.startswith("LoadCredential="):
            name, source = line.removeprefix("LoadCredential=").split(":", 1)
            copy = directory / name
            shutil.copyfile(target.path(source), copy)
            copy.chmod(0o400)
            os.chown(copy, target.user.uid, target.user.gid)
    directory.chmod(0o500)
    os.chown(directory, target.user.uid, target.user.gid)
    return directory


def state_directory(target: Installed) -> Path:
    """What StateDirectory=sscl-daemon with StateDirectoryMode=0700 creates."""
    state = target.path("/var/lib/sscl-daemon")
    system_dirs(state)
    state.chmod(0o700)
    os.chown(state, target.user.uid, target.user.gid)
    return state


def edit_config(target: Installed, sim_url: str) -> None:
    """The README's "edit config.toml" step: this RingCentral app, and fast test timings."""
    text = target.config.read_text()
    edits = {
        'server = "https://platform.ringcentral.com"': f'server = "{sim_url}"',
        'client_id = "your-client-id"': f'client_id = "{CLIENT_ID}"',
        "call_log_delay = 30.0": "call_log_delay = 1.0",
        "reconnect_initial_delay = 1.0": "reconnect_initial_delay = 0.1",
        "completion_grace = 2.0": "completion_grace = 0.2",
        "port = 9474": "port = 0",  # tests run side by side
        'log_format = "auto"': 'log_format = "json"',
    }
    for old, new in edits.items():
        assert text.count(old) == 1, f"config.example.toml no longer has {old!r}"
        text = text.replace(old, new)
    target.config.write_text(text)


def unit_value(key: str) -> str:
    values = [
        line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]
    assert len(values) == 1, key
    return values[0]


@pytest.fixture(scope="module")
def user() -> ServiceUser:
    return ServiceUser.pick()


@pytest.fixture
def target(user: ServiceUser) -> Iterator[Installed]:
    # Outside the test's tmp_path, which may be private to the test's user.
    root = Path(tempfile.mkdtemp(prefix="sscl-unit-"))
    root.chmod(0o755)
    try:
        yield Installed(root, user)
    finally:
        # The credentials directory is read-only (0500), as systemd makes it: open it up so an
        # ordinary user's test can remove what it made.
        for directory, _, _ in os.walk(root):
            with contextlib.suppress(OSError):
                Path(directory).chmod(0o700)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def runtime(user: ServiceUser) -> Iterator[Runtime]:
    root = Path(tempfile.mkdtemp(prefix="sscl-runtime-"))
    root.chmod(0o755)
    try:
        yield runtime_for(user.uid, user.gid, root / "rt")
    finally:
        shutil.rmtree(root, ignore_errors=True)


class UnitProcess:
    """``sscl-daemon run`` started the way the unit starts it."""

    def __init__(self, target: Installed, runtime: Runtime, env: dict[str, str]) -> None:
        self.target = target
        notify = target.path("/run/notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(notify))
        notify.chmod(0o666)  # systemd's socket accepts the service's messages
        self.notify.setblocking(False)
        self.received = ""
        self.log_path = target.root / "daemon.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [runtime.python, "-m", "sscl_daemon", "run", "--config", str(target.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd="/",
                env={
                    "PATH": "/usr/local/bin:/usr/bin:/bin",
                    "LANG": "C.UTF-8",
                    "NOTIFY_SOCKET": str(notify),
                    **runtime.env,
                    **env,
                },
                **as_user(target.user.uid, target.user.gid),
                umask=int(unit_value("UMask"), 8),
            )

    def messages(self) -> str:
        while True:
            try:
                self.received += self.notify.recv(4096).decode()
            except BlockingIOError:
                return self.received

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    async def exit_status(self, within: float) -> int:
        await wait_until(lambda: self.process.poll() is not None, within, "the daemon to exit")
        return int(self.process.returncode)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.notify.close()


@asynccontextmanager
async def simulator() -> AsyncIterator[Simulator]:
    # Only the README's placeholder secrets are accepted: they must come through the files.
    credentials = Credentials(CLIENT_ID, "your-client-secret", "your-jwt")
    limits = {group: RateLimit(1000) for group in RateGroup}
    profile = dataclasses.replace(
        PlatformProfile.lenient(), call_log_delay_s=1.0, rate_limits=limits
    )
    config = SimulatorConfig(seed=18, profile=profile, time_scale=0.01, credentials=credentials)
    async with Simulator(config) as sim:
        yield sim


def test_the_readme_installs_only_what_these_tests_emulate() -> None:
    """Everything else in the block is pip, systemd-sysusers and systemctl (and a check)."""
    with tempfile.TemporaryDirectory() as root:
        Path(root, ETC.lstrip("/")).parent.mkdir(parents=True)
        left = install(Installed(Path(root), ServiceUser(os.getuid(), os.getgid())))
    assert set(left) == {"python3", "/opt/sscl-daemon/bin/pip", "ln", "systemd-sysusers",
                         "systemctl", "sscl-daemon"}  # fmt: skip
    assert FINAL == (EXIT_CONFIG,)
    assert unit_value("RestartPreventExitStatus") == " ".join(str(code) for code in FINAL)


async def test_the_daemon_starts_as_the_unit_runs_it_and_logs_calls(
    target: Installed, runtime: Runtime
) -> None:
    system_dirs(target.path(ETC).parent)
    install(target)
    async with simulator() as sim:
        edit_config(target, sim.base_url)
        state = state_directory(target)
        daemon = UnitProcess(
            target,
            runtime,
            {"STATE_DIRECTORY": str(state), "CREDENTIALS_DIRECTORY": str(load_credentials(target))},
        )
        try:

            def ready() -> bool:
                if daemon.process.poll() is not None:
                    raise AssertionError(f"the daemon exited early:\n{daemon.log()}")
                return "READY=1" in daemon.messages()

            await wait_until(ready, 90, "READY=1 on $NOTIFY_SOCKET")
            for _ in range(5):
                sim.inject(sim.factory.make(datetime.now(UTC)))
            expected = {log.key for log in sim.expected_logs()}
            assert expected
            calls = state / "calls.jsonl"

            def logged() -> set[str]:
                text = calls.read_text() if calls.exists() else ""
                return {
                    line.split('"key": "', 1)[-1].split('"', 1)[0] for line in text.splitlines()
                }

            await wait_until(lambda: expected <= logged(), 60, "the calls in calls.jsonl")
            # The running daemon's database (its embedded server, as a client), its lease, and
            # every call sent once (the jsonl line is written just before the row is marked).
            row = re.compile(rf"^log +0 +0 +{len(expected)} +0 +0 ", flags=re.MULTILINE)
            report = ""
            try:
                async with asyncio.timeout(60):
                    while not row.search(report):
                        status = await admin_status(target, state)
                        assert status.returncode == 0, status.stderr
                        report = status.stdout
            except TimeoutError:
                raise AssertionError(f"status never showed the calls sent:\n{report}") from None
            assert f"the running daemon's embedded server in {state / 'postgres'}" in report
            holder = f"{socket.gethostname()}:{daemon.process.pid}"
            assert f"default  held by {holder}" in report
            daemon.process.send_signal(signal.SIGTERM)
            assert await daemon.exit_status(30) == 0, daemon.log()
            assert "STOPPING=1" in daemon.messages()
        finally:
            daemon.close()
    assert calls.stat().st_uid == target.user.uid
    assert calls.stat().st_mode & 0o077 == 0  # the unit's UMask=0077: private to the service


async def admin_status(target: Installed, state: Path) -> subprocess.CompletedProcess[str]:
    """``sudo sscl-daemon status`` from an admin shell in another directory, no options
    (the README's last install step).

    The re-rooted install stands in for the defaults: $SSCL_DAEMON_CONFIG for
    /etc/sscl-daemon/config.toml and $STATE_DIRECTORY for /var/lib/sscl-daemon.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SSCL_DAEMON_CONFIG": str(target.config),
        "STATE_DIRECTORY": str(state),
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "sscl_daemon", "status"],
        cwd=target.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _fresh_install(target: Installed) -> tuple[Path, Path]:
    system_dirs(target.path(ETC).parent)
    install(target)
    edit_config(target, "http://127.0.0.1:9")
    return state_directory(target), load_credentials(target)


async def _final_exit(target: Installed, runtime: Runtime, env: dict[str, str]) -> str:
    daemon = UnitProcess(target, runtime, env)
    try:
        status = await daemon.exit_status(60)
        log = daemon.log()
    finally:
        daemon.close()
    assert status == EXIT_CONFIG, log
    assert status in FINAL
    assert "Traceback" not in log
    return log


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user is the test's own user")
async def test_an_unreadable_config_is_final_and_says_what_to_fix(
    target: Installed, runtime: Runtime
) -> None:
    state, credentials = _fresh_install(target)
    os.chown(target.config, 0, 0)  # root:root, not root:sscl-daemon as the README says
    log = await _final_exit(
        target, runtime, {"STATE_DIRECTORY": str(state), "CREDENTIALS_DIRECTORY": str(credentials)}
    )
    assert f"{target.config}" in log
    assert "Permission denied" in log
    assert "root:sscl-daemon" in log


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user is the test's own user")
async def test_an_unwritable_state_directory_is_final_and_says_what_to_fix(
    target: Installed, runtime: Runtime
) -> None:
    state, credentials = _fresh_install(target)
    os.chown(state, 0, 0)  # not the service's
    log = await _final_exit(
        target, runtime, {"STATE_DIRECTORY": str(state), "CREDENTIALS_DIRECTORY": str(credentials)}
    )
    assert f"the state directory {state} is not writable" in log


async def test_missing_credentials_are_final_and_say_what_to_fix(
    target: Installed, runtime: Runtime
) -> None:
    state, _ = _fresh_install(target)
    empty = target.path("/run/credentials/other")
    system_dirs(empty)
    os.chown(empty, target.user.uid, target.user.gid)
    log = await _final_exit(
        target, runtime, {"STATE_DIRECTORY": str(state), "CREDENTIALS_DIRECTORY": str(empty)}
    )
    assert "ringcentral.jwt: cannot read credential 'rc-jwt'" in log
    assert "LoadCredential=rc-jwt:" in log
