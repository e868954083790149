"""Times in the handling user's own RingCentral time zone (issue 15, `timezone = "user"`).

Unit: the configuration's precedence (a writer's `timezone` over `calls.timezone`; "user"
means the handling user's zone, else the account's zone when it names one, else UTC), and
the zone chosen per call. End to end (simulator + Salesforce stand-in): the simulated
account serves each user's regional settings, the directory reads them, a call read from
the simulator's call log carries its user's zone, and a call answered at 23:30 in Los
Angeles gets that date in `ActivityDate` and that time in the subject, while the same
instant for a user in New York is the next day.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
import pytest
from tests.crm.conftest import make_call
from tests.ringcentral.harness import Calls, Pipeline, client, simulator

from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import ConfigError, ContactSettings, WriterSettings, parse_config
from sscl_daemon.crm import content
from sscl_daemon.crm.base import Created, WriteContext
from sscl_daemon.crm.salesforce import SalesforceWriter
from sscl_daemon.crm.templates import Style
from sscl_daemon.ringcentral.calllog import calls_from_records
from sscl_daemon.ringcentral.directory import ZoneBook, load_directory
from sscl_daemon.ringcentral.records import CallLogRecord
from sscl_daemon.ringcentral.rest import RestClient
from sscl_daemon.simulator.app import Simulator
from sscl_daemon.simulator.crm import salesforce as sf_standin
from sscl_daemon.simulator.crm.common import serve
from sscl_daemon.simulator.scenarios import CallFactory, CallKind

LOS_ANGELES = content.zone("America/Los_Angeles")
NEW_YORK = content.zone("America/New_York")
# 23:30 on 20 November in Los Angeles (PST, -08:00) is 07:30 UTC and 02:30 in New York on
# the 21st: a UTC or New York date would put the call on the wrong day for its user.
LATE_IN_LA = datetime(2026, 11, 21, 7, 30, tzinfo=UTC)
SUBJECT = "{direction_title} call {date} {time} ({timezone}) with {contact}"
MINUTE = timedelta(minutes=1)


def with_(call: CompletedCall) -> str:
    """Who a call was with as the subject says it (no CRM contact: caller id and number)."""
    return content.counterpart(call)


# -- configuration -----------------------------------------------------------------------------


def _contacts(calls: dict[str, object], writer: dict[str, object]) -> ContactSettings:
    data = {
        "ringcentral": {"client_id": "c", "client_secret": "s", "jwt": "j"},
        "calls": calls,
        "writers": {"hs": {"type": "hubspot", "access_token": "pat-na1-xyz", **writer}},
    }
    settings: Any = parse_config(data, "t.toml")
    account = settings.accounts[0] if getattr(settings, "accounts", ()) else settings
    contacts: ContactSettings = account.writers[0].contacts
    return contacts


@pytest.mark.parametrize(
    ("calls", "writer", "zone", "user"),
    [
        ({}, {}, None, False),
        ({"timezone": "Europe/Berlin"}, {}, "Europe/Berlin", False),
        ({"timezone": "Europe/Berlin"}, {"timezone": "America/Chicago"}, "America/Chicago", False),
        # "user" on the writer: the account's zone is the zone of users not known yet.
        ({"timezone": "Europe/Berlin"}, {"timezone": "user"}, "Europe/Berlin", True),
        ({}, {"timezone": "user"}, None, True),
        # "user" for the account: every writer without a zone of its own, UTC otherwise.
        ({"timezone": "user"}, {}, None, True),
        ({"timezone": "user"}, {"timezone": "user"}, None, True),
        # A writer's own IANA zone wins over the account's "user".
        ({"timezone": "user"}, {"timezone": "America/Chicago"}, "America/Chicago", False),
    ],
)
def test_timezone_precedence(
    calls: dict[str, object], writer: dict[str, object], zone: str | None, user: bool
) -> None:
    contacts = _contacts(calls, writer)
    assert (contacts.timezone, contacts.user_timezone) == (zone, user)


def test_a_bad_zone_names_the_key_and_the_user_choice() -> None:
    with pytest.raises(ConfigError) as info:
        _contacts({}, {"timezone": "User"})
    text = "\n".join(str(issue) for issue in info.value.issues)
    assert "writers.hs.timezone" in text
    assert "'User'" in text
    assert '"user"' in text


# -- the zone of one call ----------------------------------------------------------------------


def test_the_users_zone_wins_only_with_user_and_only_when_known() -> None:
    in_la = make_call(start_time=LATE_IN_LA, user_timezone="America/Los_Angeles")
    unknown = make_call(start_time=LATE_IN_LA)
    lost = make_call(start_time=LATE_IN_LA, user_timezone="Test/Not-On-This-System")
    user_first = Style.of(ContactSettings(timezone="America/New_York", user_timezone=True))
    fixed = Style.of(ContactSettings(timezone="America/New_York"))
    utc_else = Style.of(ContactSettings(user_timezone=True))
    assert user_first.zone(in_la) == LOS_ANGELES
    assert user_first.zone(unknown) == NEW_YORK
    assert user_first.zone(lost) == NEW_YORK
    assert fixed.zone(in_la) == NEW_YORK
    assert utc_else.zone(unknown) is None
    # The writers without a Style choose the same way.
    choose = content.zone_of(ContactSettings(timezone="America/New_York", user_timezone=True))
    assert [choose(c) for c in (in_la, unknown, lost)] == [LOS_ANGELES, NEW_YORK, NEW_YORK]


def test_subject_note_and_template_variables_follow_the_calls_zone() -> None:
    style = Style(NEW_YORK, subject_template=SUBJECT, note_template="At {start}", user_zone=True)
    call = make_call(start_time=LATE_IN_LA, user_timezone="America/Los_Angeles")
    assert style.subject(call, "Lee Ann") == (
        "Inbound call 2026-11-20 23:30:00 (America/Los_Angeles) with Lee Ann (+14155550123)"
    )
    assert style.note_text(call, None).splitlines()[0] == "At 2026-11-20 23:30:00 PST (-08:00)"
    default = Style(NEW_YORK, user_zone=True)
    assert "Start: 2026-11-20 23:30:00 PST (-08:00)" in default.note_text(call, None)
    assert "Start: 2026-11-21 02:30:00 EST (-05:00)" in default.note_text(
        make_call(start_time=LATE_IN_LA), None
    )


# -- end to end: simulator (zones, call log) -> directory -> Salesforce stand-in ---------------


def _answered_by(sim: Simulator, zone_name: str, start: datetime) -> tuple[str, list[Any]]:
    """An inbound call answered at ``start`` by a user whose RingCentral zone is
    ``zone_name``: (that user's id, the call's call-log records)."""
    factory = CallFactory(sim.org, seed=11)
    in_zone = {u.id for u in sim.org.users if u.timezone == zone_name}
    for salt in range(500):
        call = factory.make(start, CallKind.INBOUND_ANSWERED, salt=salt)
        answered = [log for log in call.expected if log.result == "answered"]
        if len(answered) == 1 and answered[0].extension_id in in_zone:
            assert answered[0].extension_id is not None
            return answered[0].extension_id, list(call.call_log_records)
    raise AssertionError(f"no inbound call answered in {zone_name} in 500 tries")


async def _directory_with_zones(rest: RestClient) -> Directory:
    """The directory as the daemon holds it once the users' zones are read."""
    zones = ZoneBook(read_gap=0.0, rng=random.Random(5))
    listed = await rest.extensions()

    async def nothing() -> None:
        return None

    async def no_sleep(_seconds: float) -> None:
        return None

    await zones.read(rest, zones.due(listed, 3600.0), no_sleep, nothing)
    return await load_directory(rest, zones)


def _call_of(records: list[Any], user: str, sim: Simulator, d: Directory) -> CompletedCall:
    decoded = [msgspec.convert(r, CallLogRecord) for r in records]
    calls, errors = calls_from_records(decoded, sim.org.account_id, d)
    assert errors == []
    (call,) = [c for c in calls if c.extension_id == user]
    return call


@pytest.fixture
async def salesforce_url() -> AsyncIterator[tuple[sf_standin.SalesforceState, str]]:
    state = sf_standin.SalesforceState(
        clock=lambda: (LATE_IN_LA + timedelta(minutes=5)).timestamp()
    )
    state.add_user("integration@example.com")
    async with serve(sf_standin.create_app(state)) as url:
        yield state, url


def _salesforce(url: str) -> WriterSettings:
    """The writer as an admin configures it: the account in New York, the writer per user."""
    data = {
        "ringcentral": {"client_id": "c", "client_secret": "s", "jwt": "j"},
        "calls": {"timezone": "America/New_York"},
        "writers": {
            "sf": {
                "type": "salesforce",
                "instance_url": "https://configured.invalid",
                "login_url": url,
                "client_id": sf_standin.CLIENT_ID,
                "client_secret": sf_standin.CLIENT_SECRET,
                "refresh_token": sf_standin.REFRESH_TOKEN,
                "timezone": "user",
                "subject_template": SUBJECT,
                "no_contact": "unassociated",
            }
        },
    }
    settings: Any = parse_config(data, "t.toml")
    account = settings.accounts[0] if getattr(settings, "accounts", ()) else settings
    writer: WriterSettings = account.writers[0]
    return writer


async def test_a_late_call_in_los_angeles_is_logged_on_its_local_date(
    salesforce_url: tuple[sf_standin.SalesforceState, str], http_session: aiohttp.ClientSession
) -> None:
    state, url = salesforce_url
    async with simulator() as sim, client(sim) as made:
        directory = await _directory_with_zones(made.rest)
        pacific, records_la = _answered_by(sim, "US/Pacific", LATE_IN_LA)
        eastern, records_ny = _answered_by(sim, "US/Eastern", LATE_IN_LA)
        in_la = _call_of(records_la, pacific, sim, directory)
        in_ny = _call_of(records_ny, eastern, sim, directory)
        # A user whose zone is not read yet (a directory from the list alone): the account's.
        minute_later, records_later = _answered_by(sim, "US/Pacific", LATE_IN_LA + MINUTE)
        not_read = _call_of(records_later, minute_later, sim, await load_directory(made.rest))
    assert in_la.user_timezone == "America/Los_Angeles"
    assert in_ny.user_timezone == "America/New_York"
    assert not_read.user_timezone is None

    writer = SalesforceWriter(_salesforce(url), http_session)
    for call in (in_la, in_ny, not_read):
        assert isinstance(await writer.write(call, WriteContext()), Created)
    tasks = {str(t["Subject"]): t for t in state.tasks.values()}
    la_subject = f"Inbound call 2026-11-20 23:30:00 (America/Los_Angeles) with {with_(in_la)}"
    ny_subject = f"Inbound call 2026-11-21 02:30:00 (America/New_York) with {with_(in_ny)}"
    fallback = f"Inbound call 2026-11-21 02:31:00 (America/New_York) with {with_(not_read)}"
    assert set(tasks) == {la_subject, ny_subject, fallback}
    assert tasks[la_subject]["ActivityDate"] == "2026-11-20"
    assert "Start: 2026-11-20 23:30:00 PST (-08:00)" in str(tasks[la_subject]["Description"])
    assert tasks[ny_subject]["ActivityDate"] == "2026-11-21"
    assert tasks[fallback]["ActivityDate"] == "2026-11-21"


async def test_live_calls_carry_their_users_zone_as_call_log_ones_do() -> None:
    async with simulator() as sim, client(sim) as made, Pipeline(sim, made) as pipe:
        zoned = await _directory_with_zones(made.rest)
        pipe.directory = zoned
        pipe.tracker.replace_directory(zoned)
        await pipe.streaming()
        calls = Calls(sim, seed=4)
        calls.place(6, CallKind.INBOUND_ANSWERED)
        await pipe.logged(calls.expected())
    user_ids = {u.id for u in sim.org.users}
    users = [c for c in pipe.calls if c.extension_id in user_ids]
    assert users
    for call in users:
        ext = zoned.by_id(call.extension_id)
        assert ext is not None
        assert ext.timezone is not None
        assert call.user_timezone == ext.timezone
    assert {c.user_timezone for c in users} <= {
        "America/Los_Angeles",
        "America/New_York",
        "America/Chicago",
    }
