"""Call-log records -> `CompletedCall`s, the same ones the tracker makes from live events.

Pure (no I/O, no clock): `reconcile.py` and `backfill.py` fetch the records and call
`calls_from_records`. The keys must equal the live ones so the outbox logs a call seen both
ways once: `<telephonySessionId>:<extensionId>` per user who took part, and
`<telephonySessionId>:-` for an inbound call that reached nobody (abandoned in the IVR or a
queue). This module maps a read's records (transfers seen across them, the owner's attribution of
a call nobody answered); `calllog_record.py` makes one record's calls from the legs that
`calllog_legs.py` reads.

How a Detailed record reads (research/rc-protocol.md C3; the leg layout per flow follows the
developer guide's call-log "details" page and the API reference's `CallLogRecordLegInfo`):

* every user leg (`legs[].extension.id` of a `User` extension) is that user's part; a user
  with several legs (an `Accept` leg plus the `PstnToSip` carrier leg) is one call;
* the leg `result` says what happened to the user: `Accepted`/`Call connected` answered,
  `Missed`/`No Answer`/`Hang Up` missed, `Voicemail`, `Busy`, `Rejected`;
* a user who answered transferred the call when one of their legs names a `transferTarget`
  (warm transfer: the session the call went on in), when a `TransferCall` leg of another
  user follows (blind transfer), or when a consult record (first leg that user's
  `ExtensionToExtension` call, then a `TransferCall` leg from the same outside number) is in
  the same read and names this session as its `transferee` (one naming none: when it started
  during the call);
* the leg direction and which side carries no `extensionId` give the call's direction and the
  outside number; both sides being extensions makes it internal;
* an inbound record with no user leg at all is an abandoned call;
* a queue delivery names the caller "<queue name> - <caller id>" (as the live events do,
  rc-protocol.md B3): the prefix is the queue's name, not part of the caller's.

What a record cannot say: a leg has a start and a duration, not the moment the user
answered nor their hold time (the documented example's `Accept` leg starts with the call
and lasts as long). So for a user who answered, the answer time is taken as the start of
their leg, ring time as the wait before it, talk time as the rest of the leg and hold as 0,
and those four fields are listed in `CompletedCall.approximate`; when live events of the
call were seen, `merge.with_live` puts their exact figures in. Missed, voicemail, busy and
abandoned calls have no talk: their figures are exact.

Without a directory, `PstnToSip` legs (the carrier leg, which names the IVR or queue on a
routed call) never make a user of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import CallResult, CallSource, CompletedCall, idempotency_key
from sscl_daemon.ringcentral.calllog_legs import (
    TRANSFER_LEG,
    Consults,
    consult_transfers,
    duration_ms,
    parse_time,
    user_parts,
    warm_targets,
)
from sscl_daemon.ringcentral.calllog_record import RecordCalls
from sscl_daemon.ringcentral.records import CallLogRecord
from sscl_daemon.ringcentral.records import RecordError as RecordError


def calls_from_records(
    records: Sequence[CallLogRecord],
    account_id: str,
    directory: Directory | None = None,
    *,
    source: CallSource = CallSource.CALL_LOG,
    missed_owner: str | None = None,
) -> tuple[list[CompletedCall], list[RecordError]]:
    """Every call log the records describe, and the records that could not be read (each a
    `RecordError` with the record's bytes, which the reconciler keeps as a dead letter).

    `missed_owner` (an extension number) is the policy's "owner" attribution: a call nobody
    answered gets one missed log for that extension instead of one per user it rang.
    """
    consults = consult_transfers(records)
    targets = warm_targets(records)
    calls: list[CompletedCall] = []
    errors: list[RecordError] = []
    for record in records:
        try:
            made = _calls_of(record, account_id, directory, consults, targets, source)
            if missed_owner is not None:
                made = _owner_attribution(made, missed_owner, directory)
            calls.extend(call for call, _ in made)
        except RecordError as exc:
            errors.append(RecordError(exc.reason, msgspec.json.encode(record)))
        except Exception as exc:
            # A record the mapping cannot handle (a bug, or an input nobody foresaw) must
            # cost that record, not the read: the others of the page are logged.
            reason = f"call-log record {record.id} could not be mapped: {exc!r}"
            errors.append(RecordError(reason, msgspec.json.encode(record)))
    return calls, errors


def _calls_of(
    record: CallLogRecord,
    account_id: str,
    directory: Directory | None,
    consults: Consults,
    targets: dict[str, str],
    source: CallSource,
) -> list[tuple[CompletedCall, bool]]:
    """The record's calls, each with whether the user was rung (rather than placed it)."""
    record_id = str(record.id)
    tsid = record.telephonySessionId
    if not tsid:
        raise RecordError(f"call-log record {record_id} has no telephonySessionId")
    start = parse_time(record.startTime, record_id, "startTime")
    if account_id == "~":
        # "~" is the caller's own account: the record names its real id.
        account_id = record.account_id or account_id
    total_ms = duration_ms(record.durationMs, record.duration)
    base = RecordCalls(
        record, record_id, tsid, start, total_ms, account_id, directory, source, targets.get(tsid)
    )
    parts = user_parts(record, directory)
    if not parts:
        if (record.direction or "").lower() != "inbound":
            return []
        return [(base.abandoned(), True)]
    calls: list[tuple[CompletedCall, bool]] = []
    for index, part in enumerate(parts):
        later_transfer = any(
            (leg.legType or "").lower() == TRANSFER_LEG
            for p in parts[index + 1 :]
            for leg in p.legs
        )
        call = base.user_call(part, later_transfer, consults)
        if call is not None:
            rang = (part.legs[0].direction or "").lower() == "inbound"
            calls.append((call, rang))
    return calls


def _owner_attribution(
    calls: list[tuple[CompletedCall, bool]], owner_number: str, directory: Directory | None
) -> list[tuple[CompletedCall, bool]]:
    """Nobody answered an inbound call: one missed log for the owner instead of one per user."""
    if any(not rang for _, rang in calls):
        return calls  # a user placed this call: not a call that nobody answered
    results = {call.result for call, _ in calls}
    if results & {CallResult.ANSWERED, CallResult.TRANSFERRED, CallResult.VOICEMAIL}:
        return calls
    missed = [call for call, _ in calls if call.result is CallResult.MISSED]
    if not missed:
        return calls
    owner = directory.by_number(owner_number) if directory is not None else None
    first = missed[0]
    merged = msgspec.structs.replace(
        first,
        key=idempotency_key(first.telephony_session_id, owner.id if owner else None),
        extension_id=owner.id if owner else None,
        extension_number=owner_number,
        user_name=owner.name if owner else None,
        user_email=owner.email if owner else None,
        user_timezone=owner.timezone if owner else None,
        start_time=first.start_time,
        end_time=max(call.end_time for call in missed),
    )
    rest = [(call, rang) for call, rang in calls if call.result is not CallResult.MISSED]
    return [*rest, (merged, True)]
