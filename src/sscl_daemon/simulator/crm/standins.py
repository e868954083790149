"""Every CRM stand-in ready to run, with the ``[writers.NAME]`` table that points a writer at it
(stand-ins -> the demo's ``--crm`` and ``benchmarks/writers.py``).

:func:`running` starts the stand-in of one writer type on a loopback port, seeds it with the
contacts and CRM users asked for, and yields a :class:`RunningStandIn`: its URL, the writer
table a configuration needs to log into it (credentials of the stand-in, inline), and how
many call logs it holds. Limits of the stand-ins that model a vendor's per-minute allowance
(Zoho, Clio) are raised so that a demo or a benchmark measures the writer, not the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from sscl_daemon.simulator.crm import (
    bullhorn,
    clio,
    dynamics,
    hubspot,
    pipedrive,
    salesforce,
    webhook,
    zoho,
)
from sscl_daemon.simulator.crm.common import StandInState, serve

LABELS = {
    "webhook": "a signed webhook receiver",
    "hubspot": "HubSpot",
    "salesforce": "Salesforce",
    "pipedrive": "Pipedrive",
    "zoho": "Zoho CRM",
    "dynamics": "Dynamics 365 (Dataverse)",
    "clio": "Clio Manage",
    "bullhorn": "Bullhorn",
}
KINDS = tuple(LABELS)
PIPEDRIVE_TOKEN = "pd-demo-api-token"


@dataclass(frozen=True)
class RunningStandIn:
    kind: str
    label: str
    url: str
    writer: dict[str, object]  # the [writers.NAME] table (without its name)
    state: StandInState
    stored: Callable[[], int]  # call logs the stand-in holds


Contacts = Sequence[tuple[str, str]]  # (name, E.164 number)


def _oauth(client_id: str, secret: str, refresh: str) -> dict[str, object]:
    return {"client_id": client_id, "client_secret": secret, "refresh_token": refresh}


def _build(
    kind: str, contacts: Contacts, users: Sequence[str]
) -> tuple[StandInState, web.Application, Callable[[str], dict[str, object]], Callable[[], int]]:
    if kind == "webhook":
        hook = webhook.WebhookReceiverState()
        table = {"type": "webhook", "secret": hook.secret}
        return (
            hook,
            webhook.create_app(hook),
            lambda b: {**table, "url": f"{b}/calls"},
            lambda: len(hook.deliveries),
        )
    if kind == "hubspot":
        hs = hubspot.HubSpotState(burst=10**9)
        for name, number in contacts:
            hs.add_contact(number, name)
        for email in users:
            hs.add_owner(email)
        table = {"type": "hubspot", "access_token": hubspot.PRIVATE_TOKEN}
        return hs, hubspot.create_app(hs), lambda b: {**table, "base_url": b}, lambda: len(hs.calls)
    if kind == "salesforce":
        sf = salesforce.SalesforceState()
        sf.add_user("integration@example.com")
        for name, number in contacts:
            sf.add_contact(number, name)
        for email in users:
            sf.add_user(email)
        oauth = _oauth(salesforce.CLIENT_ID, salesforce.CLIENT_SECRET, salesforce.REFRESH_TOKEN)
        return (
            sf,
            salesforce.create_app(sf),
            lambda b: {"type": "salesforce", "instance_url": b, "login_url": b, **oauth},
            lambda: len(sf.tasks),
        )
    if kind == "pipedrive":
        pd = pipedrive.PipedriveState(rate_limit=10**6)
        pd.add_user("admin@example.com", api_token=PIPEDRIVE_TOKEN)
        for name, number in contacts:
            pd.add_person(name, [number])
        for email in users:
            pd.add_user(email)
        table = {"type": "pipedrive", "api_token": PIPEDRIVE_TOKEN}
        return (
            pd,
            pipedrive.create_app(pd),
            lambda b: {**table, "base_url": b},
            lambda: len(pd.call_logs),
        )
    if kind == "zoho":
        zs = zoho.ZohoState(rate_limit=10**6)
        for name, number in contacts:
            zs.add_contact(name, number)
        for email in users:
            zs.add_user(email)
        oauth = _oauth(zoho.CLIENT_ID, zoho.CLIENT_SECRET, zoho.REFRESH_TOKEN)
        return (
            zs,
            zoho.create_app(zs),
            lambda b: {"type": "zoho", "accounts_url": b, **oauth},
            lambda: len(zs.calls),
        )
    if kind == "dynamics":
        dv = dynamics.DynamicsState(rate_limit=10**6)
        for name, number in contacts:
            dv.add_contact(name, number)
        for email in users:
            dv.add_user(email)
        table = {
            "type": "dynamics",
            "tenant_id": dynamics.TENANT_ID,
            "client_id": dynamics.CLIENT_ID,
            "client_secret": dynamics.CLIENT_SECRET,
        }
        return (
            dv,
            dynamics.create_app(dv),
            lambda b: {**table, "environment_url": b, "authority_url": b},
            lambda: len(dv.phonecalls),
        )
    if kind == "clio":
        cl = clio.ClioState(rate_limit=10**6)
        for name, number in contacts:
            cl.add_contact(name, number)
        for email in users:
            cl.add_user(email)
        oauth = _oauth(clio.CLIENT_ID, clio.CLIENT_SECRET, clio.REFRESH_TOKEN)
        return (
            cl,
            clio.create_app(cl),
            lambda b: {"type": "clio", "region_url": b, **oauth},
            lambda: len(cl.communications),
        )
    if kind == "bullhorn":
        bh = bullhorn.BullhornState(rate_limit=10**6)
        for name, number in contacts:
            bh.add_person("ClientContact", name, number)
        for email in users:
            bh.add_user(email)
        oauth = _oauth(bullhorn.CLIENT_ID, bullhorn.CLIENT_SECRET, bullhorn.REFRESH_TOKEN)
        # A Note must name a person: callers nobody knows become candidates.
        bh_table = {"type": "bullhorn", "no_contact": "create", **oauth}
        return (
            bh,
            bullhorn.create_app(bh),
            lambda b: {**bh_table, "auth_url": b, "login_url": b},
            lambda: len(bh.notes),
        )
    raise ValueError(f"no stand-in for writer type {kind!r}; use one of {', '.join(KINDS)}")


@asynccontextmanager
async def running(
    kind: str, contacts: Contacts = (), users: Sequence[str] = ()
) -> AsyncIterator[RunningStandIn]:
    """The stand-in of writer type ``kind`` on a free loopback port, seeded."""
    state, app, table, stored = _build(kind, contacts, users)
    async with serve(app) as base:
        yield RunningStandIn(kind, LABELS[kind], base, table(base), state, stored)
