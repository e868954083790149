"""The tracker's per-event lookup: a status or reason as spelled on the wire -> what it needs.

Where it sits: :meth:`~sscl_daemon.calls.tracker.Tracker.apply` reads a party's status
code and reason as raw text and wants, for each, the enum member, its bits in the packed
step word (:mod:`~sscl_daemon.calls.state`) and whether it can end the session. One dict
lookup per event gives all of it: the tables are keyed by the exact wire spelling because
hashing an enum member runs Python code; :func:`status_entry` and :func:`reason_entry` handle
every other spelling (through the case-insensitive parsers of
:mod:`~sscl_daemon.calls.codes`). Which reasons hand the call on (so the session does not
end) is written here too, as the tracker reads it.
"""

from __future__ import annotations

from sscl_daemon.calls.codes import (
    ENDED,
    IN_VOICEMAIL,
    Reason,
    StatusCode,
    parse_reason,
    parse_status,
)
from sscl_daemon.calls.state import REASON_INDEX, STATUS_INDEX, STATUS_SHIFT

# Disconnected with one of these: somebody takes the call over, the session goes on.
HANDOFF = (
    Reason.PICKUP,
    Reason.CALL_SWITCH,
    Reason.BLIND_TRANSFER,
    Reason.RCC_TRANSFER,
    Reason.DTMF_TRANSFER,
)

StatusEntry = tuple[StatusCode, int, bool, bool]
ReasonEntry = tuple[Reason, int, bool]


def _status_row(code: StatusCode) -> StatusEntry:
    """(member, its bits in the packed step word, can it end the session, is it unknown)."""
    final = code in ENDED or code in IN_VOICEMAIL
    return code, STATUS_INDEX[code] << STATUS_SHIFT, final, code is StatusCode.UNKNOWN


def _reason_row(reason: Reason) -> ReasonEntry:
    """(member, its bits in the packed step word, is it unknown)."""
    return reason, REASON_INDEX[reason], reason is Reason.UNKNOWN


BY_STATUS_TEXT: dict[str | None, StatusEntry] = {
    m.value: _status_row(m) for m in StatusCode if m is not StatusCode.UNKNOWN
}
BY_REASON_TEXT: dict[str | None, ReasonEntry] = {
    m.value: _reason_row(m) for m in Reason if m is not Reason.UNKNOWN
}
BY_REASON_TEXT[None] = _reason_row(Reason.NONE)


def status_entry(text: str | None) -> StatusEntry:
    """The entry of a status spelled otherwise than the API spec (or missing, or unknown)."""
    return _status_row(parse_status(text))


def reason_entry(text: str | None) -> ReasonEntry:
    """The entry of a reason spelled otherwise than the API spec (or unknown)."""
    return _reason_row(parse_reason(text))
