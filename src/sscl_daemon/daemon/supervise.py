"""Supervision of the daemon's long-running tasks (their backoff is :mod:`sscl_daemon.backoff`).

A supervised task that crashes is logged, counted and started again after
a jittered exponential delay; the delay starts over once the task has run
long enough to count as healthy. An exception of a "fatal" type (bad
credentials: restarting cannot heal it) is not retried: it ends the task
group, and the daemon exits non-zero with the message.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sscl_daemon import metrics
from sscl_daemon.backoff import backoff_delay
from sscl_daemon.errors import SsclError
from sscl_daemon.logging import get_logger

log = get_logger(__name__)


class FatalError(SsclError):
    """A failure that restarting cannot heal; the daemon stops with this message."""


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    # A run at least this long resets the delay to ``initial``.
    healthy_after: float = 60.0


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    backoff: Backoff = Backoff(),
    fatal: tuple[type[BaseException], ...] = (),
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``run()`` until it returns; restart it after a crash, raise on a fatal error."""
    rng = rng or random.Random()
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        started = loop.time()
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except fatal as exc:
            log.error("daemon.task.unrecoverable", task=name, error=str(exc))
            raise FatalError(f"{name}: {exc}") from exc
        except FatalError:
            raise
        except Exception as exc:
            failures = 1 if loop.time() - started >= backoff.healthy_after else failures + 1
            delay = backoff_delay(failures, backoff.initial, backoff.maximum, rng)
            metrics.TASK_RESTARTS.labels(task=name).inc()
            log.error(
                "daemon.task.restarting",
                task=name,
                error=repr(exc),
                restart_in=round(delay, 3),
                failures=failures,
                exc_info=exc,
            )
            await sleep(delay)
