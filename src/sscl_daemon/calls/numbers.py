"""Phone-number helpers shared by the tracker (external numbers) and the blocklist.

Parsing uses ``phonenumbers`` (libphonenumber's data); national formats are
only understood when a default region is configured. Results are cached
because the same few numbers recur across many calls of an organisation.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# RingCentral extension numbers are short digit strings; anything longer in a
# ``phoneNumber`` field is a real phone number (see blocklist.py for the rule).
MAX_EXTENSION_DIGITS = 8
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def looks_like_extension(value: str | None) -> bool:
    """True for a short all-digit string such as ``"102"`` (an RC extension number)."""
    return value is not None and value.isdigit() and len(value) <= MAX_EXTENSION_DIGITS


@lru_cache(maxsize=8192)
def to_e164(value: str, region: str | None = None) -> str | None:
    """The E.164 form of ``value`` or None if it is not a possible phone number.

    ``+``-prefixed numbers need no region; national numbers need ``region``.
    """
    text = value.strip()
    if not text or (region is None and not text.startswith("+")):
        return None
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_valid_e164(value: str) -> bool:
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed)


def normalise_external(value: str | None, region: str | None) -> str | None:
    """Best E.164 form of an external number; falls back to the digits as given."""
    if not value:
        return None
    if _E164.fullmatch(value):
        # RingCentral reports PSTN numbers in E.164 already; parsing them again with
        # phonenumbers would cost tens of microseconds per call for nothing.
        return value
    # Without a region a national number cannot be placed: keep it verbatim, never guess.
    return to_e164(value, region) or value
