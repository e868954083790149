"""What a call log says, independent of the CRM: pure rendering of a ``CompletedCall``.

Every writer builds its request from these pieces (subject, neutral outcome, durations in
the unit the CRM wants, a plain-text or HTML note, recording links) so the logs read the
same in every CRM. Nothing here does I/O or reads the clock.

The note carries two marker lines that make duplicates recognisable after the fact:

* ``RingCentral session: <telephonySessionId>`` (plus ``RingCentral call session:
  <sessionId>`` when known) -- the same session id a user's own client writes into its
  logs (App Connect puts a "Session Id" line in its composed body), so a log made by a
  client for the same call is found;
* ``sscl-key: <key>`` -- our idempotency key (``<telephonySessionId>:<extensionId>``), so our
  own earlier attempt is found after a crash between the CRM's answer and our commit.

:func:`recognise` reads them back: our key means "our own record"; a session id without any
``sscl-key`` line means "a client-made log of the same call". A log of ours for *another*
user of the same session (a transfer) carries a different key and is not a match.
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict, Unpack
from urllib.parse import quote
from zoneinfo import ZoneInfo

import msgspec
import phonenumbers

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction
from sscl_daemon.config import ContactSettings, RecordingsMode
from sscl_daemon.zones import zone as zone  # the writers' content.zone(name), call_zone

SESSION_LABEL = "RingCentral session"
CALL_SESSION_LABEL = "RingCentral call session"
KEY_LABEL = "sscl-key"
RECORDING_BASE = "https://media.ringcentral.com"
# RingCentral's media reader: signs a RingCentral user in and plays a content URI.
MEDIA_READER = "https://ringcentral.github.io/ringcentral-media-reader/index.html"
DOCUMENT_VERSION = 1

_TAG = re.compile(r"<[^>]*>")
_KEY_LINE = re.compile(rf"{re.escape(KEY_LABEL)}:\s*([^\s<]+)")
# Our own session line and the common "Session Id: <id>" line of client-made logs.
_SESSION_LINE = re.compile(
    rf"(?:{re.escape(SESSION_LABEL)}|{re.escape(CALL_SESSION_LABEL)}|session\s*id)\s*[:=]\s*([^\s<]+)",
    re.IGNORECASE,
)


class CallOutcome(enum.StrEnum):
    """A neutral call outcome; each writer maps it to the CRM's own values."""

    ANSWERED = "answered"
    NO_ANSWER = "no answer"
    VOICEMAIL = "voicemail"
    BUSY = "busy"
    REJECTED = "rejected"
    TRANSFERRED = "transferred"
    ABANDONED = "abandoned"
    INCOMPLETE = "incomplete"


_OUTCOMES = {
    CallResult.ANSWERED: CallOutcome.ANSWERED,
    CallResult.MISSED: CallOutcome.NO_ANSWER,
    CallResult.VOICEMAIL: CallOutcome.VOICEMAIL,
    CallResult.BUSY: CallOutcome.BUSY,
    CallResult.REJECTED: CallOutcome.REJECTED,
    CallResult.TRANSFERRED: CallOutcome.TRANSFERRED,
    CallResult.ABANDONED: CallOutcome.ABANDONED,
    CallResult.INCOMPLETE: CallOutcome.INCOMPLETE,
}


def outcome(call: CompletedCall) -> CallOutcome:
    """The neutral outcome. An unanswered outbound call reads as "no answer" whatever the cause
    the far end gave, except busy, which both directions report as such."""
    result = _OUTCOMES[call.result]
    if call.direction is Direction.OUTBOUND and result in (
        CallOutcome.REJECTED,
        CallOutcome.ABANDONED,
    ):
        return CallOutcome.NO_ANSWER
    return result


def result_words(call: CompletedCall) -> str:
    """The outcome as a note says it. A call that went to the user's voicemail is a missed
    call with a voicemail (the caller left it), not the rep's "left voicemail" outcome."""
    result = outcome(call)
    return "missed, voicemail left" if result is CallOutcome.VOICEMAIL else result.value


def was_connected(call: CompletedCall) -> bool:
    """Whether a person talked on the call (answered, or answered then transferred)."""
    return call.answer_time is not None and call.talk_ms > 0


# -- numbers ---------------------------------------------------------------------------------


def to_e164(number: str | None, region: str | None = None) -> str | None:
    """``number`` in E.164, or None when it cannot be parsed as a valid phone number.

    Numbers without a ``+`` need ``region`` (ISO 3166 alpha-2, e.g. ``"US"``)."""
    if not number:
        return None
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def national_digits(e164: str) -> str | None:
    """The national significant number (no country code, no trunk prefix), for CRMs whose
    users store numbers in national format."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.national_significant_number(parsed)


def phone_variants(e164: str) -> tuple[str, ...]:
    """Forms a stored phone number commonly takes, most specific first (for exact searches)."""
    variants = [e164, e164.lstrip("+")]
    national = national_digits(e164)
    if national and national not in variants:
        variants.append(national)
    return tuple(variants)


def same_number(stored: str, e164: str) -> bool:
    """Whether a number as a user typed it into a CRM (any format; national numbers read in
    the country of ``e164``) is ``e164``."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return False
    return to_e164(stored, region) == e164


# -- time and durations ----------------------------------------------------------------------


def talk_seconds(call: CompletedCall) -> int:
    return call.seconds(call.talk_ms)


def minutes(seconds: int) -> int:
    """Whole minutes, rounded up: a 10 s call is one minute, a 0 s call is zero."""
    return -(-seconds // 60)


def hms(seconds: int) -> str:
    """``HH:MM:SS`` (hours may exceed 24)."""
    hours, rest = divmod(max(seconds, 0), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def utc(moment: datetime) -> datetime:
    """The moment in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 with a ``Z`` and millisecond precision."""
    return utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def local(moment: datetime, tz: ZoneInfo | None) -> datetime:
    """The moment in ``tz`` (UTC without one)."""
    return utc(moment).astimezone(tz) if tz is not None else utc(moment)


def shown_time(moment: datetime, tz: ZoneInfo | None) -> str:
    """A time as a note shows it: ISO UTC without a zone, else local with its abbreviation
    and offset (``2026-03-02 18:05:09 EST (-05:00)``)."""
    if tz is None:
        return iso_utc(moment)
    here = local(moment, tz)
    offset = here.strftime("%z")
    return f"{here:%Y-%m-%d %H:%M:%S} {here.tzname()} ({offset[:3]}:{offset[3:]})"


def local_date(moment: datetime, tz: ZoneInfo | None) -> str:
    """The calendar date (``YYYY-MM-DD``) of the moment in ``tz`` (a CRM's date field)."""
    return local(moment, tz).date().isoformat()


def call_zone(call: CompletedCall, configured: ZoneInfo | None, user: bool) -> ZoneInfo | None:
    """The zone a call's times and dates are shown in: with ``user`` (a writer's ``timezone =
    "user"``), the handling user's RingCentral zone when the directory knew it, else the
    writer's ``configured`` zone (None: UTC).

    A user zone this system's time-zone database lacks (a call stored by another machine)
    falls back to ``configured`` too."""
    if user and call.user_timezone:
        try:
            return zone(call.user_timezone)
        except ValueError:
            return configured
    return configured


def zone_of(settings: ContactSettings) -> Callable[[CompletedCall], ZoneInfo | None]:
    """A writer's :func:`call_zone`, from its contact settings (``timezone``, and
    ``user_timezone`` for ``timezone = "user"``)."""
    configured, user = zone(settings.timezone), settings.user_timezone
    return lambda call: call_zone(call, configured, user)


# -- subject and note ------------------------------------------------------------------------


def counterpart(call: CompletedCall, contact_name: str | None = None) -> str:
    """Who the call was with, as shown to users: the contact name and number when known."""
    number = call.external_number or call.internal_number or "unknown number"
    name = contact_name or call.external_name
    return f"{name} ({number})" if name else number


def subject(call: CompletedCall, contact_name: str | None = None) -> str:
    """``Inbound call from …`` / ``Outbound call to …`` / ``Internal call with …``."""
    who = counterpart(call, contact_name)
    if call.direction is Direction.INBOUND:
        return f"Inbound call from {who}"
    if call.direction is Direction.OUTBOUND:
        return f"Outbound call to {who}"
    return f"Internal call with {who}"


def recording_urls(call: CompletedCall, media_base: str = RECORDING_BASE) -> tuple[str, ...]:
    """Content links of the call's recordings (they need a token with ``ReadCallRecording``)."""
    base = media_base.rstrip("/")
    return tuple(
        f"{base}/restapi/v1.0/account/{call.account_id}/recording/{rid}/content"
        for rid in call.recording_ids
    )


def player_link(content_uri: str, reader: str = MEDIA_READER) -> str:
    """A link a RingCentral user can open in a browser to play ``content_uri``."""
    return f"{reader}?media={quote(content_uri, safe='')}"


def recording_links(
    call: CompletedCall, recordings: RecordingsMode | None, media_base: str = RECORDING_BASE
) -> tuple[str, ...]:
    """The recording lines of a note at create: the raw content URIs (``None``, for readers
    with a RingCentral token), player links (``link``), or none (``upload`` attaches the
    audio later, ``off``)."""
    if recordings is None:
        return recording_urls(call, media_base)
    if recordings is RecordingsMode.LINK:
        return tuple(player_link(url) for url in recording_urls(call, media_base))
    return ()


@dataclass(frozen=True)
class NoteLine:
    label: str
    value: str
    link: bool = False


def note_lines(
    call: CompletedCall,
    contact_name: str | None = None,
    media_base: str = RECORDING_BASE,
    tz: ZoneInfo | None = None,
    recordings: RecordingsMode | None = None,
    body: str | None = None,
) -> list[NoteLine]:
    """The facts of a note, in reading order; the marker lines come last. ``body`` (a
    rendered note template) replaces the facts; the recording and marker lines stay."""
    if body is not None:
        lines = [NoteLine("", line) for line in body.splitlines()]
        return [*lines, *_links_and_markers(call, media_base, recordings)]
    lines = [
        NoteLine("Direction", call.direction.value),
        NoteLine("Result", result_words(call)),
        NoteLine("With", counterpart(call, contact_name)),
        NoteLine("Start", shown_time(call.start_time, tz)),
        NoteLine("Talk time", hms(talk_seconds(call))),
        NoteLine("Ring time", hms(call.seconds(call.ring_ms))),
    ]
    if call.queue_ms:
        lines.append(NoteLine("Queue time", hms(call.seconds(call.queue_ms))))
    if call.queue_name:
        lines.append(NoteLine("Queue", call.queue_name))
    if call.hold_ms:
        lines.append(NoteLine("Hold time", hms(call.seconds(call.hold_ms))))
    lines.append(NoteLine("Total time", hms(call.seconds(call.total_ms))))
    if call.user_name or call.extension_number:
        user = call.user_name or ""
        if call.extension_number:
            user = f"{user} (ext. {call.extension_number})".strip()
        lines.append(NoteLine("RingCentral user", user))
    if call.transferred_to:
        lines.append(NoteLine("Transferred to", call.transferred_to))
    return [*lines, *_links_and_markers(call, media_base, recordings)]


def _links_and_markers(
    call: CompletedCall, media_base: str, recordings: RecordingsMode | None
) -> list[NoteLine]:
    lines = [
        NoteLine("Recording", url, link=True)
        for url in recording_links(call, recordings, media_base)
    ]
    lines.append(NoteLine(SESSION_LABEL, call.telephony_session_id))
    if call.session_id:
        lines.append(NoteLine(CALL_SESSION_LABEL, call.session_id))
    lines.append(NoteLine(KEY_LABEL, call.key))
    return lines


class NoteOptions(TypedDict, total=False):
    """How a note is written beyond its call and contact: :func:`note_lines`'s keywords."""

    media_base: str
    tz: ZoneInfo | None
    recordings: RecordingsMode | None
    body: str | None


def note_text(
    call: CompletedCall, contact_name: str | None = None, **options: Unpack[NoteOptions]
) -> str:
    """One ``label: value`` line per fact (see :func:`note_lines`)."""
    lines = note_lines(call, contact_name, **options)
    return "\n".join(f"{n.label}: {n.value}" if n.label else n.value for n in lines)


def note_html(
    call: CompletedCall, contact_name: str | None = None, **options: Unpack[NoteOptions]
) -> str:
    """One ``<p>`` per line; values escaped, recording links clickable."""
    parts = []
    for n in note_lines(call, contact_name, **options):
        value = html.escape(n.value)
        if n.link:
            value = f'<a href="{value}">{value}</a>'
        parts.append(f"<p>{html.escape(n.label)}: {value}</p>" if n.label else f"<p>{value}</p>")
    return "".join(parts)


def call_document(call: CompletedCall, media_base: str = RECORDING_BASE) -> dict[str, object]:
    """The call as a versioned JSON object (jsonl lines, webhook ``data``).

    Version 1: every ``CompletedCall`` field under its own name (times RFC 3339 UTC, enums as
    their string values, durations in ms) plus ``schema_version`` (1), ``outcome`` (the
    neutral outcome), ``subject``, ``talk_seconds`` and ``recording_urls``. New fields may
    be added within a version; renaming or removing one bumps it.
    """
    document = msgspec.to_builtins(call)
    assert isinstance(document, dict)
    document.update(
        schema_version=DOCUMENT_VERSION,
        outcome=outcome(call).value,
        subject=subject(call),
        talk_seconds=talk_seconds(call),
        recording_urls=list(recording_urls(call, media_base)),
    )
    return document


# -- recognising existing logs ---------------------------------------------------------------


class Match(enum.Enum):
    """How an existing CRM record relates to a call."""

    OURS = "ours"  # carries our idempotency key
    CLIENT = "client"  # a log without our key that names the same RingCentral session


def recognise(call: CompletedCall, text: str | None) -> Match | None:
    """Whether a record's note/description is this call's log (see the module docstring)."""
    if not text:
        return None
    # Clients write HTML bodies ("<b>Session Id</b>: 123"): read the text, not the markup.
    text = html.unescape(_TAG.sub(" ", text))
    keys = _KEY_LINE.findall(text)
    if call.key in keys:
        return Match.OURS
    if keys:
        return None
    sessions = set(_SESSION_LINE.findall(text))
    wanted = {call.telephony_session_id, call.session_id} - {None}
    return Match.CLIENT if sessions & wanted else None


def has_key_line(text: str | None) -> bool:
    """Whether a record's text carries an ``sscl-key`` line (a log of ours, any user's)."""
    return bool(text) and bool(_KEY_LINE.search(html.unescape(_TAG.sub(" ", text or ""))))


def first_match(
    call: CompletedCall, records: Sequence[tuple[str, str | None]]
) -> tuple[str, Match] | None:
    """The first ``(record_id, text)`` recognised as this call's log, ours preferred."""
    found: tuple[str, Match] | None = None
    for record_id, text in records:
        match = recognise(call, text)
        if match is Match.OURS:
            return record_id, match
        if match is Match.CLIENT and found is None:
            found = (record_id, match)
    return found
