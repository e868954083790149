"""The redactor's fast paths mask exactly what the value-by-value patterns do.

Two shortcuts: a word search before the patterns (per value), and one check of a whole
line before any value is looked at (the info line of every logged call).
"""

from __future__ import annotations

import random

from sscl_daemon.logging import _PATTERNS, EVENT_NAME, MASK, Redactor

SAMPLES = [
    "Authorization: Bearer abcdefghijklmnop",
    "authorization=Basic dXNlcjpwYXNzd29yZA==",
    "sent with bearer 0123456789abcdef",
    "BASIC QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
    "jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl end",
    "https://h/x?access_token=a1b2c3&x=1",
    '{"refresh_token": "r-123", "client_secret": "s-456"}',
    "grant_type=jwt&assertion=abc.def.ghi",
    "password=hunter2",
    "wss://ws.example/ws?wsc=Q2F0OjE2Njk",
    '"ws_access_token": "abc"',
    "ID_TOKEN=xyz",
    # The patterns' case folding maps the long s onto s: not ASCII, so not str.lower()'s.
    "Baſic dXNlcjpwYXNzd29yZA==",
    "s-1a2b3c:62264425004",
    "answered",
]


def slow_path(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def test_the_fast_path_redacts_exactly_what_every_pattern_would() -> None:
    redactor = Redactor()
    rng = random.Random(18)
    texts = list(SAMPLES)
    # Shuffled case and surrounding noise: the word search is case-insensitive too.
    for sample in SAMPLES:
        noisy = "".join(c.upper() if rng.random() < 0.3 else c for c in sample)
        texts.append(f"call s-9:1 {noisy} writer=crm")
    # Every sample but the last two holds a secret some pattern masks.
    assert [slow_path(t) != t for t in SAMPLES] == [True] * (len(SAMPLES) - 2) + [False] * 2
    for text in texts:
        assert redactor.redact_text(text) == slow_path(text), text
    assert redactor.redact_text("s-1a2b3c:62264425004") == "s-1a2b3c:62264425004"


class _ValueByValue(Redactor):
    """The redactor without its whole-line shortcut: every value masked on its own."""

    def _untouched(self, event_dict: object) -> bool:
        return False


def test_the_whole_line_check_masks_exactly_what_the_value_by_value_path_would() -> None:
    secret = "configured-secret-42"
    fast, reference = Redactor([secret]), _ValueByValue([secret])
    rng = random.Random(7)
    values: list[object] = [
        *SAMPLES, f"x{secret}y", "plain", "", None, 3, 2.5, True, ["a", secret], b"bytes",
        ValueError("password=x"), {"token": "t"},
    ]  # fmt: skip
    keys = ["call", "writer", "token", "api_key", "event", "result", "client_secret", "n"]
    for _ in range(400):
        line = {rng.choice(keys): rng.choice(values) for _ in range(rng.randint(1, 6))}
        assert fast(None, "info", dict(line)) == reference(None, "info", dict(line)), line
    # The logged-call line (nothing to mask) is given back untouched, and a secret in any
    # of its values is still masked.
    logged = {"event": "dispatch.call.logged", "call": "acct:s-1:p-2", "writer": "hubspot",
              "level": "info", "attempt": 1, "uncertain": False, "reason": None}  # fmt: skip
    assert fast(None, "info", dict(logged)) == logged
    assert fast(None, "info", {**logged, "writer": secret})["writer"] == MASK
    assert fast(None, "info", {**logged, "token": 12345})["token"] == MASK


def test_event_names_follow_the_scheme() -> None:
    assert EVENT_NAME.fullmatch("dispatch.call.logged")
    assert EVENT_NAME.fullmatch("ringcentral.ws.replay_incomplete")
    for wrong in ("subscribed; logging calls", "ringcentral.throttled", "Dispatch.call.logged"):
        assert not EVENT_NAME.fullmatch(wrong)
