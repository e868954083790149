"""Compact in-flight state of one telephony session, and its snapshot form.

The tracker keeps one :class:`SessionState` per ``telephonySessionId`` while
the call is in progress. Memory is the constraint (100,000 concurrent
sessions in under 2 KB each), so nothing here keeps a decoded event: a
party's descriptive fields are merged into a gc-free :class:`PartyState`
with interned strings (values never replaced by an absent one — RingCentral
adds names and numbers to a party over time, rc-protocol.md B5 — and an
older notification only fills what is still unknown), and each
status change is packed into two machine integers of the session's
``steps`` array, in arrival order. Sorting by ``sequence`` happens once, when
the session is turned into call logs (legs.py), which makes the result
independent of the delivery order.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from sys import intern
from typing import NamedTuple

import msgspec

from sscl_daemon.calls.codes import Reason, StatusCode
from sscl_daemon.calls.wire import (
    FIRST_SEQUENCE,
    Recording,
    TrackedParty,
    UiCallInfo,
    is_outbound,
)
from sscl_daemon.calls.wire import MAX_SEQUENCE as MAX_SEQUENCE  # the tracker's bound too

STATUS_CODES: tuple[StatusCode, ...] = tuple(StatusCode)
REASONS: tuple[Reason, ...] = tuple(Reason)
STATUS_INDEX: dict[StatusCode, int] = {code: i for i, code in enumerate(STATUS_CODES)}
REASON_INDEX: dict[Reason, int] = {reason: i for i, reason in enumerate(REASONS)}

# packed step word: sequence << 20 | party index << 12 | status << 6 | reason
SEQ_SHIFT = 20
PARTY_SHIFT = 12
STATUS_SHIFT = 6
# The packed word has room for 42 bits of sequence, but the per-session "seen" bitset
# is an int as wide as the highest sequence: a hostile or corrupt event with a huge
# sequence must not allocate gigabytes. Real sessions number their events in the tens
# or hundreds; an event beyond MAX_SEQUENCE (refused when decoding, in events.py) is
# rejected (counted) and the session falls back to expiry and the call log.
MAX_PARTIES = 1 << 8


class Step(NamedTuple):
    """One status change of one party, unpacked for the leg derivation."""

    seq: int
    at_ms: int
    party: int
    code: StatusCode
    reason: Reason


class PartyState(msgspec.Struct, gc=False):
    """Everything the leg derivation needs about one party, merged over its events.

    A gc-free Struct: no cycle-collector header and never scanned by the
    collector, which matters with 100,000 sessions in flight.
    """

    party_id: str  # the short key from SessionState.party_key
    extension_id: str | None = None
    outbound: bool | None = None
    from_number: str | None = None
    from_name: str | None = None
    from_ext_id: str | None = None
    from_ext_number: str | None = None
    to_number: str | None = None
    to_name: str | None = None
    to_ext_id: str | None = None
    to_ext_number: str | None = None
    queue_call: bool = False
    queue_name: str | None = None
    caller_id_name: str | None = None
    recordings: tuple[str, ...] = ()
    peer_tsid: str | None = None
    first_seq: int = -1
    last_seq: int = -1
    last_code: StatusCode = StatusCode.UNKNOWN
    last_reason: Reason = Reason.NONE
    # The raw status text, kept only when it is not one of the known codes.
    last_raw: str | None = None
    last_raw_reason: str | None = None

    def merge(self, party: TrackedParty, newest: bool) -> None:
        """Fold a party report in (either view); an older report (``newest`` False) only fills gaps."""
        # Strings are interned: the caller's number, the company numbers, names and
        # extension ids repeat across the parties of a session and across sessions,
        # and one shared copy is what keeps an in-flight session small.
        value = party.extension_id
        if (
            value is not None
            and value != self.extension_id
            and (newest or self.extension_id is None)
        ):
            self.extension_id = intern(value)
        direction = party.direction
        if direction is not None and (newest or self.outbound is None):
            # The two exact spellings first: is_outbound() (case folding) is a call per event.
            if direction == "Inbound":
                self.outbound = False
            else:
                self.outbound = direction == "Outbound" or is_outbound(direction)
        info = party.from_
        if info is not None:
            value = info.phone_number
            if (
                value is not None
                and value != self.from_number
                and (newest or self.from_number is None)
            ):
                self.from_number = intern(value)
            value = info.name
            if value is not None and value != self.from_name and (newest or self.from_name is None):
                self.from_name = intern(value)
            value = info.extension_id
            if (
                value is not None
                and value != self.from_ext_id
                and (newest or self.from_ext_id is None)
            ):
                self.from_ext_id = intern(value)
            value = info.extension_number
            if (
                value is not None
                and value != self.from_ext_number
                and (newest or self.from_ext_number is None)
            ):
                self.from_ext_number = intern(value)
        info = party.to
        if info is not None:
            value = info.phone_number
            if value is not None and value != self.to_number and (newest or self.to_number is None):
                self.to_number = intern(value)
            value = info.name
            if value is not None and value != self.to_name and (newest or self.to_name is None):
                self.to_name = intern(value)
            value = info.extension_id
            if value is not None and value != self.to_ext_id and (newest or self.to_ext_id is None):
                self.to_ext_id = intern(value)
            value = info.extension_number
            if (
                value is not None
                and value != self.to_ext_number
                and (newest or self.to_ext_number is None)
            ):
                self.to_ext_number = intern(value)
        if party.queue_call:
            self.queue_call = True
        # Queue names and recordings come in few reports: a call each only for those.
        ui = party.ui_call_info
        if ui is not None:
            self._merge_ui_call_info(ui, newest)
        if party.recordings:
            self._add_recordings(party.recordings)
        status = party.status
        if status is not None and status.peer_id is not None:
            peer = status.peer_id.telephony_session_id
            if peer is not None and (newest or self.peer_tsid is None):
                self.peer_tsid = peer

    def _merge_ui_call_info(self, ui: UiCallInfo, newest: bool) -> None:
        """A call-queue delivery's display: the queue's name and the caller id name."""
        if ui.primary is not None and ui.primary.value and (newest or not self.queue_name):
            self.queue_name = intern(ui.primary.value)
        if (
            ui.additional is not None
            and ui.additional.value
            and (newest or not self.caller_id_name)
        ):
            self.caller_id_name = intern(ui.additional.value)

    def _add_recordings(self, recordings: Sequence[Recording]) -> None:
        known = self.recordings
        for rec in recordings:
            rid = rec.id
            if rid not in known:
                known = (*known, rid)
        self.recordings = known

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


def _steps() -> array[int]:
    return array("q")


class SessionState(msgspec.Struct, gc=False):
    """One telephony session in flight (gc-free, like :class:`PartyState`)."""

    tsid: str
    session_id: str | None = None
    account_id: str | None = None
    origin: str | None = None
    parties: list[PartyState] = msgspec.field(default_factory=list)
    # Pairs (event time in ms, packed step word) in arrival order.
    steps: array[int] = msgspec.field(default_factory=_steps)
    # Bit n set = sequence n already applied (dedupe and gap detection).
    seen: int = 0
    max_seq: int = -1
    min_seq: int = -1
    first_ms: int = 0
    last_ms: int = 0
    # Tracker clock when this session last got an event (orders the timeout scan).
    touched_ms: int = 0
    # Event time at which the session completes, set while every party is final.
    deadline: int | None = None

    def party_key(self, party_id: str) -> str:
        """A short shared key for a party id: ``p-<session hex>-<n>`` keeps only ``-<n>``."""
        tsid = self.tsid
        if party_id.startswith(tsid[2:], 2) and tsid.startswith("s-"):
            return intern(party_id[len(tsid) :])
        return intern(party_id)

    def ordered_steps(self) -> list[Step]:
        """Every status change sorted by sequence, with times made non-decreasing.

        RingCentral orders a session by ``sequence``; an event time that goes
        backwards against it is clamped so no duration can become negative.
        """
        return self._sorted_steps(None)[0]

    def steps_by_party(self) -> tuple[list[list[Step]], int, int]:
        """:meth:`ordered_steps` split per party index, with the first and last step times."""
        by_party: list[list[Step]] = [[] for _ in self.parties]
        _, first, last = self._sorted_steps(by_party)
        return by_party, first, last

    def _sorted_steps(self, by_party: list[list[Step]] | None) -> tuple[list[Step], int, int]:
        # One pass serves both views: the leg derivation only wants the per-party
        # split, and building the flat list as well would cost a second loop.
        raw = self.steps
        # The packed word starts with the sequence, so sorting words sorts by sequence.
        pairs = sorted(zip(raw[1::2], raw[0::2], strict=True))
        make = tuple.__new__
        codes = STATUS_CODES
        reasons = REASONS
        result: list[Step] = []
        first = latest = pairs[0][1] if pairs else 0
        for word, at in pairs:
            if at < latest:
                at = latest
            latest = at
            party = (word >> PARTY_SHIFT) & 0xFF
            step = make(
                Step,
                (
                    word >> SEQ_SHIFT,
                    at,
                    party,
                    codes[(word >> STATUS_SHIFT) & 0x3F],
                    reasons[word & 0x3F],
                ),
            )
            if by_party is None:
                result.append(step)
            else:
                by_party[party].append(step)
        return result, first, latest

    def contiguous(self) -> bool:
        """No sequence number is missing between the first and the last one seen."""
        if self.min_seq > FIRST_SEQUENCE or self.max_seq < 0:
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
    party = PartyState(intern(snap.party_id))
    for name in _PARTY_FIELDS[1:]:
        value = getattr(snap, name)
        setattr(party, name, intern(value) if type(value) is str else value)
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
