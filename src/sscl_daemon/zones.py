"""IANA time zones by name: the one check the configuration and the CRM writers share.

Where it sits: at the top of the package, importing nothing of it. The configuration
rejects an unknown ``timezone`` key with :func:`zone_problem`; the writers turn the
checked name into a :class:`~zoneinfo.ZoneInfo` with :func:`zone` (``crm/content.py``
shows times in it). The extension directory (``calls/directory.py``) turns the time zone
of each user's RingCentral regional settings into an IANA name with
:func:`from_ringcentral`, for writers whose ``timezone`` is :data:`USER` (issue 15).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

log = structlog.get_logger(__name__)

# The ``timezone`` value that means "the handling user's RingCentral time zone".
USER = "user"

# RingCentral names its time zones (``regionalSettings.timezone.name`` of an extension,
# e.g. ``{"id": "58", "name": "US/Pacific", "description": "Pacific Time (US & Canada)",
# "bias": "-480"}``) with tz database names, several of them the old aliases of the tz
# "backward" file (US/*, Canada/*, Asia/Calcutta ...). Systems that ship tzdata without
# those aliases (Debian's and Ubuntu's tzdata-legacy split) do not know them, so they are
# turned into their canonical zone here; any other name is used when the system knows it.
RINGCENTRAL_ALIASES: dict[str, str] = {
    "US/Alaska": "America/Anchorage",
    "US/Aleutian": "America/Adak",
    "US/Arizona": "America/Phoenix",
    "US/Central": "America/Chicago",
    "US/East-Indiana": "America/Indiana/Indianapolis",
    "US/Eastern": "America/New_York",
    "US/Hawaii": "Pacific/Honolulu",
    "US/Indiana-Starke": "America/Indiana/Knox",
    "US/Michigan": "America/Detroit",
    "US/Mountain": "America/Denver",
    "US/Pacific": "America/Los_Angeles",
    "US/Samoa": "Pacific/Pago_Pago",
    "Canada/Atlantic": "America/Halifax",
    "Canada/Central": "America/Winnipeg",
    "Canada/Eastern": "America/Toronto",
    "Canada/Mountain": "America/Edmonton",
    "Canada/Newfoundland": "America/St_Johns",
    "Canada/Pacific": "America/Vancouver",
    "Canada/Saskatchewan": "America/Regina",
    "Canada/Yukon": "America/Whitehorse",
    "Mexico/BajaNorte": "America/Tijuana",
    "Mexico/BajaSur": "America/Mazatlan",
    "Mexico/General": "America/Mexico_City",
    "Brazil/East": "America/Sao_Paulo",
    "Chile/Continental": "America/Santiago",
    "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
    "America/Godthab": "America/Nuuk",
    "America/Indianapolis": "America/Indiana/Indianapolis",
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Katmandu": "Asia/Kathmandu",
    "Asia/Rangoon": "Asia/Yangon",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Australia/ACT": "Australia/Sydney",
    "Australia/NSW": "Australia/Sydney",
    "Australia/North": "Australia/Darwin",
    "Australia/Queensland": "Australia/Brisbane",
    "Australia/South": "Australia/Adelaide",
    "Australia/Tasmania": "Australia/Hobart",
    "Australia/Victoria": "Australia/Melbourne",
    "Australia/West": "Australia/Perth",
    "Europe/Kiev": "Europe/Kyiv",
    "GB": "Europe/London",
    "GMT": "Etc/GMT",
    "NZ": "Pacific/Auckland",
    "UTC": "Etc/UTC",
}

# RingCentral zone names already warned about (once per process, not once per reload).
_UNKNOWN_WARNED: set[str] = set()


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA time zone ``name`` (None: none configured, times stay UTC).

    Raises ValueError for a name the system's time-zone database does not know; the
    configuration checks names with :func:`zone_problem` first."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable IANA time zone, or None when it is."""
    try:
        zone(name)
    except ValueError:
        return f"{name!r} is not an IANA time zone name (e.g. 'America/New_York', 'UTC')"
    return None


def from_ringcentral(name: str | None) -> str | None:
    """The IANA name of a RingCentral time zone (``regionalSettings.timezone.name``).

    None for no name, and for a name neither :data:`RINGCENTRAL_ALIASES` nor the system's
    time-zone database knows: such a user's calls are shown in the writer's configured
    zone, and the name is warned about once."""
    if not name:
        return None
    canonical = RINGCENTRAL_ALIASES.get(name, name)
    if zone_problem(canonical) is None:
        return canonical
    if name not in _UNKNOWN_WARNED:
        _UNKNOWN_WARNED.add(name)
        log.warning(
            "zones.ringcentral_zone.unknown",
            zone=name,
            hint="calls of users in this RingCentral time zone are shown in the writer's"
            " configured timezone (else UTC)",
        )
    return None
