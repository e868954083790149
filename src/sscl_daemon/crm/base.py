"""The writer protocol: how the dispatcher hands a completed call to a CRM.

A writer is the only place that knows one CRM's API. It turns a
``CompletedCall`` into the CRM's request(s) and answers with a
:data:`WriteResult`; it never raises for a CRM's business error, never
sleeps, and never touches Postgres. The dispatcher owns retries, backoff and
the ledger (see DESIGN.md, "dispatch").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sscl_daemon.calls.model import CompletedCall


@dataclass(frozen=True)
class Created:
    """The CRM accepted a new record."""

    record_id: str


@dataclass(frozen=True)
class AlreadyExisted:
    """A record with our idempotency key (or the user's own client log) was already there."""

    record_id: str


@dataclass(frozen=True)
class RetryLater:
    """Transient failure: try again after ``delay`` seconds (None: the dispatcher's backoff).

    ``uncertain`` says the request may have reached the CRM (a timeout, a connection
    lost after sending): the next attempt then runs with ``WriteContext.uncertain``
    and looks for the record before creating it.
    """

    reason: str
    delay: float | None = None
    uncertain: bool = False


@dataclass(frozen=True)
class PermanentFailure:
    """The CRM will never accept this call as it is; it is parked as a dead letter."""

    reason: str


@dataclass(frozen=True)
class Skipped:
    """The configured contact policy says not to log this call (``no_contact`` or
    ``several_contacts = "skip"``): nothing was written, and nothing should be.

    The dispatcher settles the row as skipped; it is neither sent nor dead, and
    ``retry-dead`` leaves it alone. ``reason`` names the policy that decided.
    """

    reason: str


WriteResult = Created | AlreadyExisted | RetryLater | PermanentFailure | Skipped


@dataclass(frozen=True)
class WriteContext:
    """What the dispatcher knows about earlier attempts at the same ledger row.

    ``uncertain`` is true when an earlier attempt may have reached the CRM
    without us recording the answer (a timeout, or a crash after sending):
    the writer must then look for an existing record with our key before
    creating one.
    """

    attempt: int = 1
    uncertain: bool = False


class Writer(Protocol):
    """A CRM writer. ``write_batch`` returns one result per call, in order."""

    @property
    def name(self) -> str: ...

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult: ...

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]: ...

    async def close(self) -> None: ...
