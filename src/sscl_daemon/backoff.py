"""The retry delay shared by everything that tries again: doubling, jittered, capped.

Where it sits: at the top of the package, importing nothing of it, so both the
daemon's task supervisor (``daemon/supervise.py``) and the outbox dispatcher
(``dispatch.py``, whose retried rows wait this long) use it without either
package importing the other.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1-based): doubling, jittered, in [initial, maximum].

    Jitter takes the delay anywhere in the upper half of the doubling step, so
    many rows or tasks failing together spread out instead of retrying in step.
    """
    maximum = max(maximum, initial)
    step = initial * (2.0 ** min(max(attempt - 1, 0), 62))
    return min(maximum, max(initial, step * rng.uniform(0.5, 1.0)))
