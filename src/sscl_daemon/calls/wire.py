"""The notification as it comes over the wire: bounded msgspec structs, in two views.

Where it sits: the types :mod:`~sscl_daemon.calls.events` decodes raw frames into and
the tracker reads. Only structs and their bounds live here; the decoders, and what is
refused, are in ``events``; the words inside (status codes, reasons) in
:mod:`~sscl_daemon.calls.codes`.

Two views of one notification:

* :class:`TrackedNotification` holds only the fields ``Tracker.apply()`` reads. It is what
  ``decode_tracked()`` returns on the per-event hot path: every field left out is a
  string, datetime or struct msgspec does not allocate and free again, about a tenth of
  the decode cost at 150,000 events/s.
* :class:`Notification` is the full typed model: everything RingCentral sends that the
  project has a use for (replay, dead letters, introspection, the envelope timestamp,
  roles, flags). ``decode_event()`` returns it.

Each struct of the full view extends the tracked one (a :class:`Party` is a
:class:`TrackedParty` with the fields the tracker never reads), so the two cannot drift
apart: the tracker reads the same names with the same types and bounds from either.

Unknown fields are ignored, numeric ids (old payloads, the call-log API) are normalised
to strings by the decoder before they get here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import msgspec

from sscl_daemon.calls.codes import (
    OriginType,
    Reason,
    StatusCode,
    parse_origin,
    parse_reason,
    parse_status,
)

# ---- bounds at the edge ----
#
# Every field is bounded when it is decoded, so nothing past the decoder meets an
# unbounded string, list or number (hostile or corrupt input: a 3,000-character id used
# to exceed the outbox's unique-index row size and block every commit). RingCentral's ids
# are short ASCII tokens (a telephony session id "s-a0d7...Z" is ~40 characters, a party
# id ~45, extension and account ids are numeric); the bounds leave room for growth. The
# limits are msgspec constraints, checked by the decoder itself (10-15 % of the decode).

# The per-session sequence: RingCentral numbers a session's events from 2, in the tens or
# hundreds; the tracker keeps a bitset as wide as the highest one it accepts.
MAX_SEQUENCE = (1 << 16) - 1
# The sequence number of a session's first event (2 in every capture, research B5).
FIRST_SEQUENCE = 2
MAX_ID_LENGTH = 128
# Names, numbers, codes, descriptions: anything shown in a CRM, never an index key.
MAX_TEXT_LENGTH = 1024
# One party per notification is what RingCentral sends; a few more are tolerated.
MAX_LIST_LENGTH = 64

Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]
# The two ids every notification must carry (a session and its party) cannot be empty.
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_LENGTH)]
SequenceNumber = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQUENCE)]


# The wire structs are plain (non-frozen, gc-free) for decode speed: they are
# read once by the tracker and never shared or mutated after decoding.


class PhoneInfo(msgspec.Struct, rename="camel", gc=False):
    """``from`` / ``to`` of a party. RC-to-RC calls carry short extension numbers here."""

    phone_number: Text | None = None
    name: Text | None = None
    extension_id: Id | None = None
    extension_number: Text | None = None
    device_id: Id | None = None


class PeerId(msgspec.Struct, rename="camel", gc=False):
    """Where a ``Gone`` party went (warm transfer, conference, pick-up)."""

    telephony_session_id: Id | None = None
    session_id: Id | None = None
    party_id: Id | None = None


class Status(msgspec.Struct, rename="camel", gc=False):
    code: Text | None = None
    reason: Text | None = None
    description: Text | None = None
    rcc: bool = False
    peer_id: PeerId | None = None

    @property
    def kind(self) -> StatusCode:
        return parse_status(self.code)

    @property
    def why(self) -> Reason:
        return parse_reason(self.reason)


class Recording(msgspec.Struct, gc=False):
    id: Id
    active: bool = False


class Park(msgspec.Struct, gc=False):
    id: Id | None = None


class UiCallValue(msgspec.Struct, gc=False):
    type: Text | None = None
    value: Text | None = None


class UiCallInfo(msgspec.Struct, gc=False):
    """Queue deliveries: ``primary`` is the queue name, ``additional`` the caller id name."""

    primary: UiCallValue | None = None
    additional: UiCallValue | None = None


class Origin(msgspec.Struct, gc=False):
    type: Text | None = None

    @property
    def kind(self) -> OriginType:
        return parse_origin(self.type)


def is_outbound(direction: str | None) -> bool:
    """``direction`` of a party says it originated its leg (matched case-insensitively)."""
    return direction == "Outbound" or (direction is not None and direction.lower() == "outbound")


# ---- the tracker's view ----


class TrackedParty(msgspec.Struct, rename="camel", gc=False):
    """The party fields the tracker folds into its state."""

    id: Key
    account_id: Id | None = None
    extension_id: Id | None = None
    direction: Text | None = None
    from_: PhoneInfo | None = msgspec.field(default=None, name="from")
    to: PhoneInfo | None = None
    status: Status | None = None
    recordings: Annotated[list[Recording], msgspec.Meta(max_length=MAX_LIST_LENGTH)] | None = None
    queue_call: bool = False
    ui_call_info: UiCallInfo | None = None

    @property
    def outbound(self) -> bool:
        """True when this party originated its leg (the PSTN caller of an inbound call)."""
        return is_outbound(self.direction)


class TrackedBody(msgspec.Struct, rename="camel", gc=False):
    """The body fields the tracker reads; an ``eventTime`` without offset is taken as UTC."""

    telephony_session_id: Key
    sequence: SequenceNumber
    event_time: datetime
    session_id: Id | None = None
    origin: Origin | None = None
    parties: Annotated[Sequence[TrackedParty], msgspec.Meta(max_length=MAX_LIST_LENGTH)] = (
        msgspec.field(default_factory=list)
    )
    account_id: Id | None = None


class TrackedNotification(msgspec.Struct, rename="camel", gc=False):
    """The envelope fields the tracker reads (``uuid`` is the dedupe key for re-deliveries)."""

    body: TrackedBody
    uuid: Id | None = None
    event: Text | None = None


# ---- the full model: the tracker's view and what it never reads ----


class Party(TrackedParty):
    missed_call: bool = False
    stand_alone: bool = False
    muted: bool = False
    park: Park | None = None
    conference_role: Text | None = None
    ring_out_role: Text | None = None
    ring_me_role: Text | None = None


class SessionBody(TrackedBody):
    """The notification body (the list of parties holds full :class:`Party` reports)."""

    parties: Annotated[Sequence[Party], msgspec.Meta(max_length=MAX_LIST_LENGTH)] = msgspec.field(
        default_factory=list
    )
    server_id: Id | None = None
    # Only 2018-era payloads carry this at body level.
    extension_id: Id | None = None


class Notification(TrackedNotification):
    """The notification envelope."""

    body: SessionBody
    timestamp: datetime | None = None
    subscription_id: Id | None = None
    owner_id: Id | None = None
