"""config.example.toml against the schema's defaults (sscl_daemon.config.schema).

The dataclasses in ``config/schema.py`` are the only place a default is written; the
example file shows the same values to the admin. These tests fail when the two disagree.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sscl_daemon.config import (
    AdminSettings,
    CallSettings,
    ContactSettings,
    DaemonSettings,
    RingCentralSettings,
    Settings,
    StoreSettings,
    WriterSettings,
    parse_config,
)
from sscl_daemon.config.schema import AccountSettings, default_of
from sscl_daemon.config.secrets import Need

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"

# Keys the example sets to a placeholder the admin must replace: they have no default.
PLACEHOLDERS = {
    ("ringcentral", "client_id"),
    ("ringcentral", "client_secret"),
    ("ringcentral", "jwt"),
}
# The TOML key of a ContactSettings field when it differs from the field name.
CONTACT_KEYS = {"contact_cache_ttl": "cache_ttl", "contact_cache_size": "cache_size"}


@pytest.fixture(scope="module")
def example() -> tuple[dict[str, Any], Settings]:
    raw = EXAMPLE.read_text()
    return tomllib.loads(raw), parse_config(tomllib.loads(raw), str(EXAMPLE), needs=Need.NONE)


def shown_keys(document: dict[str, Any], section: str) -> list[str]:
    table = document.get(section, {})
    return [key for key in table if (section, key) not in PLACEHOLDERS]


def differences(document: dict[str, Any], section: str, settings_type: type[Any]) -> dict[str, Any]:
    """Keys of ``[section]`` whose example value, once parsed, is not the schema's default."""
    settings = parse_config(document, "example.toml", needs=Need.NONE)
    # The account's sections ([ringcentral], [calls]) are read into the default account.
    owner = settings.account() if section in ("ringcentral", "calls") else settings
    parsed = getattr(owner, section)
    found = {}
    for key in shown_keys(document, section):
        if getattr(parsed, key) != default_of(settings_type, key):
            found[key] = (getattr(parsed, key), default_of(settings_type, key))
    return found


SECTIONS = [
    ("daemon", DaemonSettings),
    ("admin", AdminSettings),
    ("store", StoreSettings),
    ("ringcentral", RingCentralSettings),
    ("calls", CallSettings),
]


@pytest.mark.parametrize(("section", "settings_type"), SECTIONS)
def test_every_key_the_example_sets_is_the_default(
    example: tuple[dict[str, Any], Settings], section: str, settings_type: type[Any]
) -> None:
    document, _ = example
    assert shown_keys(document, section), f"the example shows no [{section}] key"
    assert differences(document, section, settings_type) == {}


def test_an_example_value_off_the_default_is_reported(
    example: tuple[dict[str, Any], Settings],
) -> None:
    document, _ = example
    changed = {**document, "daemon": {**document["daemon"], "lease_ttl": 7.0}}
    assert differences(changed, "daemon", DaemonSettings) == {"lease_ttl": (7.0, 6.0)}


def test_example_scope_and_blocklist_are_the_defaults(
    example: tuple[dict[str, Any], Settings],
) -> None:
    _, settings = example
    assert settings.account().scope == default_of(AccountSettings, "scope")
    assert len(settings.account().blocklist) == len(default_of(AccountSettings, "blocklist")) == 0


def commented_table(text: str, heading: str) -> dict[str, object]:
    """``#   key   value   explanation`` rows that follow a ``# heading`` comment line."""
    rows: dict[str, object] = {}
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"# {heading}"))
    for line in lines[start + 1 :]:
        if re.match(r"#\s{4,}", line):
            continue  # the explanation of the row above, continued
        match = re.match(r"#   (\w+)\s+(\S+)", line)
        if match is None:
            if rows:
                break
            continue
        key, value = match.groups()
        if value.startswith('"'):
            value = value.split('"')[1]  # '"unassociated" | "create"': the first is the default
            rows[key] = value
            continue
        try:
            rows[key] = ast.literal_eval(value.replace("true", "True").replace("false", "False"))
        except (ValueError, SyntaxError):
            continue  # a row that names choices (type hubspot | pipedrive ...), not a value
    return rows


def test_writer_keys_documented_in_the_example_are_the_defaults() -> None:
    rows = commented_table(EXAMPLE.read_text(), "Keys common to all writers")
    assert {"concurrency", "rate_limit", "batch_size", "max_attempts"} <= rows.keys()
    differing = {
        key: (value, default_of(WriterSettings, key))
        for key, value in rows.items()
        if value != default_of(WriterSettings, key)
    }
    assert differing == {}


def test_contact_keys_documented_in_the_example_are_the_defaults() -> None:
    rows = commented_table(EXAMPLE.read_text(), "Keys common to CRM writers")
    assert {"no_contact", "contact_cache_ttl", "detect_client_logs"} <= rows.keys()
    differing = {}
    for key, value in rows.items():
        default = default_of(ContactSettings, CONTACT_KEYS.get(key, key))
        if value != default:
            differing[key] = (value, default)
    assert differing == {}
