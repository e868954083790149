"""The daemon's private umask, process-wide (``daemon/app.py`` -> here, around a run).

Every file a daemon makes (state, call data, recordings) is the service's alone, so a run
holds :data:`PRIVATE_UMASK`. Several daemons may share a process (the fleet and failover
tests) and end in any order: the umask is set by the first run of a process and restored by
the last, never by each on its own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

PRIVATE_UMASK = 0o077


class PrivateUmask:
    """:data:`PRIVATE_UMASK` while any daemon of this process runs, the previous one after.

    Each run saving and restoring its own would leave 0077 behind when the first one
    started ends first.
    """

    def __init__(self) -> None:
        self._holders = 0
        self._before = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._holders == 0:
            self._before = os.umask(PRIVATE_UMASK)
        self._holders += 1
        try:
            yield
        finally:
            self._holders -= 1
            if self._holders == 0:
                os.umask(self._before)


# The one of this process.
UMASK = PrivateUmask()
