"""The template language of call-log subjects and notes: its variables and its check.

Where it sits: at the top of the package, importing nothing of it, so the configuration
(``config/writers.py``, which reports a bad ``subject_template`` or ``note_template``
under its key) and the writers' rendering (``crm/templates.py``) share one definition
without config importing crm.
"""

from __future__ import annotations

from string import Formatter

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
    "date": "the start date (YYYY-MM-DD) in the call's time zone (the writer's timezone,"
    ' or the handling user\'s with timezone = "user")',
    "time": "the start time (HH:MM:SS) in the call's time zone",
    "start": "the start date and time with the zone",
    "timezone": "the call's time zone (IANA name, e.g. America/Los_Angeles; UTC without one)",
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
