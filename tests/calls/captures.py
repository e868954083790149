"""Real notification captures kept in tests/captures (see each folder's SOURCE.md)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


def csn_envelopes(name: str) -> list[dict[str, object]]:
    """The notification envelopes of one csn-data capture file, in file order."""
    text = (CAPTURES / "csn-data" / name).read_text(encoding="utf-8")
    found = [ast.literal_eval(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(item, dict) for item in found)
    return found


def encoded(envelope: dict[str, object]) -> bytes:
    return json.dumps(envelope).encode()


def sequence(envelope: dict[str, object]) -> int:
    body = envelope["body"]
    assert isinstance(body, dict)
    value = body["sequence"]
    assert isinstance(value, int)
    return value
