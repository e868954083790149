"""The plug-in registry: every writer type, built-in or installed, comes through it."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from sscl_daemon.config import (
    JsonlOptions,
    PipedriveOptions,
    Secret,
    WebhookOptions,
    WriterSettings,
    WriterType,
)
from sscl_daemon.crm import registry
from sscl_daemon.crm.base import WriterPlugin
from sscl_daemon.crm.jsonl import JsonlWriter
from sscl_daemon.crm.pipedrive import PipedriveWriter
from sscl_daemon.crm.registry import BUILTIN, PluginError, build_writer, plugin
from sscl_daemon.crm.webhook import WebhookWriter

SECRET = "whsec_c3NjbC1kZW1vLXNlY3JldC0xMjM0NTY="


async def test_build_each_of_mine(http_session: aiohttp.ClientSession, tmp_path: Path) -> None:
    cases = [
        (JsonlOptions(tmp_path / "a.jsonl"), WriterType.JSONL, JsonlWriter),
        (
            WebhookOptions("https://r.example.com/h", Secret(SECRET)),
            WriterType.WEBHOOK,
            WebhookWriter,
        ),
        (PipedriveOptions(api_token=Secret("t")), WriterType.PIPEDRIVE, PipedriveWriter),
    ]
    for options, kind, cls in cases:
        writer = build_writer(WriterSettings(f"w-{kind}", kind, options), http_session)
        assert isinstance(writer, cls)
        assert writer.name == f"w-{kind}"
        await writer.close()


def test_every_builtin_type_is_a_plugin_of_that_name() -> None:
    assert set(WriterType) <= set(BUILTIN)
    for name in BUILTIN:
        loaded = plugin(name)
        assert isinstance(loaded, WriterPlugin)
        assert loaded.type == name


def test_pyproject_declares_the_builtins_as_entry_points() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    declared = project["project"]["entry-points"][registry.GROUP]
    assert declared == BUILTIN


def test_unknown_type_lists_the_available_ones() -> None:
    with pytest.raises(PluginError, match=r"'nope' is not a writer type; use one of .*'zoho'"):
        plugin("nope")


def test_wrong_options_type_is_refused(http_session: aiohttp.ClientSession) -> None:
    with pytest.raises(TypeError, match="pipedrive needs PipedriveOptions"):
        build_writer(
            WriterSettings("x", WriterType.PIPEDRIVE, JsonlOptions(Path("x"))), http_session
        )
