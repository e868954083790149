"""Shared fixtures of the CRM writer tests: a CompletedCall factory and a loopback client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction, idempotency_key

START = datetime(2026, 11, 24, 9, 30, 0, tzinfo=UTC)

MakeCall = Callable[..., CompletedCall]


def make_call(**overrides: Any) -> CompletedCall:
    """An answered inbound call of 2 min 5 s talk; any field can be overridden."""
    tsid = overrides.pop("telephony_session_id", "s-1001")
    ext = overrides.pop("extension_id", "62001")
    fields: dict[str, Any] = {
        "key": idempotency_key(tsid, ext),
        "telephony_session_id": tsid,
        "session_id": "9001",
        "account_id": "37439510",
        "extension_id": ext,
        "extension_number": "101",
        "user_name": "Alice Agent",
        "user_email": "alice@example.com",
        "direction": Direction.INBOUND,
        "external_number": "+14155550123",
        "external_name": None,
        "internal_number": None,
        "result": CallResult.ANSWERED,
        "start_time": START,
        "answer_time": START.replace(second=12),
        "end_time": START.replace(minute=32, second=17),
        "ring_ms": 12_000,
        "queue_ms": 4_000,
        "talk_ms": 125_000,
        "hold_ms": 0,
        "total_ms": 137_000,
    }
    fields.update(overrides)
    return CompletedCall(**fields)


@pytest.fixture
def call_factory() -> MakeCall:
    return make_call


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
