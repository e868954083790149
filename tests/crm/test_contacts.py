"""Contact policies, the TTL cache and owner resolution."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import ContactSettings, NoContactPolicy, SeveralContactsPolicy
from sscl_daemon.crm import batch
from sscl_daemon.crm.base import Created, PermanentFailure, RetryLater, Skipped, WriteContext
from sscl_daemon.crm.contacts import (
    Contact,
    ContactCache,
    LookupFailure,
    OwnerResolver,
    Resolution,
    Resolver,
    choose,
    skipped,
)

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
    assert "contacts.no_contact = skip" in skip.skip
    assert NUM in skip.skip
    # Its own result, not a failure: the dispatcher settles it as skipped, never as dead.
    assert skipped(skip) == Skipped(skip.skip)
    assert skipped(choose([A], s, NUM)) is None
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


class FakeCrm:
    """In-memory lookups of a CRM, recording what the resolver asked for."""

    def __init__(self, found: tuple[Contact, ...] = ()) -> None:
        self.found = found
        self.searches: list[str] = []
        self.created: list[tuple[str, str | None]] = []

    async def find(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        self.searches.append(number)
        return self.found

    async def create(
        self, call: CompletedCall, number: str, owner: str | None
    ) -> Contact | LookupFailure:
        self.created.append((number, owner))
        return Contact("new-1", call.external_name)

    async def users(self) -> dict[str, str]:
        return {"alice@example.com": "42"}

    def resolver(
        self, settings: ContactSettings, owner_valid: Callable[[str], bool] | None = None
    ) -> Resolver:
        return Resolver(
            "TestCRM",
            settings,
            find=self.find,
            create=self.create,
            list_users=self.users,
            owner_valid=owner_valid,
        )


async def test_resolver_creates_with_the_owner_and_caches_the_new_contact() -> None:
    crm = FakeCrm()
    resolver = crm.resolver(ContactSettings(no_contact=NoContactPolicy.CREATE))
    first = await resolver.resolve(make_call(external_name="Zed"))
    again = await resolver.resolve(make_call(telephony_session_id="s-2"))
    assert first == Resolution((Contact("new-1", "Zed"),), "42", created_contact=True)
    assert again == Resolution((Contact("new-1", "Zed"),), "42")  # from the cache, not created
    assert crm.created == [(NUM, "42")]
    assert crm.searches == [NUM]


async def test_resolver_skips_by_policy_and_an_invalid_owner_is_permanent() -> None:
    crm = FakeCrm(found=(A, B))
    skip = crm.resolver(ContactSettings(several_contacts=SeveralContactsPolicy.SKIP))
    skipped_call = await skip.resolve(make_call())
    assert isinstance(skipped_call, Skipped)
    assert skipped_call.reason.startswith("2 contacts match")

    strict = crm.resolver(ContactSettings(owners={"101": "Alice"}), owner_valid=str.isdigit)
    bad = await strict.resolve(make_call())
    assert isinstance(bad, PermanentFailure)
    assert "'Alice'" in bad.reason
    assert "contacts.owners" in bad.reason
    assert crm.created == []


async def test_batch_prepare_marks_failures_and_in_chunks_keeps_order() -> None:
    crm = FakeCrm()
    resolver = crm.resolver(ContactSettings(no_contact=NoContactPolicy.SKIP))
    seen: list[int] = []

    async def chunk_writer(chunk: list[batch.Pending]) -> None:
        seen.append(len(chunk))
        ready = await batch.prepare(chunk, resolver, lambda call, r: {"key": call.key})
        for p in ready:
            p.result = Created(str(p.payload["key"]))

    calls = [
        make_call(telephony_session_id=f"s-{n}", external_number=None if n % 2 else NUM)
        for n in range(5)
    ]
    results = await batch.in_chunks(
        "TestCRM", [(c, WriteContext()) for c in calls], 2, chunk_writer
    )
    assert seen == [2, 2, 1]
    for n, (call, result) in enumerate(zip(calls, results, strict=True)):
        if n % 2:
            assert result == Created(call.key)  # no number: nothing to match, logged
        else:
            assert isinstance(result, Skipped)  # no contact for NUM: skipped by the policy
