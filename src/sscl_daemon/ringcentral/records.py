"""Typed shapes of the RingCentral REST answers the daemon reads (decoding only, no I/O).

`rest.py` decodes responses into these; `reconcile.py` maps call-log records to
`CompletedCall`s and `directory.py` turns extension records into the directory. Field names
are the platform's own (camelCase, research/rc-protocol.md C3); unknown fields are ignored and
every field the daemon does not strictly need is optional, so a platform change costs data,
not the process. Ids arrive as numbers in the call log (`extension.id`) and as strings
elsewhere; `IdValue` accepts both and `as_id` normalises them to strings (research G-C2).

Call-log records are bounded like notifications (issue 19): their ids, texts and lists carry
the limits of `calls/wire.py` (one place for them), durations a range of their own, so a
hostile or broken answer cannot put a 3,000-character id into an outbox key. They are
decoded one at a time by `calllog_page.py`, which also dates them: a record it refuses is a
`RecordError` with the reason and the record's bytes, kept as a dead letter, and the page's
other records are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

import msgspec

from sscl_daemon.calls.wire import MAX_ID_LENGTH, Id, Text
from sscl_daemon.errors import SsclError

# A numeric id of the call log (`extension.id`): a 64-bit integer, whose text form (at most
# 20 characters) is well within the id bound.
IdValue = Id | Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
# A call or leg longer than a week is no call: the bound keeps its end computable (a
# `timedelta` of 10^18 ms overflows) and negative figures out.
MAX_CALL_DURATION = timedelta(days=7)
Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_CALL_DURATION.total_seconds())]
Milliseconds = Annotated[int, msgspec.Meta(ge=0, le=MAX_CALL_DURATION // timedelta(milliseconds=1))]
# Legs of one record (research C3: a forwarding, hunting or queue step each): generous for
# a queue that rings many agents, and still a bound on what one record can make us hold.
MAX_LEGS = 1000


class RecordError(SsclError, ValueError):
    """A call-log record (or a page of them) the daemon cannot use.

    `reason` names the record and the field when they are known; `raw` is the record as it
    was received (or as decoded, when the mapping refused it), kept as the dead letter's
    payload. The only error the call-log decoders raise, whatever the input.
    """

    def __init__(self, reason: str, raw: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


def as_id(value: IdValue | None) -> str | None:
    """A platform id as a string (call-log ids are numbers, event ids strings)."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


class PageLink(msgspec.Struct, kw_only=True):
    uri: str = ""


class Navigation(msgspec.Struct, kw_only=True):
    nextPage: PageLink | None = None


class WsToken(msgspec.Struct, kw_only=True):
    """Answer of `POST /restapi/oauth/wstoken` (research A1)."""

    uri: str
    ws_access_token: str
    expires_in: float = 600.0

    def __repr__(self) -> str:
        return f"WsToken(uri={self.uri!r}, expires_in={self.expires_in!r})"


class CallerInfo(msgspec.Struct, kw_only=True):
    """`from` / `to` of a call-log record or leg."""

    phoneNumber: Text | None = None
    extensionNumber: Text | None = None
    extensionId: IdValue | None = None
    name: Text | None = None


class ExtensionRef(msgspec.Struct, kw_only=True):
    id: IdValue | None = None


class RecordingRef(msgspec.Struct, kw_only=True):
    id: IdValue | None = None


class SessionRef(msgspec.Struct, kw_only=True):
    """`transferTarget` / `transferee` of a leg: the other session of a warm transfer."""

    telephonySessionId: Id | None = None


class CallLogLeg(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    """One leg of a Detailed call-log record."""

    startTime: Text | None = None
    duration: Seconds | None = None
    durationMs: Milliseconds | None = None
    direction: Text | None = None
    action: Text | None = None
    result: Text | None = None
    reason: Text | None = None
    legType: Text | None = None
    master: bool = False
    from_: CallerInfo | None = None
    to: CallerInfo | None = None
    extension: ExtensionRef | None = None
    recording: RecordingRef | None = None
    telephonySessionId: Id | None = None
    partyId: Id | None = None
    # Warm transfer (API reference CallLogRecordLegInfo): on the transferring user's leg,
    # the session the call went on in; on the target's leg, the session it came from.
    transferTarget: SessionRef | None = None
    transferee: SessionRef | None = None


class CallLogRecord(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    """One account call-log record (one call; Detailed view adds `legs`)."""

    id: IdValue
    uri: Text | None = None
    telephonySessionId: Id | None = None
    sessionId: IdValue | None = None
    partyId: Id | None = None
    startTime: Text
    duration: Seconds | None = None
    durationMs: Milliseconds | None = None
    type: Text | None = None
    direction: Text | None = None
    action: Text | None = None
    result: Text | None = None
    reason: Text | None = None
    from_: CallerInfo | None = None
    to: CallerInfo | None = None
    extension: ExtensionRef | None = None
    recording: RecordingRef | None = None
    lastModifiedTime: Text | None = None
    legs: Annotated[list[CallLogLeg], msgspec.Meta(max_length=MAX_LEGS)] = msgspec.field(
        default_factory=list
    )

    @property
    def account_id(self) -> str | None:
        """The account id the record's own `uri` names (`.../account/<id>/call-log/...`)."""
        marker = "/account/"
        if not self.uri or marker not in self.uri:
            return None
        found = self.uri.split(marker, 1)[1].split("/", 1)[0]
        # The uri is a text field: what it names is an id only within the id bound.
        return found if 0 < len(found) <= MAX_ID_LENGTH else None


@dataclass(frozen=True)
class CallLogPage:
    """One call-log answer as `calllog_page.decode_call_log_page` reads it: the records it
    takes, those it refused (each with its reason and bytes), and the link to the next."""

    records: list[CallLogRecord] = field(default_factory=list)
    refused: list[RecordError] = field(default_factory=list)
    navigation: Navigation = field(default_factory=Navigation)


class ExtensionContact(msgspec.Struct, kw_only=True):
    firstName: str | None = None
    lastName: str | None = None
    email: str | None = None
    department: str | None = None


class TimezoneInfo(msgspec.Struct, kw_only=True):
    """`regionalSettings.timezone` of one extension, e.g. `{"id": "58", "name": "US/Pacific",
    "description": "Pacific Time (US & Canada)", "bias": "-480"}` (API reference "Get
    Extension"; `bias` is minutes from UTC, standard time only, so it is not used)."""

    id: IdValue | None = None
    name: str | None = None
    description: str | None = None
    bias: IdValue | None = None


class RegionalSettings(msgspec.Struct, kw_only=True):
    timezone: TimezoneInfo | None = None


class ExtensionRecord(msgspec.Struct, kw_only=True):
    """One entry of `GET /restapi/v1.0/account/~/extension`, or the answer of `GET
    .../extension/{id}`. Only the latter carries `regionalSettings` (the list's records,
    `GetExtensionListInfoResponse`, do not); the directory keeps it on the list's records."""

    id: IdValue
    extensionNumber: str | None = None
    name: str | None = None
    type: str | None = None
    status: str | None = None
    contact: ExtensionContact | None = None
    regionalSettings: RegionalSettings | None = None


class ExtensionPage(msgspec.Struct, kw_only=True):
    records: list[ExtensionRecord] = msgspec.field(default_factory=list)
    navigation: Navigation = msgspec.field(default_factory=Navigation)
