"""The Zoho writer's request bodies against Zoho's own published SDK for the v7 API
(``zohocrmsdk7-0`` on PyPI): every field we send to Calls and Contacts is one the SDK's
``record.Field`` lists for that module (our unique key field and ``$se_module`` aside)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CallResult, Direction
from sscl_daemon.crm import zoho
from sscl_daemon.crm.contacts import Contact

# Not Zoho fields: the org's own unique field, and the related record's module.
OURS = {zoho.DEFAULT_KEY_FIELD, "$se_module"}


def sdk_fields(module: str) -> set[str]:
    spec = importlib.util.find_spec("zohocrmsdk")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("zohocrmsdk7-0 (the test extra) is not installed")
    source = (
        Path(next(iter(spec.submodule_search_locations))) / "src/com/zoho/crm/api/record/field.py"
    ).read_text()
    block = re.search(rf"\n\tclass {module}\(object\):(.*?)(?=\n\tclass |\Z)", source, re.S)
    assert block is not None, f"the SDK has no Field.{module}"
    return set(re.findall(r"Field\('([^']+)'\)", block.group(1)))


@pytest.mark.parametrize(
    ("direction", "result", "contact"),
    [
        (Direction.INBOUND, CallResult.ANSWERED, Contact("1", "Carol", "contact")),
        (Direction.OUTBOUND, CallResult.MISSED, Contact("2", "Lee", "lead")),
        (Direction.INTERNAL, CallResult.VOICEMAIL, None),
    ],
)
def test_call_records_use_the_sdks_calls_fields(
    direction: Direction, result: CallResult, contact: Contact | None
) -> None:
    record = zoho.call_record(make_call(direction=direction, result=result), contact, "42")
    unknown = set(record) - OURS - sdk_fields("Calls")
    assert not unknown, f"not Calls fields in the Zoho SDK: {unknown}"


def test_contact_create_uses_the_sdks_contacts_fields() -> None:
    record = zoho.contact_record(make_call(external_name="Carol"), "+14155550123", "42")
    assert set(record) <= sdk_fields("Contacts")
