"""Pieces the plug-in writers Zoho CRM, Dynamics 365, Clio and Bullhorn share (their
constructor and their mapping -> here).

* :func:`options_of` -- the writer's typed options, or the error naming the type it needs.
* What a voicemail means in a CRM's terms (issue 15 item 9): a call the *caller* left in the
  user's mailbox (:func:`caller_left_voicemail`) is for the user a missed call with a
  voicemail -- nobody talked, no talk time to record or bill -- while "left a voicemail" is
  the rep's outcome of an *outbound* call that reached the other side's mailbox
  (:func:`reached_voicemail`). Each writer writes these in its CRM's own fields.
* Recognising a call log another client wrote without naming the session (issue 15 item 3):
  App Connect writes no session id by default, so its logs (and those of RingCentral's own
  CRM apps) are recognised by what they do carry -- the call's direction and start minute,
  and the caller's number or the matched contact. :class:`Fingerprints` hands each such
  record to at most one call, so two quick calls from one number never share a log;
  :func:`prepare_unlogged` runs both checks around the contact resolution of a batch.
* :class:`BaseUrlCalls` -- requests under a base URL a CRM names only after sign-in (Zoho's
  ``api_domain``, Bullhorn's ``restUrl``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Final, Generic, TypeVar

from sscl_daemon.calls.model import CompletedCall, Direction
from sscl_daemon.config import WriterSettings
from sscl_daemon.crm import batch, content
from sscl_daemon.crm.base import AlreadyExisted
from sscl_daemon.crm.batch import Pending
from sscl_daemon.crm.contacts import LookupFailure, Resolution, Resolver
from sscl_daemon.crm.http import CrmHttp, Response

# A client stamps its log with the call-log record's start, which may round into the next
# (or the previous) minute of the start we saw.
START_SLACK: Final = timedelta(minutes=1)

T = TypeVar("T")
R = TypeVar("R")
X = TypeVar("X")


def options_of(settings: WriterSettings, kind: type[T], writer: str, type_name: str) -> T:
    """The writer's options as ``kind``; a writer built from another type's settings is a
    programming error, said with the type it needs."""
    opts = settings.options
    if not isinstance(opts, kind):
        raise TypeError(f'writer {settings.name!r}: {writer} needs type = "{type_name}"')
    return opts


# -- voicemail -------------------------------------------------------------------------------


def caller_left_voicemail(call: CompletedCall) -> bool:
    """An inbound (or internal) call that went to the user's voicemail: a missed call."""
    return (
        call.direction is not Direction.OUTBOUND
        and content.outcome(call) is content.CallOutcome.VOICEMAIL
    )


def reached_voicemail(call: CompletedCall) -> bool:
    """An outbound call that reached the other side's voicemail (the rep's outcome)."""
    return (
        call.direction is Direction.OUTBOUND
        and content.outcome(call) is content.CallOutcome.VOICEMAIL
    )


def talked(call: CompletedCall) -> bool:
    """Whether the user talked with someone: never on a call the caller left as voicemail,
    whatever time a record counts for the mailbox's greeting and message."""
    return content.was_connected(call) and not caller_left_voicemail(call)


def talk_seconds(call: CompletedCall) -> int:
    """Talk time as the CRM records (and bills) it: zero for a missed call."""
    return content.talk_seconds(call) if talked(call) else 0


# -- client logs without the session ---------------------------------------------------------


def near_start(call: CompletedCall, when: datetime | None) -> bool:
    """Whether a client's stamp of the call's start is the call's start minute, one minute
    either way (the stamp may be cut to the minute)."""
    if when is None:
        return False
    start = content.utc(call.start_time).replace(second=0, microsecond=0)
    return abs(content.utc(when).replace(second=0, microsecond=0) - start) <= START_SLACK


class Fingerprints(Generic[X, R]):
    """Records another client made, each recognised as the log of at most one call.

    ``matches(subject, record)`` is the CRM's fingerprint (``subject``: the call, or the call
    with its resolved contact); :meth:`take` answers the first record not yet taken that
    matches, and takes it.
    """

    def __init__(self, records: list[tuple[str, R]], matches: Callable[[X, R], bool]) -> None:
        self._records = list(records)
        self._matches = matches

    def take(self, subject: X) -> str | None:
        for i, (record_id, record) in enumerate(self._records):
            if self._matches(subject, record):
                del self._records[i]
                return record_id
        return None


async def prepare_unlogged(
    chunk: list[Pending],
    resolver: Resolver,
    payload: Callable[[CompletedCall, Resolution], dict[str, object]],
    records: list[tuple[str, R]] | None,
    text: Callable[[R], str | None],
    matches: Callable[[Pending, R], bool],
    own_id: Callable[[CompletedCall], str | None] = lambda call: None,
) -> list[Pending]:
    """The open calls of ``chunk`` that no other client logged, resolved and with their
    payload; ``records`` (None: detection is off) are the CRM's records around the calls
    without our key. A record whose text names the call's session settles it first; the
    rest are fingerprinted after the resolution, which finds the contact they may name."""
    others: Fingerprints[Pending, R] | None = None
    if records is not None:
        texts = [(rid, text(r)) for rid, r in records]
        for p in batch.still_open(chunk):
            match = content.first_match(p.call, texts)
            if match is not None and match[0] != own_id(p.call):
                p.result = AlreadyExisted(match[0])
        named = {p.result.record_id for p in chunk if isinstance(p.result, AlreadyExisted)}
        others = Fingerprints(
            [
                (rid, r)
                for rid, r in records
                if rid not in named and not content.has_key_line(text(r))
            ],
            matches,
        )
    ready = await batch.prepare(chunk, resolver, payload)
    if others is not None:
        for p in ready:
            if (theirs := others.take(p)) is not None:
                p.result = AlreadyExisted(theirs)
    return batch.still_open(ready)


def text_field(name: str) -> Callable[[Mapping[str, object]], str | None]:
    """Reads a record's note field (a string, or nothing)."""

    def read(record: Mapping[str, object]) -> str | None:
        value = record.get(name)
        return value if isinstance(value, str) else None

    return read


class BaseUrlCalls:
    """Requests under a base URL the CRM names only after sign-in."""

    http: CrmHttp

    async def _base_url(self) -> str | LookupFailure:
        """The base URL (signing in first when needed), or why there is none."""
        raise NotImplementedError

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        accept: frozenset[int] = frozenset(),
    ) -> Response | LookupFailure:
        base = await self._base_url()
        if not isinstance(base, str):
            return base
        return await self.http.request(
            method, base + path, params=params, json_body=body, accept=accept
        )
