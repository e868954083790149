"""Typed shapes of the RingCentral REST answers the daemon reads (decoding only, no I/O).

`rest.py` decodes responses into these; `reconcile.py` maps call-log records to
`CompletedCall`s and `directory.py` turns extension records into the directory. Field names
are the platform's own (camelCase, research/rc-protocol.md C3); unknown fields are ignored and
every field the daemon does not strictly need is optional, so a platform change costs data,
not the process. Ids arrive as numbers in the call log (`extension.id`) and as strings
elsewhere; `IdValue` accepts both and `as_id` normalises them to strings (research G-C2).
"""

from __future__ import annotations

import msgspec

IdValue = str | int


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

    phoneNumber: str | None = None
    extensionNumber: str | None = None
    extensionId: IdValue | None = None
    name: str | None = None


class ExtensionRef(msgspec.Struct, kw_only=True):
    id: IdValue | None = None


class RecordingRef(msgspec.Struct, kw_only=True):
    id: IdValue | None = None


class SessionRef(msgspec.Struct, kw_only=True):
    """`transferTarget` / `transferee` of a leg: the other session of a warm transfer."""

    telephonySessionId: str | None = None


class CallLogLeg(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    """One leg of a Detailed call-log record."""

    startTime: str | None = None
    duration: float | None = None
    durationMs: int | None = None
    direction: str | None = None
    action: str | None = None
    result: str | None = None
    reason: str | None = None
    legType: str | None = None
    master: bool = False
    from_: CallerInfo | None = None
    to: CallerInfo | None = None
    extension: ExtensionRef | None = None
    recording: RecordingRef | None = None
    telephonySessionId: str | None = None
    partyId: str | None = None
    # Warm transfer (API reference CallLogRecordLegInfo): on the transferring user's leg,
    # the session the call went on in; on the target's leg, the session it came from.
    transferTarget: SessionRef | None = None
    transferee: SessionRef | None = None


class CallLogRecord(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    """One account call-log record (one call; Detailed view adds `legs`)."""

    id: IdValue
    uri: str | None = None
    telephonySessionId: str | None = None
    sessionId: IdValue | None = None
    partyId: str | None = None
    startTime: str
    duration: float | None = None
    durationMs: int | None = None
    type: str | None = None
    direction: str | None = None
    action: str | None = None
    result: str | None = None
    reason: str | None = None
    from_: CallerInfo | None = None
    to: CallerInfo | None = None
    extension: ExtensionRef | None = None
    recording: RecordingRef | None = None
    lastModifiedTime: str | None = None
    legs: list[CallLogLeg] = msgspec.field(default_factory=list)

    @property
    def account_id(self) -> str | None:
        """The account id the record's own `uri` names (`.../account/<id>/call-log/...`)."""
        marker = "/account/"
        if not self.uri or marker not in self.uri:
            return None
        return self.uri.split(marker, 1)[1].split("/", 1)[0] or None


class CallLogPage(msgspec.Struct, kw_only=True):
    records: list[CallLogRecord] = msgspec.field(default_factory=list)
    navigation: Navigation = msgspec.field(default_factory=Navigation)


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
