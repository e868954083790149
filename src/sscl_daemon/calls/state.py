"""Compact in-flight state of one telephony session, and its snapshot form.

The tracker keeps one :class:`SessionState` per ``telephonySessionId`` while
the call is in progress. Memory is the constraint (100,000 concurrent
sessions in under 2 KB each), so nothing here keeps a decoded event: a
party's descriptive fields are merged into a slotted :class:`PartyState`
(values only ever filled in, never replaced by an absent one — RingCentral
adds names and numbers to a party over time, rc-protocol.md B5), and each
status change is packed into two machine integers of the session's
``steps`` array, in arrival order. Sorting by ``sequence`` happens once, when
the session is turned into call logs (legs.py), which makes the result
independent of the delivery order.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import msgspec

from sscl_daemon.calls.events import Party, Reason, StatusCode

STATUS_CODES: tuple[StatusCode, ...] = tuple(StatusCode)
REASONS: tuple[Reason, ...] = tuple(Reason)
STATUS_INDEX: dict[StatusCode, int] = {code: i for i, code in enumerate(STATUS_CODES)}
REASON_INDEX: dict[Reason, int] = {reason: i for i, reason in enumerate(REASONS)}

# packed step word: sequence << 20 | party index << 12 | status << 6 | reason
_SEQ_SHIFT = 20
_PARTY_SHIFT = 12
MAX_SEQUENCE = (1 << 42) - 1
MAX_PARTIES = 1 << 8


def pack_step(seq: int, party: int, code: int, reason: int) -> int:
    return (seq << _SEQ_SHIFT) | (party << _PARTY_SHIFT) | (code << 6) | reason


@dataclass(frozen=True, slots=True)
class Step:
    """One status change of one party, unpacked for the leg derivation."""

    seq: int
    at_ms: int
    party: int
    code: StatusCode
    reason: Reason


def unpack_step(at_ms: int, word: int) -> Step:
    return Step(
        seq=word >> _SEQ_SHIFT,
        at_ms=at_ms,
        party=(word >> _PARTY_SHIFT) & 0xFF,
        code=STATUS_CODES[(word >> 6) & 0x3F],
        reason=REASONS[word & 0x3F],
    )


class PartyState:
    """Everything the leg derivation needs about one party, merged over its events."""

    __slots__ = (
        "caller_id_name",
        "extension_id",
        "first_seq",
        "from_ext_id",
        "from_ext_number",
        "from_name",
        "from_number",
        "last_code",
        "last_raw",
        "last_raw_reason",
        "last_reason",
        "last_seq",
        "outbound",
        "party_id",
        "peer_tsid",
        "queue_call",
        "queue_name",
        "recordings",
        "to_ext_id",
        "to_ext_number",
        "to_name",
        "to_number",
    )

    def __init__(self, party_id: str) -> None:
        self.party_id = party_id
        self.extension_id: str | None = None
        self.outbound: bool | None = None
        self.from_number: str | None = None
        self.from_name: str | None = None
        self.from_ext_id: str | None = None
        self.from_ext_number: str | None = None
        self.to_number: str | None = None
        self.to_name: str | None = None
        self.to_ext_id: str | None = None
        self.to_ext_number: str | None = None
        self.queue_call = False
        self.queue_name: str | None = None
        self.caller_id_name: str | None = None
        self.recordings: tuple[str, ...] = ()
        self.peer_tsid: str | None = None
        self.first_seq = -1
        self.last_seq = -1
        self.last_code = StatusCode.UNKNOWN
        self.last_reason = Reason.NONE
        # The raw status text, kept only when it is not one of the known codes.
        self.last_raw: str | None = None
        self.last_raw_reason: str | None = None

    def merge(self, party: Party) -> None:
        if party.extension_id is not None:
            self.extension_id = party.extension_id  # type: ignore[assignment]
        if party.direction is not None:
            self.outbound = party.outbound
        info = party.from_
        if info is not None:
            if info.phone_number is not None:
                self.from_number = info.phone_number
            if info.name is not None:
                self.from_name = info.name
            if info.extension_id is not None:
                self.from_ext_id = info.extension_id  # type: ignore[assignment]
            if info.extension_number is not None:
                self.from_ext_number = info.extension_number
        info = party.to
        if info is not None:
            if info.phone_number is not None:
                self.to_number = info.phone_number
            if info.name is not None:
                self.to_name = info.name
            if info.extension_id is not None:
                self.to_ext_id = info.extension_id  # type: ignore[assignment]
            if info.extension_number is not None:
                self.to_ext_number = info.extension_number
        if party.queue_call:
            self.queue_call = True
        ui = party.ui_call_info
        if ui is not None:
            if ui.primary is not None and ui.primary.value:
                self.queue_name = ui.primary.value
            if ui.additional is not None and ui.additional.value:
                self.caller_id_name = ui.additional.value
        if party.recordings:
            known = self.recordings
            for rec in party.recordings:
                rid = rec.id if type(rec.id) is str else str(rec.id)
                if rid not in known:
                    known = (*known, rid)
            self.recordings = known
        status = party.status
        if status is not None and status.peer_id is not None:
            peer = status.peer_id.telephony_session_id
            if peer is not None:
                self.peer_tsid = peer

    @property
    def own_number(self) -> str | None:
        """The number identifying this party itself (``from`` if it originated its leg)."""
        return self.from_number if self.outbound else self.to_number

    @property
    def own_name(self) -> str | None:
        return self.from_name if self.outbound else self.to_name

    @property
    def counterpart_number(self) -> str | None:
        return self.to_number if self.outbound else self.from_number

    @property
    def counterpart_ext_id(self) -> str | None:
        return self.to_ext_id if self.outbound else self.from_ext_id

    @property
    def counterpart_ext_number(self) -> str | None:
        return self.to_ext_number if self.outbound else self.from_ext_number

    @property
    def counterpart_name(self) -> str | None:
        return self.to_name if self.outbound else self.from_name

    @property
    def own_ext_number(self) -> str | None:
        return self.from_ext_number if self.outbound else self.to_ext_number


class SessionState:
    """One telephony session in flight."""

    __slots__ = (
        "account_id",
        "deadline",
        "first_ms",
        "last_ms",
        "max_seq",
        "min_seq",
        "origin",
        "parties",
        "seen",
        "session_id",
        "steps",
        "touched_ms",
        "tsid",
    )

    def __init__(self, tsid: str) -> None:
        self.tsid = tsid
        self.session_id: str | None = None
        self.account_id: str | None = None
        self.origin: str | None = None
        self.parties: list[PartyState] = []
        # Pairs (event time in ms, packed step word) in arrival order.
        self.steps = array("q")
        # Bit n set = sequence n already applied (dedupe and gap detection).
        self.seen = 0
        self.max_seq = -1
        self.min_seq = -1
        self.first_ms = 0
        self.last_ms = 0
        # Tracker clock when this session last got an event (orders the timeout scan).
        self.touched_ms = 0
        # Event time at which the session completes, set while every party is final.
        self.deadline: int | None = None

    def party(self, party_id: str) -> tuple[int, PartyState] | None:
        for index, state in enumerate(self.parties):
            if state.party_id == party_id:
                return index, state
        return None

    def ordered_steps(self) -> list[Step]:
        """Every status change sorted by sequence, with times made non-decreasing.

        RingCentral orders a session by ``sequence``; an event time that goes
        backwards against it is clamped so no duration can become negative.
        """
        raw = self.steps
        steps = sorted(
            (unpack_step(raw[i], raw[i + 1]) for i in range(0, len(raw), 2)),
            key=lambda step: (step.seq, step.party),
        )
        result: list[Step] = []
        latest = steps[0].at_ms if steps else 0
        for step in steps:
            if step.at_ms < latest:
                step = Step(step.seq, latest, step.party, step.code, step.reason)
            latest = step.at_ms
            result.append(step)
        return result

    def contiguous(self) -> bool:
        """No sequence number is missing between the first (<= 2) and the last one seen."""
        if self.min_seq > 2 or self.max_seq < 0:
            return False
        full = ((1 << (self.max_seq + 1)) - 1) ^ ((1 << self.min_seq) - 1)
        return self.seen == full


# ---- snapshot form (msgpack, positional arrays to stay compact) ----


class PartySnapshot(msgspec.Struct, array_like=True, frozen=True):
    party_id: str
    extension_id: str | None
    outbound: bool | None
    from_number: str | None
    from_name: str | None
    from_ext_id: str | None
    from_ext_number: str | None
    to_number: str | None
    to_name: str | None
    to_ext_id: str | None
    to_ext_number: str | None
    queue_call: bool
    queue_name: str | None
    caller_id_name: str | None
    recordings: tuple[str, ...]
    peer_tsid: str | None
    first_seq: int
    last_seq: int
    last_code: int
    last_reason: int
    last_raw: str | None
    last_raw_reason: str | None


class SessionSnapshot(msgspec.Struct, array_like=True, frozen=True):
    tsid: str
    session_id: str | None
    account_id: str | None
    origin: str | None
    parties: tuple[PartySnapshot, ...]
    steps: tuple[int, ...]
    seen: bytes
    max_seq: int
    min_seq: int
    first_ms: int
    last_ms: int
    touched_ms: int


_PARTY_FIELDS = PartySnapshot.__struct_fields__


def snapshot_party(party: PartyState) -> PartySnapshot:
    values = {name: getattr(party, name) for name in _PARTY_FIELDS}
    values["last_code"] = STATUS_INDEX[party.last_code]
    values["last_reason"] = REASON_INDEX[party.last_reason]
    return PartySnapshot(**values)


def restore_party(snap: PartySnapshot) -> PartyState:
    party = PartyState(snap.party_id)
    for name in _PARTY_FIELDS:
        setattr(party, name, getattr(snap, name))
    party.last_code = STATUS_CODES[snap.last_code]
    party.last_reason = REASONS[snap.last_reason]
    return party


def snapshot_session(session: SessionState) -> SessionSnapshot:
    seen = session.seen
    return SessionSnapshot(
        tsid=session.tsid,
        session_id=session.session_id,
        account_id=session.account_id,
        origin=session.origin,
        parties=tuple(snapshot_party(p) for p in session.parties),
        steps=tuple(session.steps),
        seen=seen.to_bytes((seen.bit_length() + 7) // 8, "little"),
        max_seq=session.max_seq,
        min_seq=session.min_seq,
        first_ms=session.first_ms,
        last_ms=session.last_ms,
        touched_ms=session.touched_ms,
    )


def restore_session(snap: SessionSnapshot) -> SessionState:
    session = SessionState(snap.tsid)
    session.session_id = snap.session_id
    session.account_id = snap.account_id
    session.origin = snap.origin
    session.parties = [restore_party(p) for p in snap.parties]
    session.steps = array("q", snap.steps)
    session.seen = int.from_bytes(snap.seen, "little")
    session.max_seq = snap.max_seq
    session.min_seq = snap.min_seq
    session.first_ms = snap.first_ms
    session.last_ms = snap.last_ms
    session.touched_ms = snap.touched_ms
    return session
