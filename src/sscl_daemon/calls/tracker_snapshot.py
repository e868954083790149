"""The tracker's saved form: what a checkpoint stores of it, and how it is read back.

Where it sits: :meth:`~sscl_daemon.calls.tracker.Tracker.snapshot` writes the in-flight
sessions (in their compact form, :class:`~sscl_daemon.calls.state.SessionSnapshot`), the
recently finished session ids, the counters and the daemon's own ``extra`` as msgpack;
the daemon stores the bytes with its checkpoint, and after a restart
:meth:`~sscl_daemon.calls.tracker.Tracker.restore` reads them back with
:func:`decode_snapshot`, which refuses bytes it cannot trust with :class:`SnapshotError`.
"""

from __future__ import annotations

import msgspec

from sscl_daemon.calls.state import SessionSnapshot
from sscl_daemon.errors import SsclError

SNAPSHOT_VERSION = 1


class SnapshotError(SsclError, ValueError):
    """A saved tracker snapshot that cannot be read back (corrupt, or another version)."""


class TrackerSnapshot(msgspec.Struct, frozen=True):
    version: int
    clock_ms: int
    sessions: tuple[SessionSnapshot, ...]
    finished: tuple[str, ...]
    counters: dict[str, int]
    # What the daemon keeps with the tracker's state (the sessions waiting for the call
    # log, calls/settling.py); empty in snapshots of versions before it.
    extra: bytes = b""


def decode_snapshot(data: bytes) -> TrackerSnapshot:
    """Read a saved snapshot back; raise :class:`SnapshotError` if it is unusable."""
    try:
        snap = msgspec.msgpack.decode(data, type=TrackerSnapshot)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"tracker snapshot cannot be decoded: {exc}") from None
    if snap.version != SNAPSHOT_VERSION:
        raise SnapshotError(f"tracker snapshot version {snap.version} is not supported")
    return snap
