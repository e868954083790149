"""The facts of one finished session that every leg of it reads, and the leg record itself.

Where it sits: :func:`~sscl_daemon.calls.legs.derive_calls` decides *which* legs a
finished session gives; it builds one :class:`LegBuilder` per session, which resolves once
what the legs all ask again -- each party's :class:`~sscl_daemon.calls.timeline.Timeline`
and :class:`~sscl_daemon.calls.parties.Kind`, the order the parties appeared in, the
users, the external party, extension numbers, the queue, the recordings -- answers the
questions the rules ask about identities (the outside number, a transfer's target), and
writes each leg as a :class:`~sscl_daemon.calls.model.CompletedCall` (:meth:`LegBuilder.make`:
times, durations, names from the directory). :class:`LegContext` is what the tracker
hands in: the directory, the options, and a way to look at another session in flight
(the consult session of a warm transfer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sscl_daemon.calls.codes import StatusCode
from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import (
    CallResult,
    CompletedCall,
    Direction,
    ExtensionType,
    idempotency_key,
)
from sscl_daemon.calls.numbers import looks_like_extension, normalise_external
from sscl_daemon.calls.parties import Kind, classify_parties
from sscl_daemon.calls.policy import MissedAttribution
from sscl_daemon.calls.state import PartyState, SessionState, Step
from sscl_daemon.calls.timeline import Timeline, hold_spans, party_timeline, talk_hold, to_datetime

# Bound once: an enum member read through its class costs about 50 ns in Python 3.11, a
# global a few, and these are read per party of every completed session.
_GONE, _HOLD = StatusCode.GONE, StatusCode.HOLD
_USER, _SYSTEM, _EXTERNAL = Kind.USER, Kind.SYSTEM, Kind.EXTERNAL
_INTERNAL = Direction.INTERNAL


@dataclass(frozen=True, slots=True)
class LegContext:
    directory: Directory | None
    default_region: str | None
    missed_attribution: MissedAttribution = MissedAttribution.RANG
    missed_owner_extension: str | None = None
    peer: Callable[[str], SessionState | None] = lambda _tsid: None


class LegBuilder:
    """Holds the per-session facts while the legs of one session are derived."""

    # One builder per completed session: slots make it cheaper to create and read.
    __slots__ = (
        "ctx",
        "ext_numbers",
        "external",
        "kinds",
        "last",
        "lines",
        "order",
        "participants",
        "queue_name",
        "recorded",
        "session",
        "start",
        "timed_out",
        "users",
    )

    def __init__(self, session: SessionState, ctx: LegContext, timed_out: bool) -> None:
        self.session = session
        self.ctx = ctx
        self.timed_out = timed_out
        per_party, self.start, self.last = session.steps_by_party()
        self.lines = [party_timeline(s, self.last) if s else None for s in per_party]
        self.kinds = classify_parties(session, ctx.directory, self.lines)
        parties = session.parties
        order = sorted(range(len(parties)), key=[p.first_seq for p in parties].__getitem__)
        # Resolved once: the legs, transfer targets and participants all ask again.
        self.ext_numbers = [self._ext_number(party) for party in parties]
        self.order: list[int] = []
        self.users: list[int] = []
        self.external: int | None = None
        self.recorded: list[int] = []
        self.queue_name: str | None = None
        participants: list[str] = []
        for i in order:
            if self.lines[i] is None:
                continue
            party = parties[i]
            self.order.append(i)
            kind = self.kinds[i]
            if kind is _USER:
                self.users.append(i)
            elif kind is _EXTERNAL and self.external is None:
                self.external = i
            if party.recordings:
                self.recorded.append(i)
            if self.queue_name is None and party.queue_name:
                self.queue_name = party.queue_name
            elif self.queue_name is None and kind is _SYSTEM:
                # A caller who gave up in a queue before any agent rang still went through it.
                self.queue_name = self._queue_of(party)
            number = self.ext_numbers[i]
            if number is not None and number not in participants:
                participants.append(number)
        self.participants = tuple(participants)

    def peer_holds(self, index: int | None) -> list[tuple[int, int]]:
        """Spans in which another user of the session held the call (RC -> RC calls)."""
        spans: list[tuple[int, int]] = []
        for other in self.users:
            line = self.lines[other]
            if other != index and line is not None and any(s.code is _HOLD for s in line.steps):
                spans.extend(hold_spans(line))
        return spans

    # ---- identities ----

    def _queue_of(self, party: PartyState) -> str | None:
        """The name of a call-queue extension's party (directory type ``Department``)."""
        directory = self.ctx.directory
        ext = directory.by_id(party.extension_id) if directory is not None else None
        return ext.name if ext is not None and ext.type is ExtensionType.DEPARTMENT else None

    def ext_number(self, index: int) -> str | None:
        return self.ext_numbers[index]

    def _ext_number(self, party: PartyState) -> str | None:
        if party.extension_id is None:
            own = party.own_number
            return own if looks_like_extension(own) else None
        ext = (
            self.ctx.directory.by_id(party.extension_id) if self.ctx.directory is not None else None
        )
        if ext is not None and ext.extension_number:
            return ext.extension_number
        if party.own_ext_number:
            return party.own_ext_number
        own = party.own_number
        return own if looks_like_extension(own) else None

    def external_side(self) -> tuple[str | None, str | None, bool | None]:
        """(E.164 number, name, external party originated) of the outside party."""
        region = self.ctx.default_region
        if self.external is not None:
            party = self.session.parties[self.external]
            name = party.own_name
            if name is None:
                name = next(
                    (
                        self.session.parties[u].caller_id_name
                        for u in self.users
                        if self.session.parties[u].caller_id_name
                    ),
                    None,
                )
            return normalise_external(party.own_number, region), name, party.outbound
        for u in self.users:
            party = self.session.parties[u]
            number = party.counterpart_number
            if number and party.counterpart_ext_id is None and not looks_like_extension(number):
                name = party.caller_id_name or party.counterpart_name
                # The user's own direction tells who called whom.
                originated = None if party.outbound is None else not party.outbound
                return normalise_external(number, region), name, originated
        return None, None, None

    def transfer_target(self, user: int, terminal: Step) -> str | None:
        party = self.session.parties[user]
        if terminal.code is _GONE:
            peer_ids = [party.peer_tsid] + [p.peer_tsid for p in self.session.parties]
            for tsid in peer_ids:
                peer = self.ctx.peer(tsid) if tsid else None
                if peer is not None:
                    target = _consulted(peer, party, self.ctx)
                    if target is not None:
                        return target
            return None
        later = [
            i
            for i in self.order
            if i != user
            and i != self.external
            and self.session.parties[i].first_seq > party.first_seq
        ]
        if later:
            best = min(later, key=lambda i: abs(self.session.parties[i].first_seq - terminal.seq))
            if self.kinds[best] is _EXTERNAL:
                return normalise_external(
                    self.session.parties[best].own_number, self.ctx.default_region
                )
            return self.ext_number(best)
        if self.external is not None:
            ext_party = self.session.parties[self.external]
            target = ext_party.counterpart_ext_number or ext_party.counterpart_number
            if target and target != self.ext_number(user):
                return _as_dialled(target, self.ctx.default_region)
        return None

    # ---- legs ----

    def make(
        self,
        *,
        index: int | None,
        result: CallResult,
        direction: Direction,
        external: tuple[str | None, str | None],
        answer: int | None,
        appeared: int,
        end: int,
        talk_line: Timeline | None,
        extension_id: str | None = None,
        extension_number: str | None = None,
        internal_number: str | None = None,
        transferred_to: str | None = None,
    ) -> CompletedCall:
        session = self.session
        party = session.parties[index] if index is not None else None
        if party is not None:
            extension_id = party.extension_id
            extension_number = self.ext_numbers[index]  # type: ignore[index]
        ext = self.ctx.directory.by_id(extension_id) if self.ctx.directory is not None else None
        end = max(end, self.start)
        answer = None if answer is None else min(max(answer, self.start), end)
        ring = (answer if answer is not None else end) - self.start
        queue = min(max(appeared - self.start, 0), ring)
        talk, hold = (
            talk_hold(talk_line, answer, self.peer_holds(index))
            if talk_line is not None
            else (0, 0)
        )
        recordings: tuple[str, ...] = ()
        for i in self.recorded:
            if i == index or self.kinds[i] is not _USER:
                recordings += tuple(r for r in session.parties[i].recordings if r not in recordings)
        final_status = final_reason = None
        if party is not None:
            # str() of a StrEnum member is its value, without Enum.value's Python property.
            final_status = party.last_raw or str(party.last_code)
            final_reason = party.last_raw_reason or (str(party.last_reason) or None)
        if self.timed_out and (talk_line is None or talk_line.terminal is None):
            result = CallResult.INCOMPLETE
        return CompletedCall(
            key=idempotency_key(session.tsid, extension_id),
            telephony_session_id=session.tsid,
            session_id=session.session_id,
            account_id=session.account_id or "",
            extension_id=extension_id,
            extension_number=extension_number,
            user_name=ext.name if ext is not None else (party.own_name if party else None),
            user_email=ext.email if ext is not None else None,
            user_timezone=ext.timezone if ext is not None else None,
            direction=direction,
            external_number=external[0] if direction is not _INTERNAL else None,
            external_name=external[1] if direction is not _INTERNAL else None,
            internal_number=internal_number,
            own_number=party.own_number if party is not None else None,
            result=result,
            start_time=to_datetime(self.start),
            answer_time=None if answer is None else to_datetime(answer),
            end_time=to_datetime(end),
            ring_ms=ring,
            queue_ms=queue,
            talk_ms=talk,
            hold_ms=hold,
            total_ms=end - self.start,
            recording_ids=recordings,
            transferred_to=transferred_to,
            queue_name=self.queue_name,
            final_status=final_status,
            final_reason=final_reason,
            participants=self.participants,
        )


def _consulted(peer: SessionState, transferor: PartyState, ctx: LegContext) -> str | None:
    """In the consult session of a warm transfer, the extension the transferor talked to."""
    kinds = classify_parties(peer, ctx.directory)
    for party, kind in zip(peer.parties, kinds, strict=True):
        if kind is _USER and party.extension_id != transferor.extension_id:
            ext = ctx.directory.by_id(party.extension_id) if ctx.directory is not None else None
            if ext is not None and ext.extension_number:
                return ext.extension_number
            own = party.own_ext_number or party.own_number
            if own:
                return _as_dialled(own, ctx.default_region)
    for party in peer.parties:
        if party.extension_id == transferor.extension_id:
            target = party.counterpart_ext_number or party.counterpart_number
            if target:
                return _as_dialled(target, ctx.default_region)
    return None


def _as_dialled(number: str, region: str | None) -> str | None:
    """A transfer target as a CRM shows it: a short extension number as it is, else E.164."""
    return number if looks_like_extension(number) else normalise_external(number, region)
