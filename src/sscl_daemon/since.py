"""``--since WHEN``: a moment given as a duration ago (``2h``) or as an ISO 8601 time.

Where it sits: at the top of the package, importing nothing of it, so the
``retry-dead`` command's option and the admin console's dead-letter filter read
WHEN the same way without the console importing the commands.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``2h`` / ``30m`` / ``7d`` ago, or an ISO 8601 time (UTC when no offset is given)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(value.strip())
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither a duration (30m, 2h, 7d) nor an ISO time (2026-01-31T08:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
