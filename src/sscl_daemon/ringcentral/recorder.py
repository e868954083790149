"""Evidence for ``sscl-daemon replay``: the raw notifications the daemon receives, on disk.

Off unless ``[ringcentral] record_notifications`` names a file. The ingest
pipeline hands every telephony-session notification it receives (the raw
webhook envelope, before decoding) to :meth:`NotificationRecorder.write`,
which appends it as one line: exactly a line ``replay`` reads. Nothing else
goes in: the WebSocket frame header (where the ``wsc`` recovery token
travels) is not part of the envelope, and an envelope holds no access token,
so the file carries call data but no secret. It is created private to the
service (0600), like everything else in the state directory.

The file is capped: when the next line would take it past its share of
``record_max_mb``, it is renamed ``FILE.1`` (``FILE.1`` to ``FILE.2``, ...)
and a new one is started; the oldest of the :data:`GENERATIONS` files is
dropped. ``sscl-daemon replay FILE.4 FILE.3 FILE.2 FILE.1 FILE`` replays
them oldest first.

Beside it, each extension list the daemon loads is kept as
``NAME.extensions.json`` (:func:`directory_path`, replaced whole each time),
the ``--directory`` that lets ``replay`` tell users from queues and IVR menus
as the daemon did.

Writes are synchronous and unbuffered (one ``write`` per notification), so
the file is complete up to the last event even if the process is killed.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from sscl_daemon.config import RingCentralSettings

log = structlog.get_logger(__name__)

# The live file plus this many rotated ones share the size cap.
GENERATIONS = 5
_NEWLINES = bytes.maketrans(b"\r\n", b"  ")


def rotated(path: Path, generation: int) -> Path:
    """``FILE`` for generation 0, ``FILE.N`` for the N-th older one."""
    return path if generation == 0 else path.with_name(f"{path.name}.{generation}")


def _private(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


def directory_path(path: Path) -> Path:
    """Where the extension list is kept beside the recording ``path``."""
    return path.with_suffix(".extensions.json")


def oldest_first(path: Path) -> list[Path]:
    """The recorded files that exist, in the order ``replay`` should read them."""
    return [p for p in (rotated(path, g) for g in range(GENERATIONS - 1, -1, -1)) if p.exists()]


def open_recorder(state_dir: Path, settings: RingCentralSettings) -> NotificationRecorder | None:
    """The recorder ``settings`` ask for (None when off or when the file cannot be opened).

    Recording is a debugging aid: a file it cannot open is an error line, not a
    reason to stop logging calls.
    """
    if not settings.record_notifications:
        return None
    path = state_dir / settings.record_notifications
    try:
        recorder = NotificationRecorder(path, settings.record_max_mb * 1024 * 1024)
    except OSError as exc:
        log.error("ringcentral.recorder.open_failed", path=str(path), error=exc.strerror)
        return None
    log.info("ringcentral.recorder.started", path=str(path), max_mb=settings.record_max_mb)
    return recorder


class NotificationRecorder:
    """Appends raw notification envelopes, one per line, to a size-capped rotating file."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        if max_bytes < GENERATIONS:
            raise ValueError(f"max_bytes must be at least {GENERATIONS}")
        self.path = path
        # Each file gets an equal share, so the whole set stays within max_bytes.
        self._file_bytes = max_bytes // GENERATIONS
        self._fd = -1
        self._size = 0
        self._failed = False
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size

    def write(self, envelope: bytes) -> None:
        """Record one notification; a disk problem is logged once and never stops ingest."""
        if self._fd < 0:
            return
        # JSON strings hold no raw line breaks, so any is whitespace between tokens.
        line = envelope.translate(_NEWLINES) + b"\n"
        try:
            if self._size and self._size + len(line) > self._file_bytes:
                self._rotate()
            os.write(self._fd, line)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.error(
                    "ringcentral.recorder.write_failed",
                    path=str(self.path),
                    error=exc.strerror,
                    hint="notifications are no longer recorded; logging goes on",
                )
            return
        self._size += len(line)

    def keep_directory(self, records: bytes) -> None:
        """Keep the extension list (its JSON records) for replay; failures are logged only."""
        target = directory_path(self.path)
        temporary = target.with_name(f".{target.name}.tmp")
        try:
            with open(temporary, "wb", opener=_private) as handle:
                handle.write(records)
            temporary.replace(target)
        except OSError as exc:
            log.warning(
                "ringcentral.recorder.directory_failed", path=str(target), error=exc.strerror
            )

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        for generation in range(GENERATIONS - 1, 0, -1):
            older = rotated(self.path, generation - 1)
            if older.exists():
                older.replace(rotated(self.path, generation))
        self._open()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()
