"""The writer interface: how the dispatcher hands a completed call to a CRM, and how a
writer plugs into the daemon (config ``type`` -> :class:`WriterPlugin` -> :class:`Writer`).

A writer is the only place that knows one CRM's API. It turns a
``CompletedCall`` into the CRM's request(s) and answers with a
:data:`WriteResult`; it never raises for a CRM's business error, never
sleeps, and never touches Postgres. The dispatcher owns retries, backoff and
the ledger (see DESIGN.md, "dispatch").

A :class:`WriterPlugin` is what a writer package exposes in the ``sscl_daemon.writers``
entry-point group (``crm/registry.py`` finds it; the built-in writers are registered the
same way): the ``type`` name users write in ``[writers.NAME]``, a parser for its own keys
(reading them through an :class:`OptionReader`, so errors name the key path like every
other key), and a factory. ``docs/writers.md`` is the guide for writing one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config.plugins import OptionReader as OptionReader
from sscl_daemon.config.plugins import WriterPlugin as WriterPlugin

if TYPE_CHECKING:
    import aiohttp

    from sscl_daemon.config import WriterSettings


@dataclass(frozen=True)
class Created:
    """The CRM accepted a new record. ``written`` is the note the writer put into it, which
    later updates compare with to leave a person's edits alone (crm/enrich.py); it takes no
    part in equality."""

    record_id: str
    written: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class AlreadyExisted:
    """A record with our idempotency key (or the user's own client log) was already there.

    ``ours`` says it carries our key (an earlier attempt of ours made it, so its later
    updates are ours to make); it takes no part in equality."""

    record_id: str
    ours: bool = field(default=False, compare=False)


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


@runtime_checkable
class Described(Protocol):
    """A writer that reads a fact about its CRM before its first write (HubSpot: its key
    mode) and tells it to ``status``: the daemon awaits ``prepare`` before the writer's
    dispatcher starts, then records ``facts()`` in the store whenever they change."""

    async def prepare(self) -> None: ...

    def facts(self) -> Mapping[str, str]: ...


# A plug-in's types live with the configuration, which reads every writer's keys through
# them without importing any writer; plug-in authors import them from here.
# ``(writer settings, the daemon's shared HTTP session) -> writer``; ``settings.options`` is
# what the plug-in's option parser returned.
WriterFactory = Callable[["WriterSettings", "aiohttp.ClientSession"], Writer]
