"""Load generator: when calls start, for the simulator's `--calls-per-second` knob.

Feeds the engine: it asks `calls_between(t0, t1)` for consecutive windows and plays what it
gets. Arrivals are a Poisson process at `calls_per_second`, drawn per wall-clock second from
its own seeded generator, and each call is made by `CallFactory.make(start, salt=...)`, so the
calls of a time range do not depend on how it is cut into windows. With `max_concurrent`, an
arrival that finds that many calls still going is turned away (counted in `turned_away`),
as a full trunk would refuse it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime

from sscl_daemon.simulator.scenarios import CallFactory, SimCall


class Traffic:
    """Deterministic stream of call starts from `seed`, at `calls_per_second` on average."""

    def __init__(
        self,
        factory: CallFactory,
        calls_per_second: float,
        seed: int,
        max_concurrent: int | None = None,
    ) -> None:
        if not calls_per_second > 0 or math.isinf(calls_per_second):
            raise ValueError(f"calls_per_second={calls_per_second}: must be a positive number")
        if max_concurrent is not None and max_concurrent < 1:
            raise ValueError(f"max_concurrent={max_concurrent}: must be at least 1 (or None)")
        self.factory = factory
        self.calls_per_second = calls_per_second
        self.seed = seed
        self.max_concurrent = max_concurrent
        self.turned_away = 0
        self._cursor_ms: int | None = None
        self._ends: list[int] = []  # heap of end times (epoch ms) of the calls still going

    def calls_between(self, t0: datetime, t1: datetime) -> list[SimCall]:
        """The calls starting in [t0, t1), in start order. Windows must not go back in time;
        a window that starts after the previous one ended skips the calls in between."""
        t0_ms, t1_ms = _ms(t0), _ms(t1)
        cursor = t0_ms if self._cursor_ms is None else self._cursor_ms
        if t0_ms < cursor:
            raise ValueError(
                f"window starts at {t0.isoformat()}, before the end of the previous one; "
                "ask for consecutive windows"
            )
        calls: list[SimCall] = []
        limit = self.max_concurrent
        for start_ms, salt in self._arrivals(cursor, t1_ms):
            if start_ms < t0_ms and limit is None:
                continue
            if limit is not None:
                while self._ends and self._ends[0] <= start_ms:
                    heapq.heappop(self._ends)
                if len(self._ends) >= limit:
                    self.turned_away += 1
                    continue
            call = self.factory.make(datetime.fromtimestamp(start_ms / 1000, UTC), salt=salt)
            if limit is not None:
                heapq.heappush(self._ends, start_ms + call.end_offset_ms)
            if start_ms >= t0_ms:
                calls.append(call)
        self._cursor_ms = max(cursor, t1_ms)
        return calls

    def _arrivals(self, from_ms: int, to_ms: int) -> Iterator[tuple[int, int]]:
        """(start in epoch ms, salt) of every arrival in [from_ms, to_ms), in order."""
        rate = self.calls_per_second
        for second in range(from_ms // 1000, -(-to_ms // 1000)):
            rng = random.Random(f"traffic:{self.seed}:{second}")
            offset = rng.expovariate(rate)
            index = 0
            while offset < 1.0:
                start_ms = second * 1000 + int(offset * 1000)
                if from_ms <= start_ms < to_ms:
                    yield start_ms, index
                index += 1
                offset += rng.expovariate(rate)


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()}: give a timezone-aware (UTC) datetime")
    return int(moment.timestamp() * 1000)
