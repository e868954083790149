"""The chaos soak's short form: 90 s of faults, no call lost (issue 19).

Runs ``benchmarks/soak.py`` in-process: the real daemon (``sscl-daemon run`` with its
embedded PostgreSQL) under a systemd-like supervisor, a fault every 6-10 s (about one of
each kind), a misbehaving webhook receiver, then a comparison with the simulator's ground
truth. The long form is
``.venv/bin/python benchmarks/soak.py --minutes 15 --seed 1`` (README, "Measured
performance").
"""

from __future__ import annotations

import pytest
from benchmarks.soak import Options, soak

SHORT = Options(
    minutes=1.5,
    seed=1,
    rate=2.0,
    fault_min=6.0,
    fault_max=10.0,
    call_log_delay=5.0,
    settle=240.0,
)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_short_chaos_soak_loses_no_call() -> None:
    result, text = soak(SHORT)
    print(text)
    assert result.expected > 100, text
    assert result.missing == [], text
    assert result.duplicated == [], text
    assert result.unexpected == [], text
