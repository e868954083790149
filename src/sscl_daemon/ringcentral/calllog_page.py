"""The edge of the call-log path: one call-log answer's records decoded one at a time, bounded
and dated (issue 19: hostile input is contained).

Where it sits: ``RestClient.call_log_pages`` (``rest.py``) hands each answer's bytes to
:func:`decode_call_log_page`; the records it takes go on to the mapping
(``calllog.py``), and those it refuses, each a :class:`~.records.RecordError` with the reason
and the record's bytes, to the reconciler, which has them kept as dead letters. One bad record
costs itself only: the page's other records are used.

A record is refused when it does not decode into the bounded shape of ``records.py`` (the
notification limits of ``calls/wire.py``: id lengths, text lengths; a duration range; wrong
types; JSON nested past the interpreter's limit), when it holds the NUL character (PostgreSQL
refuses it in text), or when its time cannot be trusted: a ``startTime`` ahead of the read
(calls cannot start in the future; the allowance is the notifications' clock allowance) or
long before the read's window (the call log filters on the start time, so such a record is
not an answer to the query; the allowance is the notifications' day), or a leg that starts
outside its record's call. Such a record would carry its time into a CRM, and a 1970 or
9999 time anywhere near the checkpoint is what issue 19 saw lose calls.

:func:`decode_call_log_page` and :func:`decode_record` raise :class:`~.records.RecordError`
and nothing else, whatever the input.
"""

from __future__ import annotations

import re
from datetime import datetime

import msgspec

from sscl_daemon.calls.events import MAX_EVENT_TIME_AHEAD, MAX_EVENT_TIME_BEHIND
from sscl_daemon.ringcentral.calllog_legs import parse_time
from sscl_daemon.ringcentral.records import (
    MAX_CALL_DURATION,
    CallLogPage,
    CallLogRecord,
    Navigation,
    RecordError,
)

__all__ = ["check_times", "decode_call_log_page", "decode_record"]


class _RawPage(msgspec.Struct, kw_only=True):
    """A call-log answer with its records left undecoded, to be decoded one by one."""

    records: list[msgspec.Raw] = msgspec.field(default_factory=list)
    navigation: Navigation = msgspec.field(default_factory=Navigation)


_page_decoder = msgspec.json.Decoder(_RawPage)
_record_decoder = msgspec.json.Decoder(CallLogRecord)
# A JSON string can carry the NUL character only escaped; PostgreSQL's text refuses it.
_NUL = b"\\u0000"
_TOO_DEEP = "JSON nested too deeply"


def decode_call_log_page(
    body: bytes, date_from: datetime | None = None, now: datetime | None = None
) -> CallLogPage:
    """The records of one call-log answer that can be used, and those refused with the reason.

    ``date_from`` is the start of the read's window and ``now`` when it was read; without
    them (captured answers, tests) the records are not dated. A page that is not a call-log
    answer at all raises :class:`RecordError` (its ``raw`` is the whole answer).
    """
    try:
        page = _page_decoder.decode(body)
        texts = [bytes(raw) for raw in page.records]
        navigation = page.navigation
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RecordError(f"unreadable call-log page: {exc}", body) from None
    except RecursionError:
        # Skipping a record nested past the limit recurses as deeply as decoding it: the
        # page is split without recursion, so that record alone is refused.
        texts, navigation = _split(body)
    records: list[CallLogRecord] = []
    refused: list[RecordError] = []
    for text in texts:
        try:
            record = decode_record(text)
            if date_from is not None and now is not None:
                check_times(record, text, date_from, now)
        except RecordError as exc:
            refused.append(exc)
        else:
            records.append(record)
    return CallLogPage(records, refused, navigation)


def decode_record(raw: bytes) -> CallLogRecord:
    """One call-log record within the bounds of ``records.py``; :class:`RecordError` if not."""
    if _NUL in raw:
        raise RecordError("call-log record refused: a string holds the NUL character", raw)
    try:
        return _record_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RecordError(f"call-log record refused: {exc}", raw) from None
    except RecursionError:
        raise RecordError(f"call-log record refused: {_TOO_DEEP}", raw) from None


def check_times(record: CallLogRecord, raw: bytes, date_from: datetime, now: datetime) -> None:
    """Refuse a record whose start, or a leg's, is not a time the read can trust."""
    record_id = str(record.id)
    start = parse_time(record.startTime, record_id, "startTime", raw)
    ahead = start - now
    if ahead > MAX_EVENT_TIME_AHEAD:
        why = f"is {ahead} ahead of the read at {now.isoformat()}"
    elif date_from - start > MAX_EVENT_TIME_BEHIND:
        why = f"is {date_from - start} before the read's window from {date_from.isoformat()}"
    else:
        why = ""
    if why:
        raise RecordError(
            f"call-log record {record_id}: startTime {start.isoformat()} {why} (untrusted time)",
            raw,
        )
    for leg in record.legs:
        if not leg.startTime:
            continue
        at = parse_time(leg.startTime, record_id, "legs[].startTime", raw)
        if not -MAX_EVENT_TIME_AHEAD <= at - start <= MAX_CALL_DURATION:
            raise RecordError(
                f"call-log record {record_id}: a leg's startTime {at.isoformat()} is outside "
                f"its call, which started at {start.isoformat()} (untrusted time)",
                raw,
            )


# A JSON string (escapes included) or one structural character: enough to find the records
# array's elements and their ends without recursion.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')
_RECORDS_KEY = b'"records"'


def _split(body: bytes) -> tuple[list[bytes], Navigation]:
    """The texts of the page's records, and its navigation, found without recursion."""
    depth = 0
    texts: list[bytes] = []
    array: tuple[int, int] | None = None  # the records array's inside
    opened = -1  # where that inside starts, once the array is open
    element = -1  # where the current element starts, inside the records array
    previous = b""
    for match in _TOKEN.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            if depth == 1 and token == b"[" and previous == _RECORDS_KEY and array is None:
                opened = element = match.end()
            depth += 1
        elif token in (b"]", b"}"):
            depth -= 1
            if depth == 1 and element >= 0:
                texts.append(body[element : match.start()])
                array, element = (opened, match.start()), -1
        elif token == b"," and depth == 2 and element >= 0:
            texts.append(body[element : match.start()])
            element = match.end()
        previous = token
    if array is None:
        raise RecordError(f"unreadable call-log page: {_TOO_DEEP}", body)
    rest = body[: array[0]] + body[array[1] :]
    try:
        navigation = _page_decoder.decode(rest).navigation
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise RecordError(f"unreadable call-log page: {_TOO_DEEP}", body) from None
    return [text for text in (t.strip() for t in texts) if text], navigation
