"""A fleet: three ``sscl-daemon run`` processes share six accounts through one database.

Six simulated RingCentral accounts (one simulator each), each logging into its own
webhook CRM stand-in and jsonl file, are listed as ``[accounts.NAME]`` tables of one
config file. Three daemons started from it split the accounts by their leases. With
traffic on every account the daemon holding the most accounts is SIGKILLed: each of
its accounts moves to a survivor, and every account's CRM ends up with each
simulated call exactly once (no jsonl file has a call twice). ``sscl-daemon status``
names the surviving holder of every account.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.daemon.harness import (
    daemon_config,
    fast_simulator,
    logged_keys,
    webhook_crm,
    write_config,
)
from tests.daemon.helpers import wait_until
from tests.daemon.test_e2e_process import DaemonProcess
from tests.scale.test_failover import (
    SETTLE_WITHIN,
    TAKEOVER_BOUND,
    all_delivered,
    expected_keys,
    held_by,
    named,
    pid,
    terminate,
    traffic,
)

from sscl_daemon.cli import main
from sscl_daemon.commands.status import render_leases
from sscl_daemon.config import Settings, parse_config
from sscl_daemon.daemon.reload import plan_reload
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState
from sscl_daemon.store import LeaseInfo

ACCOUNTS = 6
DAEMONS = 3
_ACCOUNT_SECTIONS = ("ringcentral", "calls", "blocklist", "writers")


@dataclass
class Account:
    name: str
    sim: Simulator
    crm: WebhookReceiverState
    state_dir: Path


@dataclass
class Fleet:
    accounts: list[Account]
    daemons: list[DaemonProcess]
    config: Path


async def organisations(
    stack: contextlib.AsyncExitStack,
    count: int,
    *,
    seed: int,
    dsn: str,
    root: Path,
    extra: Mapping[str, Mapping[str, object]] | None = None,
) -> tuple[list[Account], dict[str, dict[str, object]]]:
    """``count`` accounts (a simulator and a CRM stand-in each) and a config listing them."""
    config: dict[str, dict[str, object]] = {}
    accounts: list[Account] = []
    for index in range(count):
        name = f"org{index + 1}"
        sim = await stack.enter_async_context(fast_simulator(seed=seed + index))
        crm, crm_url = await stack.enter_async_context(webhook_crm())
        # Each account's jsonl file under its own directory (the writer's path).
        state_dir = root / name
        one = daemon_config(
            sim_url=sim.base_url,
            crm_url=crm_url,
            crm_secret=crm.secret,
            state_dir=state_dir,
            dsn=dsn,
            extra=extra,
        )
        config.update({k: v for k, v in one.items() if k not in _ACCOUNT_SECTIONS})
        config["daemon"]["state_dir"] = str(root / "state")
        config.setdefault("accounts", {})[name] = {k: one[k] for k in _ACCOUNT_SECTIONS}
        state_dir.mkdir()
        accounts.append(Account(name, sim, crm, state_dir))
    return accounts, config


@pytest.fixture
async def fleet(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with contextlib.AsyncExitStack() as stack:
        accounts, config = await organisations(stack, ACCOUNTS, seed=100, dsn=pg_dsn, root=tmp_path)
        path = write_config(tmp_path / "config.toml", config)
        daemons = [named(tmp_path / f"d{i}", path) for i in range(DAEMONS)]
        try:
            yield Fleet(accounts, daemons, path)
        finally:
            for daemon in daemons:
                daemon.kill_if_running()


async def _status(config: Path) -> tuple[int, str]:
    def run() -> tuple[int, str]:
        import io
        from contextlib import redirect_stdout

        out = io.StringIO()
        with redirect_stdout(out):
            code = main(["status", "--config", str(config)])
        return code, out.getvalue()

    return await asyncio.to_thread(run)


@pytest.mark.slow
@pytest.mark.timeout(360)  # room for SETTLE_WITHIN after the handover itself
async def test_killed_daemons_accounts_move_to_survivors_nothing_lost_or_doubled(
    fleet: Fleet, pg_dsn: str, tmp_path: Path
) -> None:
    names = {a.name for a in fleet.accounts}
    for daemon in fleet.daemons:
        daemon.start()
    for daemon in fleet.daemons:
        await daemon.ready()

    async def every_account_held() -> bool:
        return set(await held_by(pg_dsn, tmp_path)) == names

    await wait_until(every_account_held, 30, "every account held by some daemon")
    holders = await held_by(pg_dsn, tmp_path)
    assert set(holders.values()) <= {pid(d) for d in fleet.daemons}

    load = asyncio.create_task(traffic([a.sim for a in fleet.accounts], 15, random.Random(61)))
    try:
        await wait_until(
            lambda: all(len(a.crm.deliveries) >= 2 for a in fleet.accounts),
            30,
            "calls flowing on every account before the kill",
        )
        victim = max(fleet.daemons, key=lambda d: sum(p == pid(d) for p in holders.values()))
        moved = {name for name, p in holders.items() if p == pid(victim)}
        kept = {name: p for name, p in holders.items() if p != pid(victim)}
        survivors = {pid(d) for d in fleet.daemons if d is not victim}
        killed_at = time.monotonic()
        assert await victim.signal(signal.SIGKILL) == -signal.SIGKILL

        async def moved_to_survivors() -> bool:
            now = await held_by(pg_dsn, tmp_path)
            return set(now) == names and set(now.values()) <= survivors

        await wait_until(moved_to_survivors, TAKEOVER_BOUND + 5, "the accounts to move")
        takeover = time.monotonic() - killed_at
        await asyncio.wait_for(load, 60)
    finally:
        load.cancel()
    print(
        f"\nfleet: {len(moved)} account(s) of the killed daemon held by survivors "
        f"{takeover:.2f} s after its SIGKILL"
    )
    assert takeover <= TAKEOVER_BOUND
    assert moved, "the killed daemon held at least one account"
    final = await held_by(pg_dsn, tmp_path)
    # A survivor's own accounts stay where they were (leases are given up only on a stop).
    assert {name: final[name] for name in kept} == kept

    for account in fleet.accounts:
        await all_delivered(account.sim, account.crm, SETTLE_WITHIN)
        expected = expected_keys(account.sim)
        assert len(expected) >= 8  # some simulated calls (internal, blocked) log nothing
        jsonl = account.state_dir

        def in_jsonl(path: Path = jsonl, keys: set[str] = expected) -> bool:
            return set(logged_keys(path)) >= keys

        await wait_until(in_jsonl, 20, f"every call of {account.name} in its jsonl")
        keys = logged_keys(account.state_dir)
        assert len(keys) == len(set(keys)), f"a call of {account.name} was logged twice"

    code, out = await _status(fleet.config)
    assert code == 0
    for name, holder in final.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{name} "))
        assert f":{holder} since" in line, line
    await terminate(d for d in fleet.daemons if d is not victim)


def _accounts_config(blocklist: list[str], client_id: str, extra: bool) -> Settings:
    accounts: dict[str, object] = {}
    for name in ("org1", "org2", *(("org3",) if extra else ())):
        one = daemon_config(
            sim_url="http://127.0.0.1:9",
            crm_url="http://127.0.0.1:9",
            crm_secret="whsec_c3NjbC1kZW1vLXNpZ25pbmctc2VjcmV0LTMyYnl0ZXM=",
            state_dir=Path("/tmp/unused"),
            dsn="postgresql://localhost/unused",
            blocklist=blocklist if name == "org2" else [],
        )
        tables = {k: one[k] for k in _ACCOUNT_SECTIONS}
        if name == "org2":
            tables["ringcentral"] = {**one["ringcentral"], "client_id": client_id}
        accounts[name] = tables
    return parse_config({"store": {"dsn": "postgresql://localhost/unused"}, "accounts": accounts})


def test_reload_applies_each_accounts_live_settings_and_names_the_rest() -> None:
    old = _accounts_config([], "client-a", extra=False)
    new = _accounts_config(["+14155550100"], "client-b", extra=True)
    plan = plan_reload(old, new)
    assert plan.applied == ("accounts.org2.blocklist",)
    assert set(plan.needs_restart) == {
        "accounts.org2.ringcentral.client_id",
        "accounts.org3 (added)",
    }
    org1, org2 = plan.effective.accounts
    assert org1 == old.accounts[0]
    assert org2.blocklist.matches_number("+14155550100")
    assert org2.ringcentral.client_id == "client-a"  # credentials change only on a restart


def test_status_lists_every_accounts_holder() -> None:
    now = datetime.now(UTC)
    live = LeaseInfo("org1", "vm:101", now, now + timedelta(seconds=6), 3, True, True)
    gone = LeaseInfo("org9", "vm:102", now, now - timedelta(seconds=1), 1, False, False)
    lines = render_leases(["org1", "org2"], [live, gone])
    assert lines[1].split()[:4] == ["org1", "held", "by", "vm:101"]
    assert "(token 3)" in lines[1]
    assert lines[2].split()[:3] == ["org2", "never", "held"]
    assert lines[3].split()[:3] == ["org9", "free", "(last"]
