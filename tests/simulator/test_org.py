"""The simulated account: deterministic, well-formed extension list, sane numbering."""

from __future__ import annotations

import re

import pytest

from sscl_daemon.calls.model import ExtensionType
from sscl_daemon.simulator.org import Organisation

E164 = re.compile(r"^\+1[2-9]\d{2}555\d{4}$")


def test_same_seed_same_organisation_other_seed_other_one() -> None:
    assert Organisation.build(3) == Organisation.build(3)
    assert Organisation.build(3) != Organisation.build(4)


def test_structure_users_queues_ivr_parks_owner() -> None:
    org = Organisation.build(11, users=20, queues=3)
    assert len(org.users) == 20
    assert len(org.queues) == 3
    assert all(len(queue.members) >= 2 for queue in org.queues)
    assert all(m.type is ExtensionType.USER for q in org.queues for m in q.members)
    assert org.ivr.type is ExtensionType.IVR_MENU
    assert org.park_locations
    assert all(p.type is ExtensionType.PARK_LOCATION for p in org.park_locations)
    owner = org.extension(org.owner_extension_id)
    assert owner.type is ExtensionType.USER
    assert owner.admin
    ids = [ext.id for ext in org.extensions()]
    assert len(set(ids)) == len(ids)
    assert all(i.endswith(org.shard_suffix) and i.isdigit() for i in ids)
    numbers = [ext.extension_number for ext in org.extensions()]
    assert len(set(numbers)) == len(numbers)


def test_phone_numbers_are_fictional_e164_and_never_shared() -> None:
    org = Organisation.build(5, users=150, queues=4, callers=171)
    company = [org.main_number] + [u.did for u in org.users] + [q.extension.did for q in org.queues]
    outside = [c.phone_number for c in org.callers]
    everything = [n for n in company + outside if n is not None]
    assert all(E164.match(n) for n in everything), everything
    assert len(set(everything)) == len(everything)


def test_extension_records_have_the_list_api_shape() -> None:
    org = Organisation.build(2)
    records = org.extension_records()
    assert len(records) == len(org.users) + 1 + len(org.queues) + len(org.park_locations)
    for record in records:
        assert isinstance(record["id"], int)
        assert str(record["uri"]).endswith(
            f"/restapi/v1.0/account/{org.account_id}/extension/{record['id']}"
        )
        assert record["status"] == "Enabled"
        assert isinstance(record["extensionNumber"], str)
        assert record["type"] in {"User", "IvrMenu", "Department", "ParkLocation"}
        assert isinstance(record["contact"], dict)
    users = [r for r in records if r["type"] == "User"]
    assert len(users) == len(org.users)
    for record in users:
        contact = record["contact"]
        assert isinstance(contact, dict)
        assert record["name"] == f"{contact['firstName']} {contact['lastName']}"
        expected_email = f"{contact['firstName']}.{contact['lastName']}@example.com".lower()
        assert contact["email"] == expected_email
        assert contact["department"] in {
            q.extension.name.removesuffix(" Queue") for q in org.queues
        }
    queues = [r for r in records if r["type"] == "Department"]
    assert [q["name"] for q in queues] == [q.extension.name for q in org.queues]
    owner = [r for r in records if str(r["id"]) == org.owner_extension_id]
    assert owner
    assert owner[0]["permissions"] == {
        "admin": {"enabled": True},
        "internationalCalling": {"enabled": False},
    }


@pytest.mark.parametrize(
    ("users", "queues", "callers", "fragment"),
    [(3, 2, 60, "users=3"), (20, 1, 60, "queues=1"), (20, 2, 0, "callers=0")],
)
def test_bad_arguments_are_named(users: int, queues: int, callers: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Organisation.build(1, users, queues, callers=callers)
