"""HubSpot without the unique-property premise (issue 15 step 3).

The writer reads its key property's definition once and works with a unique property
(HubSpot refuses repeats; ``idProperty`` reads) or a plain one (search by key before
creating after an earlier attempt, waiting out the search index's lag). The conformance kit
runs in both modes: the stand-in's default is the plain property HubSpot documents for calls
(``tests/crm/test_conformance_builtins.py``), the class below the unique one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from tests.crm.conftest import make_call
from tests.crm.test_conformance_builtins import NO_ROTATION, HubSpotHarness

from sscl_daemon.config import HubSpotOptions, Secret, WriterSettings, WriterType
from sscl_daemon.crm import hubspot
from sscl_daemon.crm.base import AlreadyExisted, Created, RetryLater, WriteContext
from sscl_daemon.crm.conformance import Harness, WriterConformance
from sscl_daemon.simulator.crm import hubspot as sim
from sscl_daemon.simulator.crm.common import serve

FIRST = WriteContext()
UNCERTAIN = WriteContext(attempt=2, uncertain=True)


class TestHubSpotConformanceWithUniqueKey(WriterConformance):
    @pytest.fixture
    async def harness(self, http_session: aiohttp.ClientSession) -> AsyncIterator[Harness]:
        state = sim.HubSpotState(key_unique=True)
        async with serve(sim.create_app(state)) as base:
            yield HubSpotHarness(
                state,
                http_session,
                "/crm/v3/objects/calls",
                limit_headers={
                    "X-HubSpot-RateLimit-Remaining": "0",
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                },
                limit_delay=10.0,
                unsupported={"token_rotation": NO_ROTATION},
                secrets=(sim.CLIENT_SECRET, sim.REFRESH_TOKEN),
                base=base,
            )


@pytest.fixture
async def lagging(
    http_session: aiohttp.ClientSession,
) -> AsyncIterator[tuple[sim.HubSpotState, hubspot.HubSpotWriter, list[float]]]:
    """A portal with a plain key property whose search index lags 5 s behind writes, and a
    writer; both read the same settable clock (``now[0]``)."""
    now = [1_000_000.0]
    state = sim.HubSpotState(index_delay=5.0, clock=lambda: now[0])
    async with serve(sim.create_app(state)) as url:
        options = HubSpotOptions(url, Secret(sim.PRIVATE_TOKEN))
        writer = hubspot.HubSpotWriter(
            WriterSettings("hs", WriterType.HUBSPOT, options, timeout=0.3), http_session
        )
        writer._clock = lambda: now[0]
        yield state, writer, now


async def test_plain_key_waits_out_the_search_lag_instead_of_logging_twice(
    lagging: tuple[sim.HubSpotState, hubspot.HubSpotWriter, list[float]],
) -> None:
    state, writer, now = lagging
    state.faults.stall(after=True, path="/crm/v3/objects/calls", method="POST", exact=True)
    lost = await writer.write(make_call(), FIRST)
    assert isinstance(lost, RetryLater)
    assert lost.uncertain
    assert len(state.calls) == 1  # HubSpot stored it; search does not show it yet
    assert writer.key_mode is hubspot.KeyMode.SEARCH

    held = await writer.write(make_call(), UNCERTAIN)
    assert isinstance(held, RetryLater)
    assert held.uncertain
    assert held.delay == pytest.approx(writer.index_settle)

    now[0] += writer.index_settle  # the index caught up meanwhile
    found = await writer.write(make_call(), UNCERTAIN)
    assert found == AlreadyExisted(next(iter(state.calls)))
    assert len(state.calls) == 1


async def test_plain_key_batch_searches_once_for_every_uncertain_call(
    lagging: tuple[sim.HubSpotState, hubspot.HubSpotWriter, list[float]],
) -> None:
    state, writer, now = lagging
    calls = [make_call(telephony_session_id=f"s-{n}") for n in range(3)]
    first = await writer.write_batch([(c, FIRST) for c in calls])
    assert all(isinstance(r, Created) for r in first)
    now[0] += 10.0
    before = state.count("POST", "/crm/v3/objects/calls/search")
    again = await writer.write_batch([(c, UNCERTAIN) for c in calls])
    assert again == [AlreadyExisted(r.record_id) for r in first if isinstance(r, Created)]
    # One search by key for the three (the client-log search is not needed: all settled).
    assert state.count("POST", "/crm/v3/objects/calls/search") - before == 1
    assert len(state.calls) == 3


async def test_a_token_that_may_not_read_properties_works_by_search(
    http_session: aiohttp.ClientSession,
) -> None:
    state = sim.HubSpotState(key_unique=True)
    state.faults.fail(
        403,
        path="/crm/v3/properties/calls/sscl_call_key",
        body={"status": "error", "message": "missing scopes", "category": "MISSING_SCOPES"},
    )
    async with serve(sim.create_app(state)) as url:
        options = HubSpotOptions(url, Secret(sim.PRIVATE_TOKEN))
        writer = hubspot.HubSpotWriter(
            WriterSettings("hs", WriterType.HUBSPOT, options), http_session
        )
        created = await writer.write(make_call(), FIRST)
        assert isinstance(created, Created)
        assert writer.key_mode is hubspot.KeyMode.SEARCH
        again = await writer.write(make_call(), UNCERTAIN)
    assert again == AlreadyExisted(created.record_id)
    assert len(state.calls) == 1
