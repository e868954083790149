"""End-to-end harness: a fast simulator, the webhook CRM stand-in, and daemon configs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from sscl_daemon.simulator.app import Simulator, SimulatorConfig
from sscl_daemon.simulator.crm.common import serve
from sscl_daemon.simulator.crm.webhook import WebhookReceiverState, create_app
from sscl_daemon.simulator.profiles import PlatformProfile, RateGroup, RateLimit

# Calls last well under a second of wall time; call-log records appear 1 s after a call.
TIME_SCALE = 0.01
CALL_LOG_DELAY = 1.0


@asynccontextmanager
async def fast_simulator(seed: int, calls_per_second: float = 0.0) -> AsyncIterator[Simulator]:
    # Restarting several times a minute would exceed the platform's Auth budget (5/min).
    limits = {group: RateLimit(1000) for group in RateGroup}
    profile = dataclasses.replace(
        PlatformProfile.lenient(), call_log_delay_s=CALL_LOG_DELAY, rate_limits=limits
    )
    config = SimulatorConfig(
        seed=seed, calls_per_second=calls_per_second, profile=profile, time_scale=TIME_SCALE
    )
    async with Simulator(config) as sim:
        yield sim


@asynccontextmanager
async def webhook_crm() -> AsyncIterator[tuple[WebhookReceiverState, str]]:
    state = WebhookReceiverState()
    async with serve(create_app(state)) as url:
        yield state, url


def daemon_config(
    *,
    sim_url: str,
    crm_url: str,
    crm_secret: str,
    state_dir: Path,
    dsn: str,
    blocklist: list[str] | None = None,
    extra: Mapping[str, Mapping[str, object]] | None = None,
) -> dict[str, dict[str, object]]:
    config: dict[str, dict[str, object]] = {
        "daemon": {
            "state_dir": str(state_dir),
            "log_format": "json",
            "shutdown_timeout": 5.0,
            "snapshot_interval": 0.5,
        },
        "admin": {"port": 0},
        "store": {"dsn": dsn, "pool_max_size": 4, "commit_interval_ms": 2.0},
        "ringcentral": {
            "server": sim_url,
            "client_id": "e2e-client",
            "client_secret": "e2e-client-secret",
            "jwt": "e2e-jwt-assertion",
            "call_log_delay": CALL_LOG_DELAY,
            "reconnect_initial_delay": 0.1,
            "reconnect_max_delay": 1.0,
        },
        "calls": {"completion_grace": 0.2},
        "blocklist": {"entries": blocklist or []},
        "writers": {
            "crm": {
                "type": "webhook",
                "url": f"{crm_url}/hooks/calls",
                "secret": crm_secret,
                "retry_initial": 0.1,
                "retry_max": 1.0,
                "timeout": 5.0,
            },
            "log": {"type": "jsonl", "path": str(state_dir / "calls.jsonl")},
        },
    }
    for section, values in (extra or {}).items():
        config.setdefault(section, {}).update(values)
    return config


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(config: Mapping[str, Mapping[str, object]]) -> str:
    """A small TOML writer for the two-level configs above."""
    lines: list[str] = []

    def table(name: str, values: Mapping[str, object]) -> None:
        scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in scalars.items())
        lines.append("")
        for key, value in values.items():
            if isinstance(value, dict):
                table(f"{name}.{key}", value)

    for section, values in config.items():
        table(section, values)
    return "\n".join(lines)


def write_config(path: Path, config: Mapping[str, Mapping[str, object]]) -> Path:
    path.write_text(to_toml(config))
    return path


def logged_keys(state_dir: Path) -> list[str]:
    """Keys in the jsonl writer's file, in order (duplicates kept, to be counted)."""
    path = state_dir / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()]
