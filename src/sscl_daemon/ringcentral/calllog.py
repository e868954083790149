"""Call-log records -> `CompletedCall`s, the same ones the tracker makes from live events.

Pure (no I/O, no clock): `reconcile.py` and `backfill.py` fetch the records and call
`calls_from_records`. The keys must equal the live ones so the outbox logs a call seen both
ways once: `<telephonySessionId>:<extensionId>` per user who took part, and
`<telephonySessionId>:-` for an inbound call that reached nobody (abandoned in the IVR or a
queue).

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
  the same read;
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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import (
    CallResult,
    CallSource,
    CompletedCall,
    Direction,
    ExtensionType,
    idempotency_key,
)
from sscl_daemon.calls.numbers import looks_like_extension
from sscl_daemon.errors import SsclError
from sscl_daemon.ringcentral.records import (
    CallerInfo,
    CallLogLeg,
    CallLogRecord,
    SessionRef,
    as_id,
)

_RESULTS: dict[str, CallResult | None] = {
    "accepted": CallResult.ANSWERED,
    "call connected": CallResult.ANSWERED,
    "answered": CallResult.ANSWERED,
    "connected": CallResult.ANSWERED,
    "missed": CallResult.MISSED,
    "no answer": CallResult.MISSED,
    "hang up": CallResult.MISSED,
    "declined": CallResult.REJECTED,
    "rejected": CallResult.REJECTED,
    "busy": CallResult.BUSY,
    "voicemail": CallResult.VOICEMAIL,
    # another device or user took the call: that user has nothing of their own to log
    "answered elsewhere": None,
}
# What a record cannot tell of an answered call (see the module docstring).
_ANSWER_ESTIMATES = ("answer_time", "ring_ms", "talk_ms", "hold_ms")
_CARRIER_LEG = "pstntosip"
_TRANSFER_LEG = "transfercall"
_CONSULT_LEG = "extensiontoextension"


_QUEUE_SEPARATOR = " - "


class RecordError(SsclError, ValueError):
    """A call-log record the mapping cannot use (names the record and the field)."""


@dataclass(frozen=True)
class _UserPart:
    extension_id: str
    legs: tuple[CallLogLeg, ...]


def parse_time(value: str | None, record_id: str, field: str) -> datetime:
    if not value:
        raise RecordError(f"call-log record {record_id} has no {field}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(
            f"call-log record {record_id} has an unreadable {field}: {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def leg_result(leg: CallLogLeg) -> CallResult | None:
    """The user-level outcome of one leg; None when the leg gives the user nothing to log."""
    text = (leg.result or "").strip().lower()
    return _RESULTS.get(text, CallResult.MISSED if text else None)


def _is_user(directory: Directory | None, ext_id: str, leg: CallLogLeg) -> bool:
    known = directory.is_user(ext_id) if directory is not None else None
    if known is not None:
        return known
    return (leg.legType or "").lower() != _CARRIER_LEG


def _user_parts(record: CallLogRecord, directory: Directory | None) -> list[_UserPart]:
    order: list[str] = []
    legs: dict[str, list[CallLogLeg]] = {}
    users: set[str] = set()
    for leg in record.legs:
        ext_id = as_id(leg.extension.id if leg.extension else None)
        if ext_id is None:
            continue
        if ext_id not in legs:
            order.append(ext_id)
            legs[ext_id] = []
        legs[ext_id].append(leg)
        if _is_user(directory, ext_id, leg):
            users.add(ext_id)
    return [_UserPart(ext_id, tuple(legs[ext_id])) for ext_id in order if ext_id in users]


def _has_extension(side: CallerInfo | None) -> bool:
    return side is not None and as_id(side.extensionId) is not None


def _direction(leg: CallLogLeg) -> tuple[Direction, CallerInfo | None]:
    """Direction of a user's leg and the other side of it."""
    inbound = (leg.direction or "").lower() == "inbound"
    other = leg.from_ if inbound else leg.to
    if other is not None and not _has_extension(other) and other.phoneNumber:
        return (Direction.INBOUND if inbound else Direction.OUTBOUND), other
    return Direction.INTERNAL, other


Consults = dict[tuple[str, str], list[datetime]]


def _consult_transfers(records: Iterable[CallLogRecord]) -> Consults:
    """Warm transfers: (user, outside number) -> start times of the consult calls."""
    found: Consults = {}
    for record in records:
        if not record.legs:
            continue
        first = record.legs[0]
        user = as_id(first.extension.id if first.extension else None)
        if user is None or (first.legType or "").lower() != _CONSULT_LEG:
            continue
        for leg in record.legs[1:]:
            caller = leg.from_
            is_transfer = (leg.legType or "").lower() == _TRANSFER_LEG
            if is_transfer and caller and caller.phoneNumber and not _has_extension(caller):
                try:
                    started = parse_time(record.startTime, str(record.id), "startTime")
                except RecordError:
                    continue
                found.setdefault((user, caller.phoneNumber), []).append(started)
    return found


def _warm_targets(records: Iterable[CallLogRecord]) -> dict[str, str]:
    """Warm transfers: the session a call came from -> the extension that took it over."""
    found: dict[str, str] = {}
    for record in records:
        for leg in record.legs:
            origin = leg.transferee.telephonySessionId if leg.transferee else None
            target = leg.to.extensionNumber if leg.to else None
            if origin and target:
                found.setdefault(origin, target)
    return found


def calls_from_records(
    records: Sequence[CallLogRecord],
    account_id: str,
    directory: Directory | None = None,
    *,
    source: CallSource = CallSource.CALL_LOG,
    missed_owner: str | None = None,
) -> tuple[list[CompletedCall], list[RecordError]]:
    """Every call log the records describe, and the records that could not be read.

    `missed_owner` (an extension number) is the policy's "owner" attribution: a call nobody
    answered gets one missed log for that extension instead of one per user it rang.
    """
    consults = _consult_transfers(records)
    targets = _warm_targets(records)
    calls: list[CompletedCall] = []
    errors: list[RecordError] = []
    for record in records:
        try:
            made = _calls_of(record, account_id, directory, consults, targets, source)
            if missed_owner is not None:
                made = _owner_attribution(made, missed_owner, directory)
            calls.extend(call for call, _ in made)
        except RecordError as exc:
            errors.append(exc)
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
    total_ms = _duration_ms(record.durationMs, record.duration)
    base = _Base(
        record, record_id, tsid, start, total_ms, account_id, directory, source, targets.get(tsid)
    )
    parts = _user_parts(record, directory)
    if not parts:
        if (record.direction or "").lower() != "inbound":
            return []
        return [(base.abandoned(), True)]
    calls: list[tuple[CompletedCall, bool]] = []
    for index, part in enumerate(parts):
        later_transfer = any(
            (leg.legType or "").lower() == _TRANSFER_LEG
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


def _duration_ms(ms: int | None, seconds: float | None) -> int:
    if ms is not None:
        return max(0, ms)
    return max(0, round((seconds or 0) * 1000))


@dataclass(frozen=True)
class _Base:
    record: CallLogRecord
    record_id: str
    tsid: str
    start: datetime
    total_ms: int
    account_id: str
    directory: Directory | None
    source: CallSource
    # The extension a warm transfer of this session went to, from the other session's record.
    warm_target: str | None = None

    def _participants(self) -> tuple[str, ...]:
        numbers: list[str] = []
        for leg in self.record.legs:
            for side in (leg.from_, leg.to):
                if (
                    side is not None
                    and side.extensionNumber
                    and side.extensionNumber not in numbers
                ):
                    numbers.append(side.extensionNumber)
        return tuple(numbers)

    def abandoned(self) -> CompletedCall:
        caller = self.record.from_
        _, caller_name = self._split_queue_prefix(caller.name if caller else None)
        return CompletedCall(
            key=idempotency_key(self.tsid, None),
            telephony_session_id=self.tsid,
            session_id=as_id(self.record.sessionId),
            account_id=self.account_id,
            extension_id=None,
            extension_number=None,
            user_name=None,
            user_email=None,
            direction=Direction.INBOUND,
            external_number=caller.phoneNumber if caller else None,
            external_name=caller_name,
            internal_number=None,
            result=CallResult.ABANDONED,
            start_time=self.start,
            answer_time=None,
            end_time=self.start + timedelta(milliseconds=self.total_ms),
            ring_ms=self.total_ms,
            queue_ms=self.total_ms,
            talk_ms=0,
            hold_ms=0,
            total_ms=self.total_ms,
            queue_name=self._queue_name(),
            final_status=self.record.result,
            source=self.source,
            participants=self._participants(),
        )

    def _queue_name(self) -> str | None:
        """The call queue the call went through: a `Department` leg, else a name prefix."""
        if self.directory is not None:
            for leg in self.record.legs:
                ext = self.directory.by_id(as_id(leg.extension.id if leg.extension else None))
                if ext is not None and ext.type is ExtensionType.DEPARTMENT:
                    return ext.name
        for leg in self.record.legs:
            queue, _ = self._split_queue_prefix(leg.from_.name if leg.from_ else None)
            if queue is not None:
                return queue
        return None

    def _split_queue_prefix(self, name: str | None) -> tuple[str | None, str | None]:
        """("<queue>", "<caller id>") of a queue delivery's "<queue> - <caller id>" name.

        Only a prefix that names a call queue or a party of this record counts, or one whose
        rest is the caller's name as the record itself gives it (a caller id may hold " - ").
        """
        if not name or _QUEUE_SEPARATOR not in name:
            return None, name
        names = self._party_names()
        caller = self.record.from_.name if self.record.from_ else None
        head = name
        while _QUEUE_SEPARATOR in head:
            head = head.rsplit(_QUEUE_SEPARATOR, 1)[0]
            rest = name[len(head) + len(_QUEUE_SEPARATOR) :]
            if head in names or (caller and rest == caller):
                return head, rest
        return None, name

    def _party_names(self) -> set[str]:
        names: set[str] = set()
        for side in (self.record.to, *(leg.to for leg in self.record.legs)):
            if side is not None and side.name:
                names.add(side.name)
        if self.directory is not None:
            names.update(self.directory.queue_names)
        return names

    def _consulted(
        self, user: str, external: str | None, end: datetime, consults: Consults
    ) -> bool:
        """The user made a consult call during this call that took this caller over."""
        if external is None:
            return False
        return any(self.start <= at <= end for at in consults.get((user, external), ()))

    def user_call(
        self, part: _UserPart, later_transfer: bool, consults: Consults
    ) -> CompletedCall | None:
        results = [leg_result(leg) for leg in part.legs]
        if CallResult.ANSWERED in results:
            result: CallResult | None = CallResult.ANSWERED
        else:
            result = results[0]
        if result is None:
            return None
        main = part.legs[0]
        direction, other = _direction(main)
        external = (
            other.phoneNumber if other is not None and direction is not Direction.INTERNAL else None
        )
        leg_start = (
            parse_time(main.startTime, self.record_id, "legs[].startTime")
            if main.startTime
            else self.start
        )
        leg_ms = _duration_ms(main.durationMs, main.duration)
        end = max(leg_start + timedelta(milliseconds=leg_ms), self.start)
        leg_start = min(max(leg_start, self.start), end)
        warm = next((leg.transferTarget for leg in part.legs if leg.transferTarget), None)
        if result is CallResult.ANSWERED and (
            warm is not None
            or later_transfer
            or (
                direction is Direction.INBOUND
                and self._consulted(part.extension_id, external, end, consults)
            )
        ):
            result = CallResult.TRANSFERRED
        total = _ms_between(self.start, end)
        wait = _ms_between(self.start, leg_start)
        answered = result in (CallResult.ANSWERED, CallResult.TRANSFERRED)
        ext = self.directory.by_id(part.extension_id) if self.directory else None
        own = main.to if (main.direction or "").lower() == "inbound" else main.from_
        recordings = tuple(
            dict.fromkeys(
                str(leg.recording.id) for leg in part.legs if leg.recording and leg.recording.id
            )
        )
        queue_name = self._queue_name()
        _, caller_name = self._split_queue_prefix(other.name if other is not None else None)
        return CompletedCall(
            key=idempotency_key(self.tsid, part.extension_id),
            telephony_session_id=self.tsid,
            session_id=as_id(self.record.sessionId),
            account_id=self.account_id,
            extension_id=part.extension_id,
            extension_number=(ext.extension_number if ext else None)
            or (own.extensionNumber if own else None),
            user_name=(ext.name if ext else None) or (own.name if own else None),
            user_email=ext.email if ext else None,
            user_timezone=ext.timezone if ext else None,
            direction=direction,
            external_number=external,
            external_name=caller_name if external is not None else None,
            own_number=own.phoneNumber if own else None,
            internal_number=self._internal_number(other)
            if direction is Direction.INTERNAL
            else None,
            result=result,
            start_time=self.start,
            answer_time=leg_start if answered else None,
            end_time=end,
            ring_ms=wait if answered else total,
            queue_ms=wait,
            talk_ms=total - wait if answered else 0,
            hold_ms=0,
            total_ms=total,
            recording_ids=recordings,
            transferred_to=self._transfer_target(part, warm)
            if result is CallResult.TRANSFERRED
            else None,
            queue_name=queue_name,
            final_status=main.result,
            source=self.source,
            approximate=_ANSWER_ESTIMATES if answered else (),
            participants=self._participants(),
        )

    def _internal_number(self, other: CallerInfo | None) -> str | None:
        """The other extension's number: as the record gives it, else from the directory."""
        if other is None:
            return None
        if other.extensionNumber:
            return other.extensionNumber
        ext = self.directory.by_id(as_id(other.extensionId)) if self.directory else None
        if ext is not None and ext.extension_number:
            return ext.extension_number
        return other.phoneNumber if looks_like_extension(other.phoneNumber) else None

    def _transfer_target(self, part: _UserPart, warm: SessionRef | None) -> str | None:
        """Who took the call over, when the record names them (a later user's leg)."""
        if warm is not None:
            return self.warm_target  # named by the other session's record, if it was read
        later = False
        for leg in self.record.legs:
            ext_id = as_id(leg.extension.id if leg.extension else None)
            if ext_id == part.extension_id:
                later = True
                continue
            if later and (leg.legType or "").lower() == _TRANSFER_LEG and leg.to is not None:
                return leg.to.extensionNumber or leg.to.phoneNumber
        return None


def _ms_between(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))
