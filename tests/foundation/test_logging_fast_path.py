"""The redactor's fast path (one word search before the patterns) masks what the patterns do."""

from __future__ import annotations

import random

from sscl_daemon.logging import _PATTERNS, EVENT_NAME, Redactor

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


def test_event_names_follow_the_scheme() -> None:
    assert EVENT_NAME.fullmatch("dispatch.call.logged")
    assert EVENT_NAME.fullmatch("ringcentral.ws.replay_incomplete")
    for wrong in ("subscribed; logging calls", "ringcentral.throttled", "Dispatch.call.logged"):
        assert not EVENT_NAME.fullmatch(wrong)
