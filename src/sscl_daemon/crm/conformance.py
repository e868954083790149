"""The writer conformance kit: what every writer, built-in or third-party, must do (tests -> here).

A writer's test module implements a :class:`Harness` over the writer's stand-in (a
loopback HTTP server speaking the CRM's API, with the fault switches of
``simulator/crm/common.py``) and subclasses :class:`WriterConformance`::

    class TestFooConformance(WriterConformance):
        @pytest.fixture
        async def harness(self) -> AsyncIterator[Harness]:
            async with FooHarness.running() as harness:
                yield harness

pytest (with ``asyncio_mode = "auto"``) then runs every check below against it. The writer
is built through the plug-in registry from the harness's settings, exactly as the daemon
builds it. The checks:

* exactly one record per call when an attempt is uncertain -- a timeout after the CRM
  stored the record, a connection lost after sending -- and the dispatcher retries;
* 429 with ``Retry-After`` (the delay is that value), 429 without it (the CRM's own limit
  headers, or a default pause), 5xx (the dispatcher's backoff), each followed by one record;
* an expired access token is refreshed; a rotated refresh token reaches the vault; a
  revoked one is a permanent failure naming the credentials, never showing a secret;
* a call the CRM refuses is a permanent failure whose reason names the CRM and its message;
* contact not found: ``create``, ``unassociated`` and ``skip``; a contact found by phone is
  associated;
* a batch whose answer mixes stored and refused calls gives each call its own result;
* the owner is mapped by e-mail and by the ``owners`` table.

A point a writer cannot meet by the nature of its CRM is declared in the harness's
``unsupported`` (point -> why); the check is then skipped with that reason, so the gap is
visible in every test run instead of silently passing. Needs pytest.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import aiohttp
import pytest

from sscl_daemon.calls.model import CallResult, CompletedCall, Direction, idempotency_key
from sscl_daemon.config import ContactSettings, NoContactPolicy, WriterSettings
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    PermanentFailure,
    RetryLater,
    Skipped,
    WriteContext,
    Writer,
    WriteResult,
)
from sscl_daemon.crm.registry import build_writer

if TYPE_CHECKING:
    from sscl_daemon.simulator.crm.common import FaultPlan

# The points a harness may declare unsupported (see the module docstring).
POINTS = (
    "uncertain",
    "rate_limit",
    "token_refresh",
    "token_rotation",
    "contacts",
    "unassociated",
    "owners",
    "batch",
)
SHORT_TIMEOUT = 0.5


@dataclass(frozen=True)
class Logged:
    """A call log as the stand-in stored it: its id, the contacts it names, its owner."""

    id: str
    contacts: tuple[str, ...] = ()
    owner: str | None = None


class MemoryVault:
    """A token vault in memory (the daemon's is in Postgres)."""

    def __init__(self) -> None:
        self.value: str | None = None
        self.saves = 0

    async def load(self) -> str | None:
        return self.value

    async def save(self, value: str) -> None:
        self.value = value
        self.saves += 1


class StandIn(Protocol):
    """What the kit needs of a stand-in's state (``simulator/crm/common.StandInState``)."""

    # The simulator's fault switches (one signature: its fail, stall and drop).
    @property
    def faults(self) -> FaultPlan: ...

    @property
    def refused_keys(self) -> set[str]: ...


# Contact settings of most checks: nothing created, owners by e-mail.
PLAIN = ContactSettings(no_contact=NoContactPolicy.UNASSOCIATED, detect_client_logs=True)


@dataclass
class Harness(abc.ABC):
    """One writer type against its running stand-in."""

    state: StandIn
    session: aiohttp.ClientSession
    # Path of the request that stores a single call log (faults aim at it).
    create_path: str
    create_exact: bool = True
    create_method: str = "POST"
    # What the CRM answers 429 with when it sends no Retry-After, and the delay expected
    # from that (None: any positive delay).
    limit_headers: Mapping[str, str] = field(default_factory=dict)
    limit_delay: float | None = None
    # point -> why this writer cannot meet it (see POINTS).
    unsupported: Mapping[str, str] = field(default_factory=dict)
    # Secret values that must never appear in a reason.
    secrets: tuple[str, ...] = ()
    # Where every writer of the harness keeps rotated refresh tokens, as the daemon's store
    # does for all its writers.
    vault: MemoryVault = field(default_factory=lambda: MemoryVault())
    # The contact settings every check starts from (a CRM whose logs must name a person
    # starts from no_contact = create).
    baseline: ContactSettings = PLAIN
    # Writers the checks built, closed after each check.
    built: list[Writer] = field(default_factory=list)

    @abc.abstractmethod
    def settings(self, name: str, contacts: ContactSettings, timeout: float) -> WriterSettings:
        """Settings of a writer pointed at the stand-in."""

    @abc.abstractmethod
    def logged(self, key: str) -> list[Logged]:
        """Every record of the stand-in carrying our key ``key``."""

    # The hooks below are needed by the points that use them ("contacts", "owners",
    # "token_refresh"); a harness declaring those unsupported may leave them out.

    def add_contact(self, name: str, e164: str) -> str:
        """A contact (person) with this number in the CRM; its id."""
        raise NotImplementedError

    def add_user(self, email: str) -> str:
        """A CRM user with this e-mail; its id."""
        raise NotImplementedError

    @abc.abstractmethod
    def refuse(self, key: str) -> None:
        """Make the CRM refuse (as invalid) any record carrying ``key``."""

    def expire_tokens(self) -> None:
        """End every access token (and session) the CRM issued."""
        raise NotImplementedError

    def revoke_refresh_tokens(self) -> None:
        """Make the configured credentials useless (revoked refresh token, new secret)."""
        raise NotImplementedError

    def current_refresh_token(self) -> str | None:
        """The refresh token the CRM accepts now (None: the CRM does not rotate them)."""
        return None


def conformance_call(n: int = 1, **overrides: Any) -> CompletedCall:
    """An answered inbound call; ``n`` makes distinct sessions and numbers."""
    tsid = overrides.pop("telephony_session_id", f"s-conf-{n}")
    ext = overrides.pop("extension_id", "62001")
    start = datetime(2026, 11, 24, 9, 30, tzinfo=UTC) + timedelta(minutes=5 * n)
    fields: dict[str, Any] = {
        "key": idempotency_key(tsid, ext),
        "telephony_session_id": tsid,
        "session_id": f"90{n:02d}",
        "account_id": "37439510",
        "extension_id": ext,
        "extension_number": "101",
        "user_name": "Alice Agent",
        "user_email": "alice@example.com",
        "direction": Direction.INBOUND,
        "external_number": f"+1415555{n:04d}",
        "external_name": None,
        "internal_number": None,
        "result": CallResult.ANSWERED,
        "start_time": start,
        "answer_time": start + timedelta(seconds=12),
        "end_time": start + timedelta(minutes=2, seconds=17),
        "ring_ms": 12_000,
        "queue_ms": 0,
        "talk_ms": 125_000,
        "hold_ms": 0,
        "total_ms": 137_000,
    }
    fields.update(overrides)
    return CompletedCall(**fields)


LANDED = (Created, AlreadyExisted)


class WriterConformance:
    """The checks; a subclass provides the ``harness`` fixture."""

    __test__: ClassVar[bool] = False  # collected only through subclasses named Test*

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__test__ = cls.__name__.startswith("Test")

    @pytest.fixture(autouse=True)
    async def _close_writers(self, harness: Harness) -> AsyncIterator[None]:
        yield
        for writer in harness.built:
            await writer.close()

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def supports(harness: Harness, point: str) -> None:
        unknown = set(harness.unsupported) - set(POINTS)
        assert not unknown, f"unknown conformance points {unknown}; see POINTS"
        why = harness.unsupported.get(point)
        if why:
            pytest.skip(f"not applicable to this writer: {why}")

    @staticmethod
    def writer(
        harness: Harness,
        contacts: ContactSettings | None = None,
        timeout: float = 10.0,
        name: str = "conformance",
    ) -> Writer:
        settings = harness.settings(name, contacts or harness.baseline, timeout)
        writer = build_writer(settings, harness.session, lambda _: harness.vault)
        harness.built.append(writer)
        return writer

    @staticmethod
    def one(harness: Harness, call: CompletedCall) -> Logged:
        logged = harness.logged(call.key)
        assert len(logged) == 1, f"{len(logged)} records for {call.key}, want exactly one"
        return logged[0]

    @staticmethod
    def clean(harness: Harness, reason: str) -> None:
        for secret in harness.secrets:
            assert secret not in reason, "a secret appears in a failure reason"

    @staticmethod
    async def write(writer: Writer, call: CompletedCall, **ctx: Any) -> WriteResult:
        return await writer.write(call, WriteContext(**ctx))

    # -- exactly once ------------------------------------------------------------------------

    async def test_timeout_after_send_then_retry_logs_once(self, harness: Harness) -> None:
        self.supports(harness, "uncertain")
        call = conformance_call(1)
        harness.state.faults.stall(
            after=True,
            path=harness.create_path,
            method=harness.create_method,
            exact=harness.create_exact,
        )
        first = await self.write(self.writer(harness, timeout=SHORT_TIMEOUT), call)
        assert isinstance(first, RetryLater), first
        assert first.uncertain, first
        second = await self.write(self.writer(harness), call, attempt=2, uncertain=True)
        assert isinstance(second, LANDED), second
        assert self.one(harness, call).id == second.record_id

    async def test_connection_lost_after_send_then_retry_logs_once(self, harness: Harness) -> None:
        self.supports(harness, "uncertain")
        call = conformance_call(2)
        harness.state.faults.drop(
            path=harness.create_path, method=harness.create_method, exact=harness.create_exact
        )
        writer = self.writer(harness)
        first = await self.write(writer, call)
        assert isinstance(first, RetryLater), first
        assert first.uncertain, first
        second = await self.write(writer, call, attempt=2, uncertain=True)
        assert isinstance(second, LANDED), second
        assert self.one(harness, call).id == second.record_id

    async def test_a_logged_call_written_again_is_not_logged_twice(self, harness: Harness) -> None:
        call = conformance_call(3)
        writer = self.writer(harness)
        first = await self.write(writer, call)
        assert isinstance(first, Created), first
        again = await self.write(writer, call, attempt=2, uncertain=True)
        assert again == AlreadyExisted(first.record_id)
        self.one(harness, call)

    # -- limits and outages ------------------------------------------------------------------

    async def test_429_with_retry_after_waits_that_long(self, harness: Harness) -> None:
        self.supports(harness, "rate_limit")
        call = conformance_call(4)
        harness.state.faults.fail(
            429, path=harness.create_path, exact=harness.create_exact, headers={"Retry-After": "7"}
        )
        result = await self.write(self.writer(harness), call)
        assert isinstance(result, RetryLater), result
        assert result.delay == pytest.approx(7.0), result
        assert harness.logged(call.key) == []
        assert isinstance(await self.write(self.writer(harness), call, attempt=2), LANDED)
        self.one(harness, call)

    async def test_429_without_retry_after_uses_the_crms_limit_headers(
        self, harness: Harness
    ) -> None:
        self.supports(harness, "rate_limit")
        call = conformance_call(5)
        harness.state.faults.fail(
            429, path=harness.create_path, exact=harness.create_exact, headers=harness.limit_headers
        )
        result = await self.write(self.writer(harness), call)
        assert isinstance(result, RetryLater), result
        assert result.delay is not None, result
        if harness.limit_delay is not None:
            assert result.delay == pytest.approx(harness.limit_delay, abs=1.0)
        else:
            assert result.delay > 0
        assert isinstance(await self.write(self.writer(harness), call, attempt=2), LANDED)
        self.one(harness, call)

    async def test_5xx_is_retried_with_backoff(self, harness: Harness) -> None:
        call = conformance_call(6)
        harness.state.faults.fail(503, path=harness.create_path, exact=harness.create_exact)
        writer = self.writer(harness)
        result = await self.write(writer, call)
        assert isinstance(result, RetryLater), result
        assert result.delay is None, result
        assert harness.logged(call.key) == []
        assert isinstance(await self.write(writer, call, attempt=2), LANDED)
        self.one(harness, call)

    # -- tokens ------------------------------------------------------------------------------

    async def test_expired_access_token_is_refreshed(self, harness: Harness) -> None:
        self.supports(harness, "token_refresh")
        writer = self.writer(harness)
        assert isinstance(await self.write(writer, conformance_call(7)), Created)
        harness.expire_tokens()
        call = conformance_call(8)
        assert isinstance(await self.write(writer, call), Created)
        self.one(harness, call)

    async def test_rotated_refresh_token_is_kept_in_the_vault(self, harness: Harness) -> None:
        self.supports(harness, "token_refresh")
        self.supports(harness, "token_rotation")
        writer = self.writer(harness)
        assert isinstance(await self.write(writer, conformance_call(9)), Created)
        harness.expire_tokens()
        assert isinstance(await self.write(writer, conformance_call(10)), Created)
        assert harness.vault.value is not None
        assert harness.vault.value == harness.current_refresh_token()
        # A writer built afresh (a restart) starts from the kept token.
        call = conformance_call(22)
        assert isinstance(await self.write(self.writer(harness), call), Created)
        self.one(harness, call)

    async def test_revoked_refresh_token_is_a_permanent_failure(self, harness: Harness) -> None:
        self.supports(harness, "token_refresh")
        harness.revoke_refresh_tokens()
        harness.expire_tokens()
        result = await self.write(self.writer(harness), conformance_call(11))
        assert isinstance(result, PermanentFailure), result
        assert "credential" in result.reason.lower() or "token" in result.reason.lower()
        self.clean(harness, result.reason)

    # -- refusals ----------------------------------------------------------------------------

    async def test_a_refused_call_is_parked_with_the_crms_reason(self, harness: Harness) -> None:
        call = conformance_call(12)
        harness.refuse(call.key)
        result = await self.write(self.writer(harness), call)
        assert isinstance(result, PermanentFailure), result
        assert len(result.reason) > 20, result.reason
        self.clean(harness, result.reason)
        assert harness.logged(call.key) == []

    async def test_a_mixed_batch_answer_gives_each_call_its_result(self, harness: Harness) -> None:
        self.supports(harness, "batch")
        calls = [conformance_call(n) for n in (13, 14, 15)]
        harness.refuse(calls[1].key)
        results = await self.writer(harness).write_batch([(c, WriteContext()) for c in calls])
        assert [type(r) for r in results] == [Created, PermanentFailure, Created], results
        assert len(harness.logged(calls[0].key)) == len(harness.logged(calls[2].key)) == 1
        assert harness.logged(calls[1].key) == []

    # -- contacts and owners -----------------------------------------------------------------

    async def test_a_contact_found_by_phone_is_associated(self, harness: Harness) -> None:
        self.supports(harness, "contacts")
        call = conformance_call(16)
        assert call.external_number
        contact = harness.add_contact("Carol Customer", call.external_number)
        assert isinstance(await self.write(self.writer(harness), call), Created)
        assert self.one(harness, call).contacts == (contact,)

    async def test_no_contact_create(self, harness: Harness) -> None:
        self.supports(harness, "contacts")
        call = conformance_call(17)
        contacts = replace(harness.baseline, no_contact=NoContactPolicy.CREATE)
        assert isinstance(await self.write(self.writer(harness, contacts), call), Created)
        assert len(self.one(harness, call).contacts) == 1

    async def test_no_contact_unassociated(self, harness: Harness) -> None:
        self.supports(harness, "contacts")
        self.supports(harness, "unassociated")
        call = conformance_call(18)
        assert isinstance(await self.write(self.writer(harness), call), Created)
        assert self.one(harness, call).contacts == ()

    async def test_no_contact_skip(self, harness: Harness) -> None:
        self.supports(harness, "contacts")
        call = conformance_call(19)
        contacts = replace(harness.baseline, no_contact=NoContactPolicy.SKIP)
        result = await self.write(self.writer(harness, contacts), call)
        assert isinstance(result, Skipped), result
        assert "no_contact" in result.reason, result
        assert harness.logged(call.key) == []

    async def test_owner_by_email(self, harness: Harness) -> None:
        self.supports(harness, "owners")
        call = conformance_call(20)
        assert call.user_email
        owner = harness.add_user(call.user_email)
        assert isinstance(await self.write(self.writer(harness), call), Created)
        assert self.one(harness, call).owner == owner

    async def test_owner_by_table(self, harness: Harness) -> None:
        self.supports(harness, "owners")
        call = conformance_call(21)
        harness.add_user(str(call.user_email))
        other = harness.add_user("bob@example.com")
        contacts = replace(harness.baseline, owners={str(call.extension_number): other})
        assert isinstance(await self.write(self.writer(harness, contacts), call), Created)
        assert self.one(harness, call).owner == other
