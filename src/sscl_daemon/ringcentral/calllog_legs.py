"""One call-log record's legs read: which user took part, what each leg says
(``ringcentral/calllog.py`` -> here; pure, no I/O, no clock).

The leg ``result`` as a :class:`CallResult`, times and durations, the users' parts of a
record (their legs grouped), a leg's direction and other side, and the transfers a read's
records show between them (consult calls, warm-transfer targets). The module docstring of
``ringcentral/calllog.py`` says how a Detailed record reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import CallResult, Direction
from sscl_daemon.ringcentral.records import (
    CallerInfo,
    CallLogLeg,
    CallLogRecord,
    RecordError,
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
CARRIER_LEG = "pstntosip"
TRANSFER_LEG = "transfercall"
CONSULT_LEG = "extensiontoextension"


@dataclass(frozen=True)
class UserPart:
    """One user's legs of a record, in record order (an ``Accept`` leg and the carrier leg
    of the same user are one call)."""

    extension_id: str
    legs: tuple[CallLogLeg, ...]


def parse_time(value: str | None, record_id: str, field: str, raw: bytes = b"") -> datetime:
    """A record's time; ``raw`` (the record's bytes, when known) goes into the error."""
    if not value:
        raise RecordError(f"call-log record {record_id} has no {field}", raw)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(
            f"call-log record {record_id} has an unreadable {field}: {value!r}", raw
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def leg_result(leg: CallLogLeg) -> CallResult | None:
    """The user-level outcome of one leg; None when the leg gives the user nothing to log."""
    text = (leg.result or "").strip().lower()
    return _RESULTS.get(text, CallResult.MISSED if text else None)


def is_user(directory: Directory | None, ext_id: str, leg: CallLogLeg) -> bool:
    known = directory.is_user(ext_id) if directory is not None else None
    if known is not None:
        return known
    return (leg.legType or "").lower() != CARRIER_LEG


def user_parts(record: CallLogRecord, directory: Directory | None) -> list[UserPart]:
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
        if is_user(directory, ext_id, leg):
            users.add(ext_id)
    return [UserPart(ext_id, tuple(legs[ext_id])) for ext_id in order if ext_id in users]


def has_extension(side: CallerInfo | None) -> bool:
    return side is not None and as_id(side.extensionId) is not None


def leg_direction(leg: CallLogLeg) -> tuple[Direction, CallerInfo | None]:
    """Direction of a user's leg and the other side of it."""
    inbound = (leg.direction or "").lower() == "inbound"
    other = leg.from_ if inbound else leg.to
    if other is not None and not has_extension(other) and other.phoneNumber:
        return (Direction.INBOUND if inbound else Direction.OUTBOUND), other
    return Direction.INTERNAL, other


# (user, outside number) -> each consult call's start and the session it took the caller
# from, when its TransferCall leg names it (`transferee`).
Consults = dict[tuple[str, str], list[tuple[datetime, str | None]]]


def consult_transfers(records: Iterable[CallLogRecord]) -> Consults:
    """Warm transfers: (user, outside number) -> the consult calls (start, session taken over)."""
    found: Consults = {}
    for record in records:
        if not record.legs:
            continue
        first = record.legs[0]
        user = as_id(first.extension.id if first.extension else None)
        if user is None or (first.legType or "").lower() != CONSULT_LEG:
            continue
        for leg in record.legs[1:]:
            caller = leg.from_
            is_transfer = (leg.legType or "").lower() == TRANSFER_LEG
            if is_transfer and caller and caller.phoneNumber and not has_extension(caller):
                try:
                    started = parse_time(record.startTime, str(record.id), "startTime")
                except RecordError:
                    continue
                origin = leg.transferee.telephonySessionId if leg.transferee else None
                found.setdefault((user, caller.phoneNumber), []).append((started, as_id(origin)))
    return found


def warm_targets(records: Iterable[CallLogRecord]) -> dict[str, str]:
    """Warm transfers: the session a call came from -> the extension that took it over."""
    found: dict[str, str] = {}
    for record in records:
        for leg in record.legs:
            origin = leg.transferee.telephonySessionId if leg.transferee else None
            target = leg.to.extensionNumber if leg.to else None
            if origin and target:
                found.setdefault(origin, target)
    return found


def duration_ms(ms: int | None, seconds: float | None) -> int:
    if ms is not None:
        return max(0, ms)
    return max(0, round((seconds or 0) * 1000))


def ms_between(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))
