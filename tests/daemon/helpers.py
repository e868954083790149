"""Shared test data for the daemon tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction


def make_call(
    n: int, *, end: datetime | None = None, number: str = "+15105550100"
) -> CompletedCall:
    end = end or datetime(2026, 1, 5, 10, 0, tzinfo=UTC) + timedelta(minutes=n)
    start = end - timedelta(seconds=65)
    return CompletedCall(
        key=f"s-{n}:ext-1",
        telephony_session_id=f"s-{n}",
        session_id=f"{n}",
        account_id="acc-1",
        extension_id="ext-1",
        extension_number="101",
        user_name="Ada Lovelace",
        user_email="ada@example.com",
        direction=Direction.INBOUND,
        external_number=number,
        external_name=None,
        internal_number=None,
        result=CallResult.ANSWERED,
        start_time=start,
        answer_time=start + timedelta(seconds=5),
        end_time=end,
        ring_ms=5000,
        queue_ms=0,
        talk_ms=60000,
        hold_ms=0,
        total_ms=65000,
    )


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], within: float = 10.0, what: str = ""
) -> None:
    """Poll a condition until it holds; fail after ``within`` seconds (never a bare sleep)."""
    try:
        async with asyncio.timeout(within):
            while True:
                value = predicate()
                if value if isinstance(value, bool) else await value:
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"condition not met within {within} s: {what or predicate}") from None
