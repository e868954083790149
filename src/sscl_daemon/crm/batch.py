"""Batch bookkeeping shared by the CRM writers (dispatch -> writer.write_batch -> here).

A writer that sends several calls per request (HubSpot, Salesforce) carries each call
through its steps as a :class:`Pending`: the first step that decides a call's fate sets its
``result``, and later steps only look at the calls still open. This module holds that
bookkeeping: splitting a batch into the CRM's chunks, failing what is still open when a
shared lookup fails, resolving contacts and owners per call, and sending the ready calls
either one by one or as one batch request. Writers without a batch API answer a batch
with :func:`each`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.crm.base import Created, RetryLater, WriteContext, WriteResult
from sscl_daemon.crm.contacts import LookupFailure, Resolution, Resolver

Items = Sequence[tuple[CompletedCall, WriteContext]]


@dataclass
class Pending:
    """One call on its way through a batch; ``result`` is set once decided."""

    call: CompletedCall
    ctx: WriteContext
    result: WriteResult | None = None
    payload: dict[str, object] = field(default_factory=dict)


def still_open(pending: Sequence[Pending]) -> list[Pending]:
    return [p for p in pending if p.result is None]


def fail_open(pending: Sequence[Pending], failure: LookupFailure) -> None:
    """A step shared by the calls failed: every call not yet decided gets its failure."""
    for p in still_open(pending):
        p.result = failure


def created(crm: str, record_id: object, written: str | None = None) -> WriteResult:
    """``Created`` for a create's answer id (with the note written); no id means we cannot
    name the record yet."""
    if record_id is None or record_id == "":
        return RetryLater(f"{crm}: create answered without an id")
    return Created(str(record_id), written)


async def in_chunks(
    crm: str,
    items: Items,
    size: int,
    write_chunk: Callable[[list[Pending]], Awaitable[None]],
) -> list[WriteResult]:
    """Run ``write_chunk`` over chunks of at most ``size`` calls; one result per call, in order."""
    results: list[WriteResult] = []
    for start in range(0, len(items), size):
        chunk = [Pending(call, ctx) for call, ctx in items[start : start + size]]
        await write_chunk(chunk)
        results.extend(p.result or RetryLater(f"{crm}: no answer for {p.call.key}") for p in chunk)
    return results


async def prepare(
    pending: Sequence[Pending],
    resolver: Resolver,
    payload: Callable[[CompletedCall, Resolution], dict[str, object]],
) -> list[Pending]:
    """Resolve contacts and owner of each open call and build its payload; returns the ready ones."""
    for p in still_open(pending):
        resolved = await resolver.resolve(p.call)
        if isinstance(resolved, Resolution):
            p.payload = payload(p.call, resolved)
        else:
            p.result = resolved
    return still_open(pending)


async def send(
    ready: list[Pending],
    one: Callable[[Pending], Awaitable[None]],
    many: Callable[[list[Pending]], Awaitable[None]],
) -> None:
    """A single ready call goes alone (the simpler request), two or more as a batch."""
    if len(ready) == 1:
        await one(ready[0])
    elif ready:
        await many(ready)


async def each(
    write: Callable[[CompletedCall, WriteContext], Awaitable[WriteResult]], items: Items
) -> list[WriteResult]:
    """A batch for a CRM without a batch API: one write per call, bounded by the limiter."""
    return list(await asyncio.gather(*(write(call, ctx) for call, ctx in items)))
