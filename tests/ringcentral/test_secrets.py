"""No token of any kind reaches a log line, a repr or an error of the RingCentral client."""

from __future__ import annotations

import logging

import pytest
import structlog
from tests.ringcentral.harness import Calls, Pipeline, client, simulator, wait_for

from sscl_daemon.ringcentral.subscription import RecoveryPoint

# The simulator's access, refresh and ws tokens start with these.
TOKEN_PREFIXES = ("sim-at-", "sim-rt-", "sim-ws-")


async def test_tokens_stay_out_of_logs_and_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as captured:
        async with simulator() as sim, client(sim) as made, Pipeline(sim, made) as pipe:
            await pipe.streaming()
            calls = Calls(sim)
            calls.place(3)
            sim.expire_tokens()
            await sim.drop_websocket(abrupt=True)
            await pipe.logged(calls.expected())
            await wait_for(lambda: pipe.subscription.stats.recoveries == 1, "a recovery")
            texts = [
                repr(made.auth),
                repr(made.tokens),
                repr(pipe.points),
                repr(pipe.subscription.recovery_point),
                str(captured),
                caplog.text,
            ]
            wsc = pipe.points[-1].token
    assert wsc is not None
    assert isinstance(pipe.points[-1], RecoveryPoint)
    joined = "\n".join(texts)
    assert not any(prefix in joined for prefix in TOKEN_PREFIXES)
    assert wsc not in joined
    assert "access_token=[REDACTED]" in joined, "the handshake line is logged, redacted"
