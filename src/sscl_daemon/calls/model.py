"""The data the whole pipeline agrees on: completed calls and the extension directory.

``CompletedCall`` is what the tracker (live events) and the reconciler (call-log
records) produce, what the store keeps in the outbox, and what every CRM writer
turns into its own request. It is a frozen msgspec Struct so the store can
encode it to JSON and decode it back without loss.
"""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec


class Direction(enum.StrEnum):
    """Direction of the call as seen by the user (extension) it is logged for."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class CallResult(enum.StrEnum):
    ANSWERED = "answered"
    MISSED = "missed"
    VOICEMAIL = "voicemail"
    # Dropped in the IVR or a queue before reaching anyone.
    ABANDONED = "abandoned"
    REJECTED = "rejected"
    BUSY = "busy"
    # The user answered and handed the call on (blind or attended transfer).
    TRANSFERRED = "transferred"
    # The session's end was never observed; completed by the tracker's expiry.
    INCOMPLETE = "incomplete"


class CallSource(enum.StrEnum):
    """Which path produced the record (the idempotency key is the same for all)."""

    LIVE = "live"
    CALL_LOG = "call_log"
    # Built from the call log, with the figures the live events that were seen give.
    LIVE_CALL_LOG = "live+call_log"
    BACKFILL = "backfill"


# Fields of a CompletedCall that a call-log record cannot give exactly (see
# ringcentral/calllog.py): they name what ``CompletedCall.approximate`` may list.
APPROXIMABLE = ("answer_time", "ring_ms", "queue_ms", "talk_ms", "hold_ms")


class ExtensionType(enum.StrEnum):
    """RingCentral extension types (``type`` of the extension list, API reference
    "Get Extension Info": the current list); a type the daemon does not know is ``UNKNOWN``.

    Each is classified on purpose by :data:`ANSWERS_AS_A_PERSON`: the types whose phones
    people pick up get call logs of their own; the others route, hold or announce calls.
    """

    USER = "User"
    DIGITAL_USER = "DigitalUser"  # a user on a Digital Line
    VIRTUAL_USER = "VirtualUser"  # a user without a phone of their own (apps, forwarding)
    FLEXIBLE_USER = "FlexibleUser"  # a user on a shared (hot-desk) phone
    FAX_USER = "FaxUser"
    LIMITED = "Limited"  # a common-area phone (lobby, warehouse): answered by whoever is there
    DEPARTMENT = "Department"  # a call queue
    IVR_MENU = "IvrMenu"
    ANNOUNCEMENT = "Announcement"
    VOICEMAIL = "Voicemail"  # message-only
    PARK_LOCATION = "ParkLocation"
    SHARED_LINES_GROUP = "SharedLinesGroup"
    DELEGATED_LINES_GROUP = "DelegatedLinesGroup"
    GROUP_CALL_PICKUP = "GroupCallPickup"
    PAGING_ONLY = "PagingOnly"
    SITE = "Site"
    PROXY_ADMIN = "ProxyAdmin"
    APPLICATION_EXTENSION = "ApplicationExtension"
    ROOM = "Room"
    ROOM_CONNECTOR = "RoomConnector"
    BOT = "Bot"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, value: str | None) -> ExtensionType:
        try:
            return cls(value or "Unknown")
        except ValueError:
            return cls.UNKNOWN


# Extension types whose calls are a person's calls (each gets its own call log). A
# shared-lines or delegated-lines group rings its members' own extensions, which are
# logged; queues, menus, park and paging only route; fax-only users take no voice calls;
# rooms, bots and application extensions are not people to log for. An UNKNOWN type (one
# newer than this list) counts as a person: logging a call too many is seen and fixed,
# one too few is never seen.
ANSWERS_AS_A_PERSON = frozenset(
    {
        ExtensionType.USER,
        ExtensionType.DIGITAL_USER,
        ExtensionType.VIRTUAL_USER,
        ExtensionType.FLEXIBLE_USER,
        ExtensionType.LIMITED,
        ExtensionType.UNKNOWN,
    }
)


class Extension(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the account's extension list (the directory)."""

    id: str
    extension_number: str | None = None
    name: str | None = None
    type: ExtensionType = ExtensionType.UNKNOWN
    status: str | None = None
    email: str | None = None
    department: str | None = None
    # IANA name of the user's own time zone (RingCentral regional settings); None: unknown.
    timezone: str | None = None

    @property
    def is_user(self) -> bool:
        """Gets call logs of its own (see :data:`ANSWERS_AS_A_PERSON`)."""
        return self.type in ANSWERS_AS_A_PERSON


class CompletedCall(msgspec.Struct, frozen=True, kw_only=True):
    """One call log worth writing: one user's (extension's) part in one telephony session.

    ``key`` is the idempotency key, ``"<telephonySessionId>:<extensionId>"`` (or
    ``"<telephonySessionId>:-"`` for a call that never reached a user), built
    the same way from live events and from call-log records so a call seen
    both ways is logged once. Durations are whole milliseconds; ``talk_ms``
    excludes ring, queue and hold time, so ring + talk + hold <= total. Talk
    time is RingCentral's definition ("Calculating Call Time Metrics"): the time
    the user's party was connected and nobody was on hold, on either side.
    """

    key: str
    telephony_session_id: str
    session_id: str | None
    account_id: str
    extension_id: str | None
    extension_number: str | None
    user_name: str | None
    user_email: str | None
    direction: Direction
    external_number: str | None  # E.164, None for internal calls
    external_name: str | None
    internal_number: str | None  # the other extension on an internal call
    result: CallResult
    start_time: datetime  # UTC, when the session started
    answer_time: datetime | None  # when this user answered (None if never)
    end_time: datetime  # UTC, when this user's part ended
    ring_ms: int  # from start until the user answered (or until the end if never)
    queue_ms: int  # part of ring_ms spent in IVR / queue before the user's phone rang
    talk_ms: int
    hold_ms: int
    total_ms: int
    recording_ids: tuple[str, ...] = ()
    transferred_to: str | None = None
    queue_name: str | None = None
    final_status: str | None = None
    final_reason: str | None = None
    source: CallSource = CallSource.LIVE
    # Fields given as an estimate, not a measurement (names from APPROXIMABLE): a
    # call-log record says when a user's leg started and how long it lasted, not when
    # the user answered nor how long they held (research rc-protocol.md C3).
    approximate: tuple[str, ...] = ()
    # Extension numbers of every RingCentral party in the session (users, queues,
    # IVR menus); the blocklist matches "any participating extension" against it.
    participants: tuple[str, ...] = ()
    # The user's own number on this call: the number the caller dialled on an inbound
    # call (a direct or company number), the caller id shown on an outbound one.
    own_number: str | None = None
    # IANA time zone of the handling user (the directory's, from RingCentral's regional
    # settings) when the call was built; None: unknown. Writers with ``timezone = "user"``
    # show the call's times and dates in it.
    user_timezone: str | None = None

    def seconds(self, ms: int) -> int:
        """Whole seconds, rounded half up (the unit of the replay output)."""
        return (ms + 500) // 1000


def idempotency_key(telephony_session_id: str, extension_id: str | None) -> str:
    return f"{telephony_session_id}:{extension_id or '-'}"


def encode_call(call: CompletedCall) -> bytes:
    return msgspec.json.encode(call)


def decode_call(data: bytes | str) -> CompletedCall:
    return msgspec.json.decode(data, type=CompletedCall)
