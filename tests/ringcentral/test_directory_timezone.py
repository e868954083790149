"""Each user's own RingCentral time zone in the directory (issue 15, times in the user's zone).

Against the simulator: the extension list carries no regional settings, "Get Extension"
does; `keep_fresh` with a `ZoneBook` reads them after the list (the list's own handover
does not wait), hands the directory on again with them, stores them with the records, and
a restart (stored records) and an on-demand load keep them. A refused read ends the pass
and the next one goes on; a known user is read again only in its share.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import msgspec
import pytest
from structlog.testing import capture_logs
from tests.ringcentral.harness import client, simulator

from sscl_daemon.calls.directory import Directory
from sscl_daemon.commands.backfill import stored_zones
from sscl_daemon.ringcentral.directory import (
    ZoneBook,
    keep_fresh,
    load_directory,
    stored_directory,
)
from sscl_daemon.ringcentral.records import ExtensionRecord, RegionalSettings, TimezoneInfo
from sscl_daemon.ringcentral.rest import RestClient
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.org import user_time_zone
from sscl_daemon.store import Store
from sscl_daemon.zones import RINGCENTRAL_ALIASES, from_ringcentral, zone_problem

HOUR = 3600.0


def expected_zones(sim: Simulator) -> dict[str, str]:
    """Each simulated user's zone as the directory should hold it (IANA)."""
    return {
        user.id: RINGCENTRAL_ALIASES.get(user_time_zone(i), user_time_zone(i))
        for i, user in enumerate(sim.org.users)
    }


def counting(rest: RestClient) -> list[str]:
    """The extension ids `rest` reads one by one ("Get Extension"), in order."""
    read: list[str] = []
    original = rest.extension

    async def extension(extension_id: str) -> ExtensionRecord | None:
        read.append(extension_id)
        return await original(extension_id)

    rest.extension = extension  # type: ignore[method-assign]
    return read


def stop_after(naps: int) -> Callable[[float], Awaitable[None]]:
    """A sleep that lets `naps` interval naps pass (zone gaps are 0 here) and then stops."""
    seen = 0

    async def sleep(_seconds: float) -> None:
        nonlocal seen
        seen += 1
        if seen > naps:
            raise asyncio.CancelledError

    return sleep


async def test_the_list_has_no_zones_and_each_users_own_record_has_its_zone() -> None:
    async with simulator() as sim, client(sim) as made:
        listed = await made.rest.extensions()
        assert listed
        assert all(record.regionalSettings is None for record in listed)
        pacific, eastern = sim.org.users[1], sim.org.users[2]
        for user, name in ((pacific, "US/Pacific"), (eastern, "US/Eastern")):
            record = await made.rest.extension(user.id)
            assert record is not None
            assert record.regionalSettings is not None
            zone = record.regionalSettings.timezone
            assert zone is not None
            assert zone.name == name
            assert zone.id
            assert zone.description
            assert zone.bias is not None
        assert await made.rest.extension("999999999") is None


async def test_keep_fresh_reads_every_users_zone_and_stores_them_with_the_records() -> None:
    async with simulator() as sim, client(sim) as made:
        read = counting(made.rest)
        zones = ZoneBook(read_gap=0.0, rng=random.Random(1))
        handed: list[Directory] = []
        kept: list[bytes] = []

        async def keep(data: bytes) -> None:
            kept.append(data)

        with pytest.raises(asyncio.CancelledError):
            await keep_fresh(
                made.rest,
                HOUR,
                handed.append,
                keep=keep,
                first_delay=0.0,
                sleep=stop_after(1),
                zones=zones,
            )
        users = {user.id for user in sim.org.users}
        assert sorted(read) == sorted(users)  # users only: no IVR, queue or park location
        # The list's own handover did not wait for the zones; the last one has them all.
        assert all(ext.timezone is None for ext in handed[0])
        last = handed[-1]
        assert {u: last.by_id(u).timezone for u in users} == expected_zones(sim)  # type: ignore[union-attr]
        assert last.by_id(sim.org.ivr.id).timezone is None  # type: ignore[union-attr]
        assert {z for z in expected_zones(sim).values()} >= {
            "America/Los_Angeles",
            "America/New_York",
            "America/Chicago",
        }

        # A restart: the stored records give the zones back, and an on-demand load keeps them.
        restarted = ZoneBook(read_gap=0.0)
        stored = stored_directory(kept[-1], restarted)
        assert {u: stored.by_id(u).timezone for u in users} == expected_zones(sim)  # type: ignore[union-attr]
        on_demand = await load_directory(made.rest, restarted)
        assert {u: on_demand.by_id(u).timezone for u in users} == expected_zones(sim)  # type: ignore[union-attr]
        # Without a book (backfill, replay) the list alone gives no zones.
        assert all(ext.timezone is None for ext in await load_directory(made.rest))


async def test_a_refused_read_ends_the_pass_and_the_next_pass_goes_on() -> None:
    async with simulator() as sim, client(sim) as made:
        read = counting(made.rest)
        zones = ZoneBook(read_gap=0.0, rng=random.Random(2))
        listed = await made.rest.extensions()
        due = zones.due(listed, HOUR)
        assert sorted(due) == sorted(user.id for user in sim.org.users)
        sim.fail_rest(f"/restapi/v1.0/account/~/extension/{due[3]}", 403, count=1)
        changes: list[int] = []

        async def changed() -> None:
            changes.append(len(zones))

        with capture_logs() as logs:
            assert await zones.read(made.rest, due, stop_after(10**6), changed) == 3
        assert [e["event"] for e in logs] == ["ringcentral.zones.read_failed"]
        assert changes == [3]

        # The next pass reads the users not read yet (the refused one first among them).
        again = zones.due(listed, HOUR)
        assert again[: len(due) - 3] == due[3:]
        read.clear()
        assert await zones.read(made.rest, again, stop_after(10**6), changed) == len(again)
        assert read == again
        assert len(zones) == len(sim.org.users)


async def test_known_users_are_read_again_one_share_per_load() -> None:
    async with simulator() as sim, client(sim) as made:
        ticks = iter(range(1, 10**6))
        zones = ZoneBook(read_gap=0.0, recheck=4 * HOUR, clock=lambda: float(next(ticks)))
        listed = await made.rest.extensions()

        async def nothing() -> None:
            return None

        await zones.read(made.rest, zones.due(listed, HOUR), stop_after(10**6), nothing)
        users = len(sim.org.users)
        # One hour of a four-hour recheck: a quarter of the users, the longest unread first.
        share = zones.due(listed, HOUR)
        assert len(share) == -(-users // 4)
        first_read = [u.id for u in sim.org.users]
        await zones.read(made.rest, share, stop_after(10**6), nothing)
        following = zones.due(listed, HOUR)
        assert not set(following) & set(share)
        assert set(following) <= set(first_read)
        # A user new to the list is read at once, before the share.
        newcomer = msgspec.structs.replace(listed[0], id=424242)
        assert zones.due([newcomer, *listed], HOUR)[0] == "424242"


def test_an_unknown_ringcentral_zone_is_no_zone_and_warned_once() -> None:
    record = {
        "id": 1,
        "type": "User",
        "regionalSettings": {"timezone": {"id": "900", "name": "Test/Nowhere-Directory"}},
    }
    with capture_logs() as logs:
        first = Directory.from_api([record])
        second = Directory.from_api([record])
    assert first.by_id("1").timezone is None  # type: ignore[union-attr]
    assert second.by_id("1").timezone is None  # type: ignore[union-attr]
    warned = [e for e in logs if e["event"] == "zones.ringcentral_zone.unknown"]
    assert [e["zone"] for e in warned] == ["Test/Nowhere-Directory"]
    legacy = {"id": 2, "type": "User", "regionalSettings": {"timezone": {"name": "US/Pacific"}}}
    assert Directory.from_api([legacy]).by_id("2").timezone == "America/Los_Angeles"  # type: ignore[union-attr]


async def test_backfill_writes_with_the_zones_the_daemon_stored(store: Store) -> None:
    eastern = RegionalSettings(timezone=TimezoneInfo(id="60", name="US/Eastern"))
    kept = [ExtensionRecord(id=7, type="User", regionalSettings=eastern)]
    await store.save_directory("main", msgspec.json.encode(kept))
    zones = await stored_zones(store, "main")
    listed = [ExtensionRecord(id=7, type="User"), ExtensionRecord(id=8, type="User")]
    directory = Directory.from_api([msgspec.to_builtins(r) for r in zones.dress(listed)])
    assert directory.by_id("7").timezone == "America/New_York"  # type: ignore[union-attr]
    assert directory.by_id("8").timezone is None  # type: ignore[union-attr]
    # No store, nothing stored, or a stored directory that does not read: no zones, no error.
    assert len(await stored_zones(None, "main")) == 0
    assert len(await stored_zones(store, "other")) == 0
    await store.save_directory("main", b"not json")
    assert len(await stored_zones(store, "main")) == 0


def test_every_ringcentral_alias_maps_to_a_canonical_zone_this_system_knows() -> None:
    for name, canonical in RINGCENTRAL_ALIASES.items():
        assert from_ringcentral(name) == canonical
        assert zone_problem(canonical) is None, canonical
        assert canonical not in RINGCENTRAL_ALIASES  # one step, never a chain
    # A canonical name RingCentral may use as is passes through unchanged.
    assert from_ringcentral("Europe/Berlin") == "Europe/Berlin"
    assert from_ringcentral(None) is None
    assert from_ringcentral("") is None
