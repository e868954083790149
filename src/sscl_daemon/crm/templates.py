"""Subject and note templates of the CRM writers (config -> here -> crm/content.py).

A template is text with ``{variable}`` fields (``str.format`` syntax, ``{{``/``}}`` for a
brace). Templating is safe by construction: a field is a bare name from :data:`VARIABLES`
-- no attribute or index access, no conversion, no format spec -- so a template can only
place the documented strings, never reach into objects. :func:`problem` says what is wrong
with a template (the configuration reports it under the key, at ``check-config``);
:func:`render` fills a checked template for a call. :class:`Style` is how one writer
renders its logs (zone, recordings, templates), from its settings. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Formatter
from zoneinfo import ZoneInfo

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import ContactSettings, RecordingsMode
from sscl_daemon.crm import content

# name -> what it holds (docs/crm-setup.md lists them from here).
VARIABLES: dict[str, str] = {
    "direction": "inbound, outbound or internal",
    "direction_title": "Inbound, Outbound or Internal",
    "result": "what happened, in words (answered, missed, voicemail left ...)",
    "contact": "the contact's name and number, or the number alone",
    "contact_name": "the CRM contact's (or caller ID) name; empty when unknown",
    "number": "the other party's number (E.164), or the other extension",
    "our_number": "the RingCentral number the call was made to or from",
    "user": "the RingCentral user's name",
    "extension": "the RingCentral user's extension number",
    "date": "the start date (YYYY-MM-DD) in the writer's time zone",
    "time": "the start time (HH:MM:SS) in the writer's time zone",
    "start": "the start date and time with the zone",
    "talk": "talk time, HH:MM:SS",
    "ring": "ring time, HH:MM:SS",
    "hold": "hold time, HH:MM:SS",
    "total": "the whole call, HH:MM:SS",
    "queue": "the call queue's name; empty when none",
    "transferred_to": "who the user transferred the call to; empty when nobody",
    "session_id": "the RingCentral telephony session id",
}


def problem(template: str) -> str | None:
    """Why ``template`` cannot be used, naming the offending field; None when it is fine."""
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:
        return f"is not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field == "" or field.isdigit():
            return "has an empty or numbered field {}; name a variable, e.g. {contact}"
        if conversion or spec:
            return f"field {{{field}}} has a conversion or format spec; use the bare name"
        if field not in VARIABLES:
            return f"unknown variable {{{field}}}; use one of " + ", ".join(
                f"{{{v}}}" for v in VARIABLES
            )
    return None


def values(call: CompletedCall, contact_name: str | None, tz: ZoneInfo | None) -> dict[str, str]:
    """Every variable's value for a call (pure)."""
    local = content.local(call.start_time, tz)
    return {
        "direction": call.direction.value,
        "direction_title": call.direction.value.capitalize(),
        "result": content.result_words(call),
        "contact": content.counterpart(call, contact_name),
        "contact_name": contact_name or call.external_name or "",
        "number": call.external_number or call.internal_number or "",
        "our_number": call.own_number or "",
        "user": call.user_name or "",
        "extension": call.extension_number or "",
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M:%S"),
        "start": content.shown_time(call.start_time, tz),
        "talk": content.hms(content.talk_seconds(call)),
        "ring": content.hms(call.seconds(call.ring_ms)),
        "hold": content.hms(call.seconds(call.hold_ms)),
        "total": content.hms(call.seconds(call.total_ms)),
        "queue": call.queue_name or "",
        "transferred_to": call.transferred_to or "",
        "session_id": call.telephony_session_id,
    }


def render(
    template: str, call: CompletedCall, contact_name: str | None, tz: ZoneInfo | None
) -> str:
    """A checked template filled for ``call`` (surrounding space trimmed)."""
    return template.format_map(values(call, contact_name, tz)).strip()


@dataclass(frozen=True)
class Style:
    """How a writer renders subject and note: its time zone, what it does with recordings,
    and its templates (None: the default subject / facts)."""

    tz: ZoneInfo | None = None
    recordings: RecordingsMode = RecordingsMode.LINK
    subject_template: str | None = None
    note_template: str | None = None

    @classmethod
    def of(cls, settings: ContactSettings) -> Style:
        return cls(
            content.zone(settings.timezone),
            settings.recordings,
            settings.subject_template,
            settings.note_template,
        )

    def subject(self, call: CompletedCall, contact_name: str | None) -> str:
        if self.subject_template:
            return render(self.subject_template, call, contact_name, self.tz)
        return content.subject(call, contact_name)

    def _body(self, call: CompletedCall, contact_name: str | None) -> str | None:
        if not self.note_template:
            return None
        return render(self.note_template, call, contact_name, self.tz)

    def note_html(self, call: CompletedCall, contact_name: str | None) -> str:
        return content.note_html(
            call,
            contact_name,
            tz=self.tz,
            recordings=self.recordings,
            body=self._body(call, contact_name),
        )

    def note_text(self, call: CompletedCall, contact_name: str | None) -> str:
        return content.note_text(
            call,
            contact_name,
            tz=self.tz,
            recordings=self.recordings,
            body=self._body(call, contact_name),
        )
