"""The daemon's private umask when several daemons share a process and end in any order.

Before, each run saved and restored the umask on its own: when the first daemon
started was the first to end, 0077 stayed for the rest of the process (the tests
that ran next made directories no other user could enter).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sscl_daemon.daemon.umask import PRIVATE_UMASK, PrivateUmask


def current_umask() -> int:
    before = os.umask(0)
    os.umask(before)
    return before


@pytest.fixture
def outer_umask() -> Iterator[int]:
    before = os.umask(0o022)
    try:
        yield 0o022
    finally:
        os.umask(before)


def test_runs_ending_out_of_order_leave_the_umask_they_found(outer_umask: int) -> None:
    umask = PrivateUmask()
    first, second = umask.held(), umask.held()
    first.__enter__()
    second.__enter__()
    assert current_umask() == PRIVATE_UMASK
    first.__exit__(None, None, None)
    assert current_umask() == PRIVATE_UMASK  # the second daemon still runs
    second.__exit__(None, None, None)
    assert current_umask() == outer_umask


def test_a_run_that_fails_restores_the_umask(outer_umask: int) -> None:
    umask = PrivateUmask()
    seen: list[int] = []

    def failing_run() -> None:
        with umask.held():
            seen.append(current_umask())
            raise RuntimeError("the daemon failed")

    with pytest.raises(RuntimeError):
        failing_run()
    assert seen == [PRIVATE_UMASK]
    assert current_umask() == outer_umask
