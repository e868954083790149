"""From a finished telephony session to the call legs worth logging (pure).

Called by the tracker once a session is complete (or timed out). The party
histories are sorted by ``sequence`` first, so the result does not depend on
the order the notifications arrived in. Rules (RingCentral developer guide:
"Telephony Session Notifications", "Calculating Call Time Metrics",
"Managing Warm Transfers", call-log "states"; research notes rc-protocol.md
B3-B6):

* Parties are users, other RingCentral extensions (IVR menu, call queue,
  park location, ...) or external (no ``extensionId``). The external caller's
  party on an inbound call is ``Outbound`` and is ``Answered`` as soon as an
  IVR or queue picks up, so "a person answered" is read from the user's own
  party only.
* Each user who answered gets one leg: ``answered``, or ``transferred`` when
  they handed the call on (``Disconnected``/``BlindTransfer`` (also
  ``RccTransfer``/``DtmfTransfer``) or ``Gone``/``AttendedTransfer``).
* Nobody answered: the voicemail owner gets ``voicemail``; otherwise every
  user the call rang gets ``missed`` (or one ``missed`` for the configured
  owner extension); a call that never reached a user gets one ``abandoned``
  leg keyed ``<tsid>:-``. Queue members who rang while another agent
  answered get nothing; a user the call was blind-transferred to who did
  not answer gets ``missed``.
* Outbound calls by a user: ``answered`` when the remote party answered,
  else ``busy`` (``TargetBusy``), ``rejected`` (``Rejected``) or ``missed``.
* Warm transfer: the consult leg (a user's outbound call to another
  extension that ends ``Gone``/``AttendedTransfer`` once the customer is
  bridged in) is not logged; the transferring agent's leg in the customer's
  session is ``transferred`` with the consulted user as target (found through
  ``peerId``).
* Times: ``ring`` = start of the session to the user's answer (or end),
  ``queue`` = the part of it before the user's own party appeared, ``talk``
  = the user's ``Answered`` time after the answer while nobody held the call,
  ``hold`` = the time it was held: their own ``Hold`` (and ``Parked``) time
  and the time another user of the session (the other end of an RC -> RC
  call) held it -- RingCentral's definition, the same for every party. So
  ring + talk + hold <= total and talk never includes redirect or queue time.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sscl_daemon.calls.codes import Reason, StatusCode
from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import (
    CallResult,
    CompletedCall,
    Direction,
    ExtensionType,
    idempotency_key,
)
from sscl_daemon.calls.numbers import looks_like_extension, normalise_external
from sscl_daemon.calls.policy import MissedAttribution
from sscl_daemon.calls.state import PartyState, SessionState, Step

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Tuples, not sets: membership then compares by identity in C, while hashing an
# enum member runs Python code (Enum.__hash__) — this is the per-session hot path.
_TERMINAL = (StatusCode.DISCONNECTED, StatusCode.GONE)
_VOICEMAIL = (StatusCode.VOICEMAIL, StatusCode.VOICEMAIL_SCREENING)
_RANG = (
    StatusCode.PROCEEDING,
    StatusCode.ANSWERED,
    StatusCode.HOLD,
    StatusCode.PARKED,
    StatusCode.VOICEMAIL,
    StatusCode.VOICEMAIL_SCREENING,
)
_ON_CALL = (StatusCode.ANSWERED, StatusCode.HOLD, StatusCode.PARKED)
_BLIND = (Reason.BLIND_TRANSFER, Reason.RCC_TRANSFER, Reason.DTMF_TRANSFER)


# Below 2**32 s (year 2106) a double holds ms / 1000 within 0.25 us of the exact
# value, so fromtimestamp's rounding to the microsecond gives the exact millisecond.
_FLOAT_EXACT_MS = (1 << 32) * 1000


def to_datetime(ms: int) -> datetime:
    if 0 <= ms < _FLOAT_EXACT_MS:
        # Three of these per call log: a third cheaper than the timedelta sum.
        return datetime.fromtimestamp(ms / 1000, UTC)
    return EPOCH + timedelta(0, 0, 0, ms)


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000 + 0.5)


class Kind(enum.Enum):
    USER = "user"
    SYSTEM = "system"  # an RC extension that is not a person (IVR, queue, park, ...)
    EXTERNAL = "external"


# Members read per step or per party of every completed session, bound once: an
# enum member read through its class costs about 50 ns in Python 3.11, a global a few.
_ANSWERED, _GONE, _DISCONNECTED = StatusCode.ANSWERED, StatusCode.GONE, StatusCode.DISCONNECTED
_HOLD = StatusCode.HOLD
_ATTENDED = Reason.ATTENDED_TRANSFER
_USER, _SYSTEM, _EXTERNAL = Kind.USER, Kind.SYSTEM, Kind.EXTERNAL
_INBOUND, _OUTBOUND, _INTERNAL = Direction.INBOUND, Direction.OUTBOUND, Direction.INTERNAL


@dataclass(frozen=True, slots=True)
class LegContext:
    directory: Directory | None
    default_region: str | None
    missed_attribution: MissedAttribution = MissedAttribution.RANG
    missed_owner_extension: str | None = None
    peer: Callable[[str], SessionState | None] = lambda _tsid: None


@dataclass(slots=True)
class _Timeline:
    """One party's history, reduced to the moments the call log needs."""

    appeared: int
    answered: int | None
    end: int
    terminal: Step | None
    voicemail: int | None
    steps: list[Step]


def _timeline(steps: list[Step], last_ms: int) -> _Timeline:
    answered = voicemail = None
    terminal = None
    for step in steps:
        code = step.code
        if code is _ANSWERED:
            if answered is None:
                answered = step.at_ms
        elif code in _VOICEMAIL and voicemail is None:
            voicemail = step.at_ms
        elif code in _TERMINAL:
            terminal = step
            break
    end = terminal.at_ms if terminal is not None else max(last_ms, steps[-1].at_ms)
    # Positional: keyword matching costs a third of building it, a few times per call.
    return _Timeline(steps[0].at_ms, answered, end, terminal, voicemail, steps)


def _talk_hold(
    line: _Timeline, answer: int | None, peer_holds: Sequence[tuple[int, int]] = ()
) -> tuple[int, int]:
    """Talk and hold time of a party inside [answer, end].

    Talk is RingCentral's ("Calculating Call Time Metrics"): connected and not on hold --
    by this party or by the user at the other end (``peer_holds``, the spans another
    user's party was in ``Hold``): while either holds, nobody talks, and the time counts
    as hold for both. A call the user parked waits in the park orbit with hold music
    until the user's own party ends, so ``Parked`` on the user's party counts as hold.
    """
    if answer is None:
        return 0, 0
    talk = hold = 0
    steps = line.steps
    for index, step in enumerate(steps):
        if step.at_ms >= line.end:
            break
        if step.code not in _ON_CALL:
            continue
        until = steps[index + 1].at_ms if index + 1 < len(steps) else line.end
        begin = max(step.at_ms, answer)
        until = min(until, line.end)
        span = until - begin
        if span > 0:
            if step.code is _ANSWERED:
                held = _overlap(begin, until, peer_holds) if peer_holds else 0
                talk += span - held
                hold += held
            else:
                hold += span
    return talk, hold


def _overlap(begin: int, end: int, spans: Sequence[tuple[int, int]]) -> int:
    """How much of [begin, end) the (disjoint) ``spans`` cover."""
    return sum(max(0, min(end, b) - max(begin, a)) for a, b in spans)


def _hold_spans(line: _Timeline) -> list[tuple[int, int]]:
    """The spans a party was in ``Hold`` (until its next status change or its end)."""
    spans: list[tuple[int, int]] = []
    steps = line.steps
    for index, step in enumerate(steps):
        if step.code is _HOLD and step.at_ms < line.end:
            until = steps[index + 1].at_ms if index + 1 < len(steps) else line.end
            spans.append((step.at_ms, min(until, line.end)))
    return spans


def _rang(line: _Timeline | None) -> bool:
    return line is not None and any(step.code in _RANG for step in line.steps)


def classify_parties(
    session: SessionState,
    directory: Directory | None,
    lines: list[_Timeline | None] | None = None,
) -> list[Kind]:
    """User, system extension or external, per party.

    With a directory its ``type`` decides. Without one (or for an id it does
    not know), a party with an ``extensionId`` is taken as a user unless
    it is the queue that ``queueCall`` parties were delivered from (their
    ``to.extensionId``), left with reason ``CallerInputRedirect`` (IVR
    menus hand the caller on that way), or -- only without a directory --
    receiving the call, never rang, answered or held (an IVR menu or queue
    goes from ``Setup`` straight to ``Disconnected``; a phone always reports
    ``Proceeding`` or ``Answered``). An id that a directory (refreshed by
    then, see the tracker) does not know is a new extension, far more likely
    a user than a menu: a user's phone that rang unseen (only its ``Setup``
    arrived) must not vanish as an IVR. A party without ``extensionId`` is
    external unless its own number is a short extension number.
    """
    parties = session.parties
    queues = {p.to_ext_id for p in parties if p.queue_call and p.to_ext_id}
    kinds: list[Kind] = []
    for index, party in enumerate(parties):
        ext_id = party.extension_id
        if ext_id is None:
            kinds.append(_SYSTEM if looks_like_extension(party.own_number) else _EXTERNAL)
            continue
        known = directory.is_user(ext_id) if directory is not None else None
        if known is not None:
            kinds.append(_USER if known else _SYSTEM)
        elif (
            ext_id in queues
            or party.last_reason is Reason.CALLER_INPUT_REDIRECT
            or (
                directory is None
                and not party.outbound
                and lines is not None
                and not _rang(lines[index])
            )
        ):
            kinds.append(_SYSTEM)
        else:
            kinds.append(_USER)
    return kinds


class _Builder:
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
        self.lines = [_timeline(s, self.last) if s else None for s in per_party]
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
                spans.extend(_hold_spans(line))
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
                return (
                    target
                    if looks_like_extension(target)
                    else normalise_external(target, self.ctx.default_region)
                )
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
        talk_line: _Timeline | None,
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
            _talk_hold(talk_line, answer, self.peer_holds(index))
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
                return (
                    own
                    if looks_like_extension(own)
                    else normalise_external(own, ctx.default_region)
                )
    for party in peer.parties:
        if party.extension_id == transferor.extension_id:
            target = party.counterpart_ext_number or party.counterpart_number
            if target:
                return (
                    target
                    if looks_like_extension(target)
                    else normalise_external(target, ctx.default_region)
                )
    return None


def _outcome(line: _Timeline | None) -> CallResult:
    """Why an outbound call was not answered, read from a party's final reason."""
    if line is None or line.terminal is None:
        return CallResult.MISSED
    reason = line.terminal.reason
    if reason is Reason.TARGET_BUSY:
        return CallResult.BUSY
    if reason is Reason.REJECTED:
        return CallResult.REJECTED
    return CallResult.MISSED


def derive_calls(
    session: SessionState, ctx: LegContext, timed_out: bool = False
) -> list[CompletedCall]:
    """Every candidate call log of a finished session (the policy filters them later)."""
    if not session.steps:
        return []
    b = _Builder(session, ctx, timed_out)
    number, name, ext_originated = b.external_side()
    external = (number, name)
    parties = session.parties
    lines = b.lines
    if number is None:
        direction = _INTERNAL
    else:
        direction = _INBOUND if ext_originated is not False else _OUTBOUND
        if ext_originated is None and b.order and b.kinds[b.order[0]] is _USER:
            direction = _OUTBOUND if parties[b.order[0]].outbound else _INBOUND

    originator = b.order[0] if b.order else None
    caller = (
        originator
        if originator is not None
        and b.kinds[originator] is _USER
        and parties[originator].outbound is not False
        and direction is not _INBOUND
        else None
    )
    answered_users = [u for u in b.users if u != caller and lines[u].answered is not None]  # type: ignore[union-attr]
    calls: list[CompletedCall] = []

    # The user who placed the call (outbound, or the caller of an internal call).
    if caller is not None:
        line = lines[caller]
        assert line is not None
        if direction is _OUTBOUND:
            remote = lines[b.external] if b.external is not None else None
            answer = remote.answered if remote is not None else line.answered
            result = CallResult.ANSWERED if answer is not None else _outcome(remote or line)
        else:
            answer = min((lines[u].answered for u in answered_users), default=None)  # type: ignore[union-attr,type-var]
            callee = next((lines[u] for u in b.users if u != caller), None)
            result = CallResult.ANSWERED if answer is not None else _outcome(callee or line)
        calls.append(_user_leg(b, caller, direction, external, answer, result))

    voicemail_owner = _voicemail_owner(b)
    nobody = caller is None and not answered_users and voicemail_owner is None
    rang = [u for u in b.users if u != caller]
    for u in rang:
        line = lines[u]
        assert line is not None
        if line.answered is not None:
            if _is_consult_leg(b, u, number):
                continue
            calls.append(_user_leg(b, u, direction, external, line.answered, CallResult.ANSWERED))
        elif u == voicemail_owner:
            calls.append(_user_leg(b, u, direction, external, None, CallResult.VOICEMAIL))
        elif (nobody and ctx.missed_attribution is MissedAttribution.RANG) or _transfer_target(
            b, u
        ):
            calls.append(_user_leg(b, u, direction, external, None, CallResult.MISSED))

    if nobody and rang and ctx.missed_attribution is MissedAttribution.OWNER:
        owner_number = ctx.missed_owner_extension
        owner = ctx.directory.by_number(owner_number) if ctx.directory is not None else None
        first = min(lines[u].appeared for u in rang)  # type: ignore[union-attr]
        calls.append(
            b.make(
                index=None,
                result=CallResult.MISSED,
                direction=direction,
                external=external,
                answer=None,
                appeared=first,
                end=b.last,
                talk_line=None,
                extension_id=owner.id if owner is not None else None,
                extension_number=owner_number,
            )
        )
    elif nobody and not rang and voicemail_owner is None and direction is _INBOUND:
        result = CallResult.VOICEMAIL if _voicemail_reached(b) else CallResult.ABANDONED
        ext_line = lines[b.external] if b.external is not None else None
        end = ext_line.end if ext_line is not None else b.last
        calls.append(
            b.make(
                index=None,
                result=result,
                direction=direction,
                external=external,
                answer=None,
                appeared=end,
                end=end,
                talk_line=ext_line if timed_out else None,
            )
        )
    return calls


def _user_leg(
    b: _Builder,
    index: int,
    direction: Direction,
    external: tuple[str | None, str | None],
    answer: int | None,
    result: CallResult,
) -> CompletedCall:
    """The leg of one user's party; an answered leg that handed the call on is a transfer."""
    line = b.lines[index]
    assert line is not None
    transferred_to = None
    terminal = line.terminal
    if result is CallResult.ANSWERED and terminal is not None and _is_transfer(terminal):
        result = CallResult.TRANSFERRED
        transferred_to = b.transfer_target(index, terminal)
    return b.make(
        index=index,
        result=result,
        direction=direction,
        external=external,
        answer=answer,
        appeared=line.appeared,
        end=line.end,
        talk_line=line,
        internal_number=_internal_number(b, index, direction),
        transferred_to=transferred_to,
    )


def _is_transfer(step: Step) -> bool:
    if step.code is _DISCONNECTED:
        return step.reason in _BLIND
    return step.code is _GONE and step.reason is _ATTENDED


def _transfer_target(b: _Builder, index: int) -> bool:
    """The user rang because another user blind-transferred the call to them."""
    first_seq = b.session.parties[index].first_seq
    for other in b.users:
        line = b.lines[other]
        terminal = line.terminal if line is not None and other != index else None
        if terminal is not None and _is_transfer(terminal) and terminal.seq < first_seq:
            return True
    return False


def _is_consult_leg(b: _Builder, index: int, external_number: str | None) -> bool:
    """A warm-transfer consult call: user -> extension, bridged away to the customer."""
    party = b.session.parties[index]
    line = b.lines[index]
    assert line is not None
    terminal = line.terminal
    if external_number is None or terminal is None or not party.outbound:
        return False
    if terminal.code is not _GONE or terminal.reason is not _ATTENDED:
        return False
    return party.counterpart_ext_id is not None or looks_like_extension(party.counterpart_number)


def _internal_number(b: _Builder, index: int, direction: Direction) -> str | None:
    """The other extension of an internal call: its party's number, else what this party
    shows of it (the directory entry of its ``extensionId``, or its short number)."""
    if direction is not _INTERNAL:
        return None
    party = b.session.parties[index]
    for other in b.order:
        if other != index and b.kinds[other] is _USER:
            number = b.ext_number(other)
            if number is not None:
                return number
            break
    directory = b.ctx.directory
    ext = directory.by_id(party.counterpart_ext_id) if directory is not None else None
    if ext is not None and ext.extension_number:
        return ext.extension_number
    number = party.counterpart_ext_number or party.counterpart_number
    return number if looks_like_extension(number) else None


def _voicemail_reached(b: _Builder) -> bool:
    return any(line is not None and line.voicemail is not None for line in b.lines)


def _voicemail_owner(b: _Builder) -> int | None:
    """The user party whose mailbox took the call, if voicemail was reached."""
    parties = b.session.parties
    for i in b.order:
        line = b.lines[i]
        if line is None or line.voicemail is None:
            continue
        if b.kinds[i] is _USER:
            return i
        target = parties[i].to_ext_id
        for u in b.users:
            if parties[u].extension_id == target:
                return u
        if b.users:
            return max(b.users, key=lambda u: parties[u].first_seq)
    return None
