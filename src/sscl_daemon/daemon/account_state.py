"""What an account's runner restores at its start and saves while it runs.

Where it sits: :class:`~sscl_daemon.daemon.accounts.AccountRunner` restores, before its
tasks start, the tracker's snapshot, the checkpoint (the downtime since it becomes the
startup gap, read from the call log once subscribed) and the WebSocket recovery point;
it saves the snapshot and the recovery point of the same moment on a timer and at a stop.
Also where the account's RingCentral tokens are kept (:func:`ringcentral_credential`; the
file :func:`refresh_token_path` is read once on upgrade). Writes carry the lease as
``fence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sscl_daemon.config import DEFAULT_ACCOUNT, AccountSettings
from sscl_daemon.daemon.pipeline import Pipeline
from sscl_daemon.logging import get_logger
from sscl_daemon.ringcentral.stream_items import DEFAULT_RECOVERY_WINDOW, RecoveryPoint
from sscl_daemon.store import DeadLetter, DeadLetterKind, Lease, Store
from sscl_daemon.store.credentials import credential_name

log = get_logger(__name__)

REFRESH_TOKEN_FILE = "ringcentral-refresh-token"


@dataclass(frozen=True)
class Restored:
    """What a start takes over from the last run besides the pipeline's own state."""

    # Where the downtime's gap starts (the checkpoint's last event), None: nothing to read.
    startup_gap_from: datetime | None
    # The pipeline hold keeping the checkpoint at the gap's start until it is read.
    startup_hold: int | None
    recovery: RecoveryPoint | None


async def restore_state(store: Store, account: str, pipeline: Pipeline) -> Restored:
    """Restore ``pipeline`` from the snapshot (dead-lettered if unusable) and checkpoint."""
    checkpoint = await store.load_checkpoint(account)
    snapshot = await store.load_snapshot(account)
    try:
        restored = pipeline.restore(snapshot, checkpoint)
    except ValueError as exc:
        log.error(
            "daemon.snapshot.dead_lettered",
            account=account,
            error=str(exc),
            hint="the in-flight snapshot cannot be restored; kept as a dead letter",
        )
        letter = DeadLetter(DeadLetterKind.SNAPSHOT, str(exc), snapshot or b"")
        await store.add_dead_letters(account, [letter])
        restored = pipeline.restore(None, checkpoint)
    # Events between the snapshot and the stop are gone from memory.
    pipeline.mark_suspects(pipeline.in_flight_sessions())
    gap_from: datetime | None = None
    hold: int | None = None
    if checkpoint is not None and checkpoint.last_event_time is not None:
        gap_from = checkpoint.last_event_time
        # Until the downtime is read from the call log, the checkpoint must not pass it.
        hold = pipeline.hold(checkpoint.last_event_time)
    recovery: RecoveryPoint | None = None
    token = await store.load_recovery_token(account)
    if token is not None:
        recovery = RecoveryPoint.from_stored(
            token.token,
            token.expires_at,
            token.oauth_session or None,
            DEFAULT_RECOVERY_WINDOW,
            sequence=token.sequence,
        )
    log.info(
        "daemon.state.restored",
        account=account,
        in_flight_sessions=restored,
        checkpoint=checkpoint.last_event_time.isoformat()
        if checkpoint and checkpoint.last_event_time
        else None,
        websocket_resume="possible" if token is not None else "no",
    )
    return Restored(gap_from, hold, recovery)


async def save_state(
    store: Store, account: str, lease: Lease, point: RecoveryPoint | None, pipeline: Pipeline
) -> None:
    """Snapshot and recovery point of the same moment, once its calls are committed."""

    async def save(data: bytes) -> None:
        await store.save_snapshot(account, data, fence=lease)
        if point is None:
            return
        if point.token is None:
            await store.clear_recovery_token(account)
        else:
            await store.save_recovery_token(
                account,
                point.token,
                point.expires_at,
                point.oauth_session or "",
                sequence=point.sequence,
                fence=lease,
            )

    await pipeline.snapshot(save)


def refresh_token_path(state_dir: Path, account: str) -> Path:
    """Where versions before the credentials table kept the refresh token (read on upgrade)."""
    if account == DEFAULT_ACCOUNT:
        return state_dir / REFRESH_TOKEN_FILE
    return state_dir / f"{REFRESH_TOKEN_FILE}-{account}"


def ringcentral_credential(account: AccountSettings, kind: str = "refresh_token") -> str:
    """The credentials-table name of the account's RingCentral ``kind`` of token: the
    refresh token, the access token or the WebSocket token (issue 19).

    Bound to the server, app and JWT user it was issued for: another login configuration
    starts a new session instead of resuming one of somebody else's.
    """
    rc = account.ringcentral
    return credential_name(f"ringcentral:{kind}", rc.server, rc.client_id, rc.jwt.reveal())
