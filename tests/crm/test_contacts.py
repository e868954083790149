"""Contact policies, the TTL cache and owner resolution."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.crm.conftest import make_call

from sscl_daemon.config import ContactSettings, NoContactPolicy, SeveralContactsPolicy
from sscl_daemon.crm.base import RetryLater
from sscl_daemon.crm.contacts import Contact, ContactCache, OwnerResolver, choose, skipped

A = Contact("1", "Ann")
B = Contact("2", "Ben")
NUM = "+14155550123"


def test_choose_one_and_none() -> None:
    s = ContactSettings()
    assert choose([A], s, NUM).contacts == (A,)
    assert choose([], s, NUM).contacts == ()
    assert choose([], replace(s, no_contact=NoContactPolicy.CREATE), NUM).create
    skip = choose([], replace(s, no_contact=NoContactPolicy.SKIP), NUM)
    assert skip.skip is not None
    assert skip.skip.startswith("skipped:")
    assert NUM in skip.skip
    result = skipped(skip)
    assert result is not None
    assert result.reason == skip.skip
    # An internal call has no number to match: never skipped or created.
    assert choose([], replace(s, no_contact=NoContactPolicy.SKIP), None).skip is None


@pytest.mark.parametrize(
    ("policy", "contacts", "skips"),
    [
        (SeveralContactsPolicy.ALL, (A, B), False),
        (SeveralContactsPolicy.FIRST, (A,), False),
        (SeveralContactsPolicy.UNASSOCIATED, (), False),
        (SeveralContactsPolicy.SKIP, (), True),
    ],
)
def test_choose_several(
    policy: SeveralContactsPolicy, contacts: tuple[Contact, ...], skips: bool
) -> None:
    choice = choose([A, B], ContactSettings(several_contacts=policy), NUM)
    assert choice.contacts == contacts
    assert (choice.skip is not None) is skips


async def test_cache_hits_expires_and_skips_failures() -> None:
    now = [0.0]
    cache = ContactCache(ContactSettings(cache_ttl=60, cache_size=2), timer=lambda: now[0])
    calls: list[str] = []

    async def lookup(number: str) -> tuple[Contact, ...] | RetryLater:
        calls.append(number)
        return RetryLater("down") if number == "+1bad" else (A,)

    assert await cache.find(NUM, lookup) == (A,)
    assert await cache.find(NUM, lookup) == (A,)
    assert calls == [NUM]
    assert isinstance(await cache.find("+1bad", lookup), RetryLater)
    assert isinstance(await cache.find("+1bad", lookup), RetryLater)
    assert calls == [NUM, "+1bad", "+1bad"]
    now[0] = 61.0
    await cache.find(NUM, lookup)
    assert calls[-1] == NUM
    assert len(calls) == 4
    for n in ("+1a", "+1b", "+1c"):
        cache.put(n, (B,))
    assert len(cache) == 2


async def test_owner_table_first_then_email() -> None:
    fetches = []

    async def users() -> dict[str, str]:
        fetches.append(1)
        return {"Alice@Example.com": "u-alice", "boss@example.com": "u-boss"}

    settings = ContactSettings(owners={"101": "u-table", "102": "boss@example.com"})
    owners = OwnerResolver(settings, users)
    assert await owners.resolve(make_call(extension_number="101")) == "u-table"
    assert fetches == []
    assert await owners.resolve(make_call(extension_number="102")) == "u-boss"
    assert (
        await owners.resolve(make_call(extension_number="103", user_email="ALICE@example.com"))
        == "u-alice"
    )
    assert (
        await owners.resolve(make_call(extension_number="104", user_email="nobody@x.org")) is None
    )
    assert fetches == [1]  # the user list is cached

    off = OwnerResolver(replace(settings, owner_by_email=False), users)
    assert await off.resolve(make_call(extension_number="103")) is None


async def test_owner_lookup_failure_is_returned() -> None:
    async def users() -> RetryLater:
        return RetryLater("down", 3.0)

    owners = OwnerResolver(ContactSettings(), users)
    assert await owners.resolve(make_call()) == RetryLater("down", 3.0)
