"""Benchmark of every CRM writer: CRM requests per logged call.

Usage: ``python benchmarks/writers.py [--calls 1000] [--contacts 200] [--users 20] [--seed 7]
[--crm hubspot,zoho,...]``

Each writer talks over real loopback HTTP to its stand-in (``simulator/crm/``), which holds
``--contacts`` contacts and one CRM user per RingCentral user (HubSpot and Salesforce keep
half of the numbers in national format, as users type them). ``--calls`` seeded calls
(each with one of the contacts, a random user, answered / missed / voicemail) are logged
into fresh stand-ins:

* ``batched``: the way the dispatcher hands over a due backlog, ``write_batch`` with the
  writer's maximum (HubSpot 100, Salesforce 200, Zoho 100, Dynamics 100 change sets per
  ``$batch``, the webhook 100 per delivery; Pipedrive, Clio and Bullhorn have no batch API
  and write a batch call by call);
* ``single``: one ``write`` per call, the live path when calls end one by one;
* ``batched, no client check``: as ``batched`` with ``detect_client_logs = false`` (no
  search for logs users' own clients made), to show what that switch saves.

For each run the table shows every request the stand-in received (token, owner list,
contact searches, duplicate checks, creates), the requests per logged call over the whole
run and at steady state (after the first ``--warmup`` calls, once the token, the owner list
and the contacts seen so far are cached), and whether each call was logged exactly once.
The target (<= 1.2 at steady state) applies where the CRM offers batching; for the others
the figure is what that CRM's API costs.

A second table follows a log's whole lifecycle for HubSpot, Salesforce, Pipedrive, Zoho,
Dynamics 365, Clio and Bullhorn, with ``recordings = "link"`` and ``"upload"``: every fifth
answered call recorded, every voicemail with its transcription; the creates (batched) plus
each update the call expects, made as the enrichment runner makes it (the audio already
fetched from RingCentral). It prints the requests per logged call including the updates,
and per call without media (which gets no update, so costs its create only: target <= 1.5
for all of them -- Pipedrive has no batch create, but its client-log check of a batch is one read of recent activities, so a call
costs its create plus a share of that read and of the contact searches).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import msgspec
from aiohttp import web
from rich.console import Console
from rich.table import Table

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction, idempotency_key
from sscl_daemon.config import (
    ContactSettings,
    HubSpotOptions,
    OAuthClientSettings,
    RecordingsMode,
    SalesforceOptions,
    Secret,
    WriterSettings,
    WriterType,
    parse_config,
)
from sscl_daemon.crm.base import AlreadyExisted, Created, WriteContext, Writer, WriteResult
from sscl_daemon.crm.enrich import Enricher, Enrichment, Kind, Updated, expected
from sscl_daemon.crm.hubspot import BATCH_MAX as HUBSPOT_BATCH
from sscl_daemon.crm.hubspot import HubSpotWriter
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.crm.salesforce import BATCH_MAX as SALESFORCE_BATCH
from sscl_daemon.crm.salesforce import SalesforceWriter
from sscl_daemon.ringcentral.media import Audio
from sscl_daemon.simulator import media as sim_media
from sscl_daemon.simulator.crm import hubspot as hs_sim
from sscl_daemon.simulator.crm import salesforce as sf_sim
from sscl_daemon.simulator.crm import standins
from sscl_daemon.simulator.crm.common import StandInState, serve

T0 = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)
TARGET = 1.2
# Writer types with a batch create (or batch delivery): the target applies to them.
BATCHING = {"hubspot", "salesforce", "zoho", "dynamics", "webhook"}
GENERIC_BATCH = 100
RC = {"client_id": "bench", "client_secret": "bench-secret", "jwt": "bench-jwt"}


@dataclass(frozen=True)
class Scenario:
    calls: tuple[CompletedCall, ...]
    contacts: tuple[str, ...]  # E.164
    users: tuple[str, ...]  # e-mail addresses


def scenario(calls: int, contacts: int, users: int, seed: int) -> Scenario:
    rng = random.Random(seed)
    numbers = tuple(f"+1415555{n:04d}" for n in rng.sample(range(10_000), contacts))
    emails = tuple(f"user{u}@example.com" for u in range(users))
    made = []
    for n in range(calls):
        user = rng.randrange(users)
        result = rng.choices(
            [CallResult.ANSWERED, CallResult.MISSED, CallResult.VOICEMAIL], [8, 1, 1]
        )[0]
        start = T0 + timedelta(seconds=n * 7)
        talk = rng.randrange(20_000, 600_000) if result is CallResult.ANSWERED else 0
        ring = rng.randrange(3_000, 25_000)
        tsid = f"s-bench-{seed}-{n:06d}"
        made.append(
            CompletedCall(
                key=idempotency_key(tsid, str(60_000 + user)),
                telephony_session_id=tsid,
                session_id=str(900_000 + n),
                account_id="37439510",
                extension_id=str(60_000 + user),
                extension_number=str(101 + user),
                user_name=f"User {user}",
                user_email=emails[user],
                direction=rng.choice([Direction.INBOUND, Direction.OUTBOUND]),
                external_number=rng.choice(numbers),
                external_name=None,
                internal_number=None,
                result=result,
                start_time=start,
                answer_time=start + timedelta(milliseconds=ring) if talk else None,
                end_time=start + timedelta(milliseconds=ring + talk),
                ring_ms=ring,
                queue_ms=0,
                talk_ms=talk,
                hold_ms=0,
                total_ms=ring + talk,
            )
        )
    return Scenario(tuple(made), numbers, emails)


def national(e164: str) -> str:
    digits = e164.removeprefix("+1")
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


@dataclass
class Run:
    crm: str
    mode: str
    requests: int
    warm_requests: int
    logged: int
    stored: int
    seconds: float
    calls: int
    warmup: int

    @property
    def batching(self) -> bool:
        return self.crm.lower().split()[0] in BATCHING or self.crm == standins.LABELS["webhook"]

    @property
    def per_call(self) -> float:
        return self.requests / max(self.logged, 1)

    @property
    def steady(self) -> float:
        return (self.requests - self.warm_requests) / max(self.calls - self.warmup, 1)


WriterFactory = Callable[[str, aiohttp.ClientSession], Writer]


async def drive(
    writer: Writer,
    state: StandInState,
    calls: Sequence[CompletedCall],
    batch: int,
    warmup: int,
) -> tuple[list[WriteResult], int]:
    """Log every call in groups of ``batch``; returns results and requests seen at warm-up end."""
    results: list[WriteResult] = []
    warm = 0
    for start in range(0, len(calls), batch):
        if start == warmup:
            warm = len(state.requests)
        group = calls[start : start + batch]
        if batch == 1:
            results.append(await writer.write(group[0], WriteContext()))
        else:
            results.extend(await writer.write_batch([(c, WriteContext()) for c in group]))
    return results, warm


async def run_hubspot(sc: Scenario, batch: int, warmup: int, mode: str, detect: bool = True) -> Run:
    state = hs_sim.HubSpotState(burst=10**9)
    for n, number in enumerate(sc.contacts):
        state.add_contact(number if n % 2 else national(number), f"Contact{n}", "Bench")
    for email in sc.users:
        state.add_owner(email)

    def make(url: str, session: aiohttp.ClientSession) -> Writer:
        opts = HubSpotOptions(url, Secret(hs_sim.PRIVATE_TOKEN))
        settings = WriterSettings(
            "hubspot", WriterType.HUBSPOT, opts, rate_limit=10_000.0,
            contacts=ContactSettings(detect_client_logs=detect),
        )  # fmt: skip
        return HubSpotWriter(settings, session)

    return await measure("HubSpot", mode, sc, state, hs_sim.create_app(state), make, batch,
                         warmup, lambda: len(state.calls))  # fmt: skip


async def run_salesforce(
    sc: Scenario, batch: int, warmup: int, mode: str, detect: bool = True
) -> Run:
    state = sf_sim.SalesforceState(clock=lambda: (T0 + timedelta(hours=4)).timestamp())
    state.add_user("integration@example.com")
    for n, number in enumerate(sc.contacts):
        state.add_contact(number if n % 2 else national(number), f"Bench{n}")
    for email in sc.users:
        state.add_user(email)

    def make(url: str, session: aiohttp.ClientSession) -> Writer:
        oauth = OAuthClientSettings(
            sf_sim.CLIENT_ID, Secret(sf_sim.CLIENT_SECRET), Secret(sf_sim.REFRESH_TOKEN)
        )
        opts = SalesforceOptions("https://unused.invalid", oauth, url)
        settings = WriterSettings(
            "salesforce", WriterType.SALESFORCE, opts, rate_limit=10_000.0,
            contacts=ContactSettings(detect_client_logs=detect),
        )  # fmt: skip
        return SalesforceWriter(settings, session)

    return await measure("Salesforce", mode, sc, state, sf_sim.create_app(state), make, batch,
                         warmup, lambda: len(state.tasks))  # fmt: skip


async def run_standin(
    kind: str, sc: Scenario, batch: int, warmup: int, mode: str, detect: bool = True
) -> Run:
    """Any writer type against its stand-in, configured the way a user would (a writer
    table parsed by the configuration, the writer built by the plug-in registry)."""
    contacts = [(f"Contact {n}", number) for n, number in enumerate(sc.contacts)]
    async with (
        standins.running(kind, contacts, sc.users) as crm,
        aiohttp.ClientSession() as session,
    ):
        table = {**crm.writer, "rate_limit": 10_000.0, "batch_size": max(batch, 1)}
        if kind != "webhook":
            table["detect_client_logs"] = detect
        settings = parse_config({"ringcentral": RC, "writers": {kind: table}}).account().writers[0]
        writer = build_writer(settings, session)
        began = time.perf_counter()
        results, warm = await drive(writer, crm.state, sc.calls, batch, warmup)
        seconds = time.perf_counter() - began
        await writer.close()
        stored = crm.stored()
    logged = sum(isinstance(r, Created | AlreadyExisted) for r in results)
    return Run(crm.label, mode, len(crm.state.requests), warm, logged, stored, seconds,
               len(sc.calls), warmup)  # fmt: skip


async def measure(
    crm: str,
    mode: str,
    sc: Scenario,
    state: StandInState,
    app: web.Application,
    make: WriterFactory,
    batch: int,
    warmup: int,
    stored: Callable[[], int],
) -> Run:
    async with serve(app) as url, aiohttp.ClientSession() as session:
        writer = make(url, session)
        began = time.perf_counter()
        results, warm = await drive(writer, state, sc.calls, batch, warmup)
        seconds = time.perf_counter() - began
    logged = sum(isinstance(r, Created | AlreadyExisted) for r in results)
    return Run(crm, mode, len(state.requests), warm, logged, stored(), seconds,
               len(sc.calls), warmup)  # fmt: skip


def report(runs: Sequence[Run], console: Console) -> None:
    table = Table(title="CRM requests per logged call (loopback stand-ins)")
    for column in ("CRM", "mode", "calls", "logged", "stored", "requests", "req/call",
                   "req/call steady", "calls/s", f"target <= {TARGET}"):  # fmt: skip
        table.add_column(column, justify="right" if column not in ("CRM", "mode") else "left")
    for r in runs:
        verdict = "met" if r.steady <= TARGET else "MISSED"
        if not r.mode.startswith("batched"):
            verdict = "-"
        elif not r.batching:
            verdict = "no batch API"
        table.add_row(r.crm, r.mode, str(r.calls), str(r.logged), str(r.stored), str(r.requests),
                      f"{r.per_call:.3f}", f"{r.steady:.3f}", f"{r.calls / r.seconds:.0f}",
                      verdict)  # fmt: skip
    console.print(table)


# -- the log lifecycle: creates plus the updates with recordings and voicemail (issue 15) ----

MEDIA_TARGET = 1.5
LIFECYCLE_KINDS = ("hubspot", "salesforce", "pipedrive", "zoho", "dynamics", "clio", "bullhorn")


@dataclass
class Lifecycle:
    crm: str
    recordings: str
    calls: int
    with_media: int
    updates: int
    create_requests: int
    update_requests: int
    logged: int

    @property
    def per_call(self) -> float:
        return (self.create_requests + self.update_requests) / max(self.logged, 1)

    @property
    def without_media(self) -> float:
        """Requests per call that gets no update: its share of the creates, nothing more."""
        return self.create_requests / max(self.calls, 1)


async def run_lifecycle(kind: str, sc: Scenario, recordings: RecordingsMode) -> Lifecycle:
    """Create every call (batched), then make each update the call expects the way the
    enrichment runner hands it to the writer (audio from RingCentral already fetched)."""
    calls = [
        msgspec.structs.replace(c, recording_ids=(f"rec-{n}",)) if n % 5 == 0 and c.talk_ms else c
        for n, c in enumerate(sc.calls)
    ]
    contacts = [(f"Contact {n}", number) for n, number in enumerate(sc.contacts)]
    batch = {"hubspot": HUBSPOT_BATCH, "salesforce": SALESFORCE_BATCH}.get(kind, GENERIC_BATCH)
    async with (
        standins.running(kind, contacts, sc.users) as crm,
        aiohttp.ClientSession() as session,
    ):
        table = {**crm.writer, "rate_limit": 10_000.0, "recordings": recordings.value}
        parsed = parse_config({"ringcentral": RC, "writers": {kind: table}})
        settings = parsed.account().writers[0]
        writer = build_writer(settings, session)
        assert isinstance(writer, Enricher)
        results, _ = await drive(writer, crm.state, calls, batch, 0)
        creates = len(crm.state.requests)
        updates = 0
        for call, result in zip(calls, results, strict=True):
            kinds = expected(call, recordings) if isinstance(result, Created) else []
            for what in kinds:
                assert isinstance(result, Created)
                e = Enrichment(what, call, result.record_id, result.written)
                audio_of = f"voicemail-{call.key}" if what is Kind.VOICEMAIL else call.key
                if recordings is RecordingsMode.UPLOAD:
                    data = sim_media.recording_bytes(audio_of, 30)
                    e.audio = [Audio(io.BytesIO(data), len(data), "audio/wav", f"{audio_of}.wav")]
                elif recordings is RecordingsMode.LINK and what is Kind.VOICEMAIL:
                    e.links = [f"https://media.example/{audio_of}"]
                if what is Kind.VOICEMAIL:
                    e.transcription = sim_media.transcription_text(call.key)
                answer = await writer.enrich(e, WriteContext())
                assert isinstance(answer, Updated), answer
                updates += 1
        await writer.close()
    logged = sum(isinstance(r, Created | AlreadyExisted) for r in results)
    with_media = sum(bool(expected(c, recordings)) for c in calls)
    return Lifecycle(crm.label, recordings.value, len(calls), with_media, updates, creates,
                     len(crm.state.requests) - creates, logged)  # fmt: skip


def report_lifecycle(runs: Sequence[Lifecycle], console: Console) -> None:
    table = Table(title="A log's lifecycle: creates plus updates (recording, voicemail)")
    for column in ("CRM", "recordings", "calls", "with media", "updates", "create req",
                   "update req", "req/logged call", "req/call without media",
                   f"target <= {MEDIA_TARGET}"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("CRM", "recordings") else "right")
    for r in runs:
        verdict = "met" if r.without_media <= MEDIA_TARGET else "MISSED"
        table.add_row(r.crm, r.recordings, str(r.calls), str(r.with_media), str(r.updates),
                      str(r.create_requests), str(r.update_requests), f"{r.per_call:.3f}",
                      f"{r.without_media:.3f}", verdict)  # fmt: skip
    console.print(table)


async def main(args: argparse.Namespace) -> int:
    sc = scenario(args.calls, args.contacts, args.users, args.seed)
    runs: list[Run] = []
    for kind in args.crm:
        batch = {"hubspot": HUBSPOT_BATCH, "salesforce": SALESFORCE_BATCH}.get(kind, GENERIC_BATCH)
        warmup = max(args.warmup // batch * batch, batch) if args.warmup else 0
        runner = {"hubspot": run_hubspot, "salesforce": run_salesforce}.get(kind)
        for mode, size, warm, detect in (
            ("batched", batch, warmup, True),
            ("batched, no client check", batch, warmup, False),
            ("single", 1, args.warmup, True),
        ):
            if kind == "webhook" and not detect:
                continue  # the webhook has no client-log check
            if runner is not None:
                runs.append(await runner(sc, size, warm, mode, detect))
            else:
                runs.append(await run_standin(kind, sc, size, warm, mode, detect))
    report(runs, Console(width=150))
    lives = [
        await run_lifecycle(kind, sc, mode)
        for kind in args.crm
        if kind in LIFECYCLE_KINDS
        for mode in (RecordingsMode.LINK, RecordingsMode.UPLOAD)
    ]
    if lives:
        report_lifecycle(lives, Console(width=150))
    ok = all(r.logged == r.stored == r.calls for r in runs) and all(
        r.steady <= TARGET for r in runs if r.mode.startswith("batched") and r.batching
    )
    ok = ok and all(r.without_media <= MEDIA_TARGET and r.logged == r.calls for r in lives)
    return 0 if ok else 1


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=200, help="calls before steady state")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--crm",
        type=lambda v: [k.strip() for k in v.split(",") if k.strip()],
        default=list(standins.KINDS),
        help=f"writer types to measure, comma-separated (default: {','.join(standins.KINDS)})",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
