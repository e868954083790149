"""Subject and note templates of the CRM writers (config -> here -> crm/content.py).

A template is text with ``{variable}`` fields (``str.format`` syntax, ``{{``/``}}`` for a
brace). Templating is safe by construction: a field is a bare name from :data:`VARIABLES`
-- no attribute or index access, no conversion, no format spec -- so a template can only
place the documented strings, never reach into objects. :func:`problem` says what is wrong
with a template (the configuration reports it under the key, at ``check-config``);
:func:`render` fills a checked template for a call. :class:`Style` is how one writer
renders its logs (zone, recordings, templates), from its settings; the zone is chosen per
call (:meth:`Style.zone`: the handling user's RingCentral zone for ``timezone = "user"``).
Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import ContactSettings, RecordingsMode
from sscl_daemon.crm import content

# The template language (variables, the check) is shared with the configuration.
from sscl_daemon.templating import VARIABLES as VARIABLES
from sscl_daemon.templating import problem as problem


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
        "timezone": tz.key if tz is not None else "UTC",
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
    """How a writer renders subject and note: its time zone (``tz``, and with ``user_zone``
    the handling user's first), what it does with recordings, and its templates (None: the
    default subject / facts)."""

    tz: ZoneInfo | None = None
    recordings: RecordingsMode = RecordingsMode.LINK
    subject_template: str | None = None
    note_template: str | None = None
    user_zone: bool = False

    @classmethod
    def of(cls, settings: ContactSettings) -> Style:
        return cls(
            content.zone(settings.timezone),
            settings.recordings,
            settings.subject_template,
            settings.note_template,
            settings.user_timezone,
        )

    def zone(self, call: CompletedCall) -> ZoneInfo | None:
        """The zone of this call's times and CRM date fields (see ``content.call_zone``)."""
        return content.call_zone(call, self.tz, self.user_zone)

    def subject(self, call: CompletedCall, contact_name: str | None) -> str:
        if self.subject_template:
            return render(self.subject_template, call, contact_name, self.zone(call))
        return content.subject(call, contact_name)

    def _body(self, call: CompletedCall, contact_name: str | None) -> str | None:
        if not self.note_template:
            return None
        return render(self.note_template, call, contact_name, self.zone(call))

    def _note(self, call: CompletedCall, contact_name: str | None) -> content.NoteOptions:
        return {
            "tz": self.zone(call),
            "recordings": self.recordings,
            "body": self._body(call, contact_name),
        }

    def note_html(self, call: CompletedCall, contact_name: str | None) -> str:
        return content.note_html(call, contact_name, **self._note(call, contact_name))

    def note_text(self, call: CompletedCall, contact_name: str | None) -> str:
        return content.note_text(call, contact_name, **self._note(call, contact_name))
