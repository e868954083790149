"""Blocklist ("do not log these numbers/extensions") and logging scope.

Read by the policy (policy.py) for every completed call; built by the
configuration loader from ``[blocklist] entries`` and ``[scope]``, and
rebuilt on SIGHUP. Entries come as a TOML list or, as in the product we are
modelled on, one comma-separated string. Unlike that product, a bad entry is
never dropped silently: :func:`parse_blocklist` raises :class:`BlocklistError`
naming the entry and the reason.

Entry rules:

* ``+15105551234`` — an E.164 number; it must be a valid number
  (``phonenumbers.is_valid_number``); spaces, dashes, dots and parentheses
  are allowed and removed.
* ``+1800*`` — every number starting with this E.164 prefix (``+`` and
  1 to 14 digits, then ``*``).
* ``101`` — an extension number: 1 to 6 digits. 7 or 8 digits are also an
  extension number unless a default region is configured and the text is a
  valid national phone number there.
* a national phone number (``(510) 555-1234``, ``5105551234``) — only when a
  default region is configured; it is stored in E.164.

A blocked extension's own call legs are never logged. ``log_other_parties``
(``[blocklist] log_other_parties``, default true) says whether the other
people in a call it took part in still get theirs (policy.py applies it).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sscl_daemon.calls.numbers import is_valid_e164, to_e164
from sscl_daemon.errors import SsclError

MAX_SHORT_EXTENSION = 6
MAX_EXTENSION = 8
_SEPARATORS = re.compile(r"[\s().\-]")
_PREFIX = re.compile(r"\+[1-9]\d{0,13}")


class BlocklistError(SsclError, ValueError):
    """One blocklist entry is invalid; ``entry`` is the text, ``reason`` says why."""

    def __init__(self, entry: str, reason: str) -> None:
        self.entry = entry
        self.reason = reason
        super().__init__(f"invalid blocklist entry {entry!r}: {reason}")


@dataclass(frozen=True, slots=True)
class Blocklist:
    """Parsed blocklist: exact E.164 numbers, E.164 prefixes and extension numbers."""

    numbers: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    extensions: frozenset[str] = frozenset()
    # Whether the other users in a call with a blocked extension get their logs.
    log_other_parties: bool = True

    def __len__(self) -> int:
        return len(self.numbers) + len(self.prefixes) + len(self.extensions)

    def matches_number(self, e164: str | None) -> bool:
        if not e164:
            return False
        return e164 in self.numbers or any(e164.startswith(p) for p in self.prefixes)

    def matches_extension(self, extension_number: str | None) -> bool:
        return extension_number is not None and extension_number in self.extensions

    def entries(self) -> list[str]:
        """The entries in canonical form (prefixes with their ``*``)."""
        return sorted(self.numbers) + [f"{p}*" for p in self.prefixes] + sorted(self.extensions)


def _split(entries: Sequence[str] | str) -> list[str]:
    items = entries.split(",") if isinstance(entries, str) else list(entries)
    return [item.strip() for item in items]


def _phone(entry: str, compact: str, region: str | None) -> str:
    if compact.startswith("+"):
        if not compact[1:].isdigit():
            raise BlocklistError(entry, "a phone number may only hold digits after the '+'")
        if not is_valid_e164(compact):
            raise BlocklistError(entry, "not a valid phone number (E.164 like +15105551234)")
        return compact
    if not compact.isdigit():
        raise BlocklistError(
            entry, "neither a phone number (+15105551234), a prefix (+1800*) nor an extension"
        )
    if region is None:
        raise BlocklistError(
            entry,
            "looks like a national phone number: write it in E.164 (+<country><number>) "
            "or set calls.default_region",
        )
    e164 = to_e164(compact, region)
    if e164 is None or not is_valid_e164(e164):
        raise BlocklistError(entry, f"not a valid phone number in region {region}")
    return e164


def parse_blocklist(
    entries: Sequence[str] | str,
    default_region: str | None = None,
    *,
    log_other_parties: bool = True,
) -> Blocklist:
    """Parse entries (a list, or one comma-separated string); raise on the first bad one."""
    numbers: set[str] = set()
    prefixes: list[str] = []
    extensions: set[str] = set()
    for entry in _split(entries):
        if not entry:
            raise BlocklistError(entry, "empty entry (check for a doubled or trailing comma)")
        compact = _SEPARATORS.sub("", entry)
        if compact.endswith("*"):
            head = compact[:-1]
            if not _PREFIX.fullmatch(head):
                raise BlocklistError(
                    entry, "a prefix must be '+', the country code and digits, then '*' (+1800*)"
                )
            if head not in prefixes:
                prefixes.append(head)
            continue
        if compact.isdigit() and compact == entry and len(compact) <= MAX_SHORT_EXTENSION:
            extensions.add(compact)
            continue
        if compact.isdigit() and compact == entry and len(compact) <= MAX_EXTENSION:
            national = to_e164(compact, default_region) if default_region else None
            if national is not None and is_valid_e164(national):
                numbers.add(national)
            else:
                extensions.add(compact)
            continue
        numbers.add(_phone(entry, compact, default_region))
    return Blocklist(
        frozenset(numbers), tuple(sorted(prefixes)), frozenset(extensions), log_other_parties
    )


class ScopeMode(enum.StrEnum):
    ALL = "all"
    INCLUDE = "include"  # log only the listed extensions / departments
    EXCLUDE = "exclude"  # log everybody but the listed extensions / departments


# Asked for every completed call; an enum member read through its class costs
# about 50 ns in Python 3.11.
_ALL = ScopeMode.ALL


@dataclass(frozen=True, slots=True)
class Scope:
    """Which users' calls are logged (extension numbers, directory department names)."""

    mode: ScopeMode = ScopeMode.ALL
    extensions: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.mode, ScopeMode):
            try:
                object.__setattr__(self, "mode", ScopeMode(self.mode))
            except ValueError:
                allowed = ", ".join(repr(m.value) for m in ScopeMode)
                raise ValueError(
                    f"scope mode {self.mode!r} is not allowed; use one of {allowed}"
                ) from None

    def problems(self) -> list[str]:
        """What is wrong with the listed values (empty when the scope is usable)."""
        found: list[str] = []
        for ext in sorted(self.extensions):
            if not ext.isdigit() or len(ext) > MAX_EXTENSION:
                found.append(
                    f"scope extension {ext!r} is not an extension number "
                    f"(1 to {MAX_EXTENSION} digits)"
                )
        for dept in sorted(self.departments):
            if not dept.strip():
                found.append(f"scope department {dept!r} is not a department name")
        return found

    @classmethod
    def checked(
        cls,
        mode: ScopeMode | str,
        extensions: Iterable[str] = (),
        departments: Iterable[str] = (),
    ) -> Scope:
        """Build a scope and raise ValueError naming the first bad value.

        The plain constructor only checks the mode, so a configuration loader
        can build a scope and collect :meth:`problems` alongside its own.
        """
        scope = cls(ScopeMode(mode), frozenset(extensions), frozenset(departments))
        problems = scope.problems()
        if problems:
            raise ValueError(problems[0])
        return scope

    def listed(self, extension_number: str | None, department: str | None) -> bool:
        return (extension_number is not None and extension_number in self.extensions) or (
            department is not None and department in self.departments
        )

    def allows(self, extension_number: str | None, department: str | None) -> bool:
        if self.mode is _ALL:
            return True
        listed = self.listed(extension_number, department)
        return listed if self.mode is ScopeMode.INCLUDE else not listed
