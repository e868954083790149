"""IANA time zones by name: the one check the configuration and the CRM writers share.

Where it sits: at the top of the package, importing nothing of it. The configuration
rejects an unknown ``timezone`` key with :func:`zone_problem`; the writers turn the
checked name into a :class:`~zoneinfo.ZoneInfo` with :func:`zone` (``crm/content.py``
shows times in it).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


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
