"""The calls of one call-log record, as ``CompletedCall`` s (``ringcentral/calllog.py``
-> here; pure, no I/O, no clock).

:class:`RecordCalls` holds what a record says of the whole call (session, start, duration,
account, the directory) and makes each user's call log from their part, or the abandoned
call of an inbound record no user took. The module docstring of ``ringcentral/calllog.py``
says how a record reads and which figures are estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

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
from sscl_daemon.ringcentral.calllog_legs import (
    TRANSFER_LEG,
    Consults,
    UserPart,
    duration_ms,
    leg_direction,
    leg_result,
    ms_between,
    parse_time,
)
from sscl_daemon.ringcentral.records import CallerInfo, CallLogLeg, CallLogRecord, SessionRef, as_id

# What a record cannot tell of an answered call (see the module docstring of calllog.py).
ANSWER_ESTIMATES = ("answer_time", "ring_ms", "talk_ms", "hold_ms")
QUEUE_SEPARATOR = " - "


class _UserFields(TypedDict):
    """The fields of a ``CompletedCall`` that name the user and their own number."""

    extension_id: str
    extension_number: str | None
    user_name: str | None
    user_email: str | None
    user_timezone: str | None
    own_number: str | None


@dataclass(frozen=True)
class RecordCalls:
    """The calls of one call-log record: the abandoned call, or each user's part."""

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
        if not name or QUEUE_SEPARATOR not in name:
            return None, name
        names = self._party_names()
        caller = self.record.from_.name if self.record.from_ else None
        head = name
        while QUEUE_SEPARATOR in head:
            head = head.rsplit(QUEUE_SEPARATOR, 1)[0]
            rest = name[len(head) + len(QUEUE_SEPARATOR) :]
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
        """The user made a consult call that took this caller over from this call.

        A consult whose TransferCall leg names the session it came from (`transferee`) took
        over that session only: a user answers several calls from one outside number at
        once (a company's shared caller id), and a consult of another of them starting
        during this call is no transfer of this one (soak seed 13, issue 19). Only a consult
        naming no session is matched by time.
        """
        if external is None:
            return False
        return any(
            origin == self.tsid if origin is not None else self.start <= at <= end
            for at, origin in consults.get((user, external), ())
        )

    def user_call(
        self, part: UserPart, later_transfer: bool, consults: Consults
    ) -> CompletedCall | None:
        """The call log of one user's part, None when it gives the user nothing to log."""
        results = [leg_result(leg) for leg in part.legs]
        result = CallResult.ANSWERED if CallResult.ANSWERED in results else results[0]
        if result is None:
            return None
        main = part.legs[0]
        direction, other = leg_direction(main)
        external = (
            other.phoneNumber if other is not None and direction is not Direction.INTERNAL else None
        )
        leg_start, end = self._leg_span(main)
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
        total = ms_between(self.start, end)
        wait = ms_between(self.start, leg_start)
        answered = result in (CallResult.ANSWERED, CallResult.TRANSFERRED)
        recordings = tuple(
            dict.fromkeys(
                str(leg.recording.id) for leg in part.legs if leg.recording and leg.recording.id
            )
        )
        _, caller_name = self._split_queue_prefix(other.name if other is not None else None)
        return CompletedCall(
            key=idempotency_key(self.tsid, part.extension_id),
            telephony_session_id=self.tsid,
            session_id=as_id(self.record.sessionId),
            account_id=self.account_id,
            **self._user_fields(part, main),
            direction=direction,
            external_number=external,
            external_name=caller_name if external is not None else None,
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
            queue_name=self._queue_name(),
            final_status=main.result,
            source=self.source,
            approximate=ANSWER_ESTIMATES if answered else (),
            participants=self._participants(),
        )

    def _leg_span(self, main: CallLogLeg) -> tuple[datetime, datetime]:
        """When the user's leg started and when their call ended, within the record's call."""
        leg_start = (
            parse_time(main.startTime, self.record_id, "legs[].startTime")
            if main.startTime
            else self.start
        )
        leg_ms = duration_ms(main.durationMs, main.duration)
        end = max(leg_start + timedelta(milliseconds=leg_ms), self.start)
        return min(max(leg_start, self.start), end), end

    def _user_fields(self, part: UserPart, main: CallLogLeg) -> _UserFields:
        """Who the user is: the directory's entry, else what their own side of the leg says."""
        ext = self.directory.by_id(part.extension_id) if self.directory else None
        own = main.to if (main.direction or "").lower() == "inbound" else main.from_
        return {
            "extension_id": part.extension_id,
            "extension_number": (ext.extension_number if ext else None)
            or (own.extensionNumber if own else None),
            "user_name": (ext.name if ext else None) or (own.name if own else None),
            "user_email": ext.email if ext else None,
            "user_timezone": ext.timezone if ext else None,
            "own_number": own.phoneNumber if own else None,
        }

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

    def _transfer_target(self, part: UserPart, warm: SessionRef | None) -> str | None:
        """Who took the call over, when the record names them (a later user's leg)."""
        if warm is not None:
            return self.warm_target  # named by the other session's record, if it was read
        later = False
        for leg in self.record.legs:
            ext_id = as_id(leg.extension.id if leg.extension else None)
            if ext_id == part.extension_id:
                later = True
                continue
            if later and (leg.legType or "").lower() == TRANSFER_LEG and leg.to is not None:
                return leg.to.extensionNumber or leg.to.phoneNumber
        return None
