"""Every writer type's stand-in as the demo and the benchmark run it: configured from the
writer table it hands out, built by the registry, one call lands; and the demo with Zoho."""

from __future__ import annotations

import io

import aiohttp
import pytest
from tests.crm.conftest import make_call

from sscl_daemon.config import parse_config
from sscl_daemon.crm.base import Created, WriteContext
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.simulator.crm.standins import KINDS, running

RC = {"client_id": "id", "client_secret": "s", "jwt": "j"}


@pytest.mark.parametrize("kind", KINDS)
async def test_the_stand_in_takes_a_call_from_its_writer_table(
    kind: str, http_session: aiohttp.ClientSession
) -> None:
    call = make_call()
    async with running(kind, [("Carol", str(call.external_number))], ["alice@example.com"]) as crm:
        settings = parse_config({"ringcentral": RC, "writers": {"crm": crm.writer}})
        writer = build_writer(settings.account().writers[0], http_session)
        assert isinstance(await writer.write(call, WriteContext()), Created)
        await writer.close()
        assert crm.stored() == 1


async def test_demo_logs_calls_into_the_zoho_stand_in() -> None:
    from sscl_daemon.demo import DemoOptions, run_demo

    out = io.StringIO()
    report = await run_demo(DemoOptions(duration=20.0, crm="zoho"), out)
    assert "CRM (stand-in for Zoho CRM)" in out.getvalue()
    assert sum(report.logged.values()) > 0
    assert report.exit_code == 0
