"""Standard Webhooks signing secrets: which ones the daemon accepts, and the key they give.

Used by the configuration check (``[writers.NAME]`` of type webhook), the webhook writer
(``crm/webhook.py``) and every receiver built on it (the simulator's stand-in). Pure, no I/O;
at the top of the package so that the configuration and the writers both use it without
either package importing the other.

The spec (https://www.standardwebhooks.com/, "Signature scheme": symmetric signing secret
"Random. At least 24 bytes (192 bits, 512 maximum)", serialised "base64 encoded, prefixed
with ``whsec_``") and its reference libraries decide: ``standardwebhooks`` (PyPI, npm, ...)
strips an optional ``whsec_`` and base64-decodes the rest leniently (characters outside the
alphabet are skipped, missing padding is added). A plain string therefore gives the
reference libraries another key than its UTF-8 bytes, and receivers reject every delivery.
Other languages' libraries are stricter (Go's decodes padded standard base64 only). So the
daemon accepts exactly the secrets every verifier reads alike: an optional ``whsec_`` and
canonical, padded standard base64 of 24 to 64 bytes; anything else is a configuration error
that says how to make a good one (the secret itself is never echoed).
"""

from __future__ import annotations

import base64
import binascii

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
# How to make one (32 random bytes), as every error says.
GENERATE = 'echo "whsec_$(openssl rand -base64 32)"'


def secret_key(secret: str) -> bytes:
    """The HMAC-SHA256 key of ``secret``, derived as the reference libraries derive it."""
    # Lenient decoding with padding added, as they do (extra padding is ignored).
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not an acceptable signing secret (None when it is)."""
    body = secret.removeprefix(SECRET_PREFIX)
    how = f"generate one with: {GENERATE}"
    try:
        key: bytes | None = base64.b64decode(body, validate=True)
    except binascii.Error:
        key = None
    # Canonical: encoding the key again gives the same text (padding, trailing bits).
    if key is None or base64.b64encode(key).decode() != body:
        return (
            f"is not a Standard Webhooks secret ('{SECRET_PREFIX}' and padded base64): "
            f"receivers verifying with the standard's libraries would reject every delivery; "
            f"{how}"
        )
    if len(key) < MIN_KEY_BYTES:
        return (
            f"is too weak: {len(key)} bytes of key, the standard asks for at least "
            f"{MIN_KEY_BYTES} random bytes; {how}"
        )
    if len(key) > MAX_KEY_BYTES:
        return f"is too long: {len(key)} bytes of key, the standard allows {MAX_KEY_BYTES}; {how}"
    return None
