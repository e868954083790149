"""Subject and note templates (issue 15 step 6): documented variables only, safe (no
attribute or index access), errors at load naming the key and the variable, and the marker
lines kept so duplicates are still recognised."""

from __future__ import annotations

import aiohttp
import pytest
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CallResult
from sscl_daemon.config import (
    ConfigError,
    ContactSettings,
    HubSpotOptions,
    Secret,
    WriterSettings,
    WriterType,
    parse_config,
)
from sscl_daemon.crm import content, templates
from sscl_daemon.crm.base import AlreadyExisted, Created, WriteContext
from sscl_daemon.crm.hubspot import HubSpotWriter
from sscl_daemon.crm.templates import Style
from sscl_daemon.simulator.crm import hubspot as hs_sim
from sscl_daemon.simulator.crm.common import serve


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("Call with {callee}", "unknown variable {callee}"),
        ("{contact.__class__}", "unknown variable {contact.__class__}"),
        ("{number[0]}", "unknown variable {number[0]}"),
        ("{talk!r}", "conversion or format spec"),
        ("{talk:>20}", "conversion or format spec"),
        ("{0} and {}", "empty or numbered field"),
        ("a { brace", "not a valid template"),
    ],
)
def test_problems_name_the_field(template: str, says: str) -> None:
    found = templates.problem(template)
    assert found is not None
    assert says in found


def test_every_variable_renders_and_braces_stay_literal() -> None:
    call = make_call(queue_name="Sales", own_number="+16505550100")
    every = " ".join(f"{{{name}}}" for name in templates.VARIABLES)
    assert templates.problem(every) is None
    values = templates.values(call, "Ann Lee", None)
    assert set(values) == set(templates.VARIABLES)
    text = templates.render("{direction_title} call, {contact} {{not a field}}", call, "Ann", None)
    assert text == "Inbound call, Ann (+14155550123) {not a field}"
    assert values["talk"] == "00:02:05"
    assert values["our_number"] == "+16505550100"
    assert values["queue"] == "Sales"


def test_style_keeps_the_markers_after_a_note_template() -> None:
    style = Style(note_template="Call {result} with {contact}\nTalked {talk}")
    call = make_call(result=CallResult.VOICEMAIL, talk_ms=0, answer_time=None)
    text = style.note_text(call, "Ann")
    assert text.splitlines()[:2] == [
        "Call missed, voicemail left with Ann (+14155550123)",
        "Talked 00:00:00",
    ]
    assert content.recognise(call, text) is content.Match.OURS
    assert "<p>Talked 00:00:00</p>" in style.note_html(call, "Ann")


def test_bad_templates_are_configuration_errors_naming_key_and_variable() -> None:
    data = {
        "ringcentral": {"client_id": "c", "client_secret": "s", "jwt": "j"},
        "writers": {
            "hs": {
                "type": "hubspot",
                "access_token": "pat-1",
                "subject_template": "{direction} call with {callee}",
                "note_template": "{talk:>9}",
            }
        },
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, "t.toml")
    issues = {i.path: str(i) for i in info.value.issues}
    assert "{callee}" in issues["writers.hs.subject_template"]
    assert "format spec" in issues["writers.hs.note_template"]


async def test_hubspot_writes_the_templates_and_still_finds_its_log() -> None:
    state = hs_sim.HubSpotState()
    contacts = ContactSettings(
        subject_template="{direction_title} call {contact} - {user}",
        note_template="Result: {result}\nTalk: {talk}",
    )
    async with serve(hs_sim.create_app(state)) as url, aiohttp.ClientSession() as session:
        settings = WriterSettings(
            "hs",
            WriterType.HUBSPOT,
            HubSpotOptions(url, Secret(hs_sim.PRIVATE_TOKEN)),
            contacts=contacts,
        )
        writer = HubSpotWriter(settings, session)
        created = await writer.write(make_call(), WriteContext())
        again = await writer.write(make_call(), WriteContext(attempt=2, uncertain=True))
    assert isinstance(created, Created)
    assert again == AlreadyExisted(created.record_id)
    props = state.calls[created.record_id].properties
    assert props["hs_call_title"] == "Inbound call +14155550123 - Alice Agent"
    assert props["hs_call_body"].startswith("<p>Result: answered</p><p>Talk: 00:02:05</p>")
    assert "sscl-key: s-1001:62001" in props["hs_call_body"]
