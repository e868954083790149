"""Shared fixtures: a real PostgreSQL for every test that asks for one.

``pg_dsn`` is a fresh, migrated database per test (copied from a template),
``empty_pg_dsn`` a fresh one without schema, ``store`` an open
:class:`sscl_daemon.store.Store` on ``pg_dsn``. The server is
``$SSCL_TEST_DSN`` or one embedded server for the whole session, started only
if some test needs it. Without a server the tests that need one fail with a
single message saying what is missing; they never skip.

Every test gets exactly one tier marker, assigned here at collection (never
written on a test): ``e2e`` when it runs processes, daemons or a browser (the
node-id prefixes in :data:`E2E`, or a test marked ``slow``), ``integration``
when it needs PostgreSQL (it asks for ``pg_server``, directly or through
``pg_dsn``/``empty_pg_dsn``/``store``, or starts a server itself: the prefixes
in :data:`INTEGRATION`), ``unit`` otherwise. ``pytest -m unit`` is the quick
tier; the README's Development section says how long each tier takes.

``make test`` runs the tests on several pytest-xdist workers (``-n 4 --dist
loadgroup``: most tests wait on sockets, processes and timers, not on the two
cores). Each worker is its own pytest session, so each has its own
``pg_server`` (its own template and database names, or its own embedded
server), its own ``tmp_path`` and ephemeral ports. On a worker the tests are
ordered longest tier first (see :func:`start_order`) so that the few long
e2e tests do not start last; :data:`ONE_AFTER_ANOTHER` names the tests that
must not run beside each other (:class:`OneAfterAnother` schedules them).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadGroupScheduling
from xdist.scheduler.protocol import Scheduling

from sscl_daemon.config import StoreSettings
from sscl_daemon.store import Store
from sscl_daemon.store.testing import PostgresForTests, PostgresUnavailable

# Node-id prefixes (a folder, a module, or one test) of tests that run
# processes, whole daemons or a browser. A test module that only sometimes
# starts a process names its test here rather than moving to this list whole.
E2E = (
    "tests/soak/",
    "tests/scale/",
    "tests/install/test_unit_run.py",
    "tests/install/test_oauth_command.py",
    "tests/console/test_browser.py",
    "tests/daemon/test_e2e_process.py",
    "tests/daemon/test_demo.py",
    "tests/daemon/test_private_state.py",
    "tests/crm/test_standins_demo.py",
    "tests/store/test_migrate_command.py",
    "tests/daemon/test_commands.py::test_commands_attach_to_the_running_daemons_embedded_server",
    "tests/ringcentral/test_backfill.py::test_backfill_while_the_daemon_runs_uses_its_embedded",
    "tests/daemon/test_store_outage.py",
    "tests/daemon/test_wedge_",
    "tests/daemon/test_systemd_unit.py",
    "tests/simulator/test_sdk.py",
    "tests/simulator/test_platform_simulate_command.py",
    "tests/calls/test_replay.py::test_replay_as_a_real_process",
    "tests/crm/test_thirdparty_writer.py::test_the_plugin_is_found_and_configured_by_type",
    "tests/foundation/test_cli.py::test_version_through_the_console_script_module",
    "tests/store/test_errors.py::test_migrate_command_reports_an_unreachable_store",
    "tests/store/test_leases.py::test_sigkilled_holder_process_is_replaced_within_the_bound",
)

# Node-id prefixes of tests that need PostgreSQL without asking for the
# ``pg_server`` fixture (they start or probe a server themselves).
INTEGRATION = (
    "tests/store/test_embedded.py",
    "tests/store/test_embedded_private.py",
    "tests/store/test_fixtures.py",
    "tests/store/test_errors.py",
)


# Node-id prefixes of tests that run one after another on one xdist worker (one work
# unit of :class:`OneAfterAnother`), never beside each other. These run several daemons
# under steady traffic and time what they see (leases, balance, calls within a bound);
# two of them side by side starve each other on two cores (a daemon seen as gone hands
# its accounts over again, the demo logs nothing in its first half minute). Together
# they take about as long as a quarter of the suite, so one worker carries them.
ONE_AFTER_ANOTHER = {
    "tests/soak/": "heavy",
    "tests/scale/": "heavy",
    "tests/daemon/test_demo.py": "heavy",
}

# Tiers in the order their tests start on an xdist worker: the longest first.
START_ORDER = ("e2e", "integration", "unit")


def tier(nodeid: str, fixtures: list[str], slow: bool) -> str:
    """The tier marker of one test, from its node id, fixtures and ``slow`` mark."""
    if slow or nodeid.startswith(E2E):
        return "e2e"
    if "pg_server" in fixtures or nodeid.startswith(INTEGRATION):
        return "integration"
    return "unit"


def start_order(item: pytest.Item) -> tuple[int, int]:
    """Sort key: slow e2e tests first, then the other e2e, integration, unit tests."""
    rank = next(i for i, name in enumerate(START_ORDER) if item.get_closest_marker(name))
    return rank, 0 if item.get_closest_marker("slow") else 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = list(getattr(item, "fixturenames", ()))
        slow = item.get_closest_marker("slow") is not None
        item.add_marker(tier(item.nodeid, fixtures, slow))
    # Only on an xdist worker (every worker sorts alike, a stable sort): a plain run keeps
    # each module's tests together, as its module-scoped fixtures expect.
    if hasattr(config, "workerinput"):
        items.sort(key=start_order)


class OneAfterAnother(LoadGroupScheduling):
    """``--dist loadgroup`` with each :data:`ONE_AFTER_ANOTHER` group as one work unit.

    Not ``xdist_group`` marks: xdist 3.8 passes them on by rewriting node ids, which
    pytest 9.2 ignores (pytest-xdist issue 1386), so the marks group nothing there.
    """

    def _split_scope(self, nodeid: str) -> str:
        for prefix, group in ONE_AFTER_ANOTHER.items():
            if nodeid.startswith(prefix):
                return group
        return super()._split_scope(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> Scheduling | None:
    if config.getvalue("dist") != "loadgroup":
        return None  # xdist's own scheduler for the mode asked for
    return OneAfterAnother(config, log)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresForTests]:
    try:
        databases = PostgresForTests.start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
async def pg_dsn(pg_server: PostgresForTests) -> AsyncIterator[str]:
    dsn = await pg_server.create_database()
    try:
        yield dsn
    finally:
        await pg_server.drop_database(dsn)


@pytest.fixture
async def empty_pg_dsn(pg_server: PostgresForTests) -> AsyncIterator[str]:
    """A fresh database without any schema (for migration tests)."""
    dsn = await pg_server.create_database(migrated=False)
    try:
        yield dsn
    finally:
        await pg_server.drop_database(dsn)


@pytest.fixture
async def store(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(StoreSettings(dsn=pg_dsn, pool_max_size=4), tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def embedded_state_dir() -> Iterator[Path]:
    """A state directory for tests that start the embedded server themselves.

    Not under pytest's ``tmp_path``: when tests run as root the server runs as
    ``nobody``, and every new pytest session on the machine resets
    ``/tmp/pytest-of-root`` to mode 0700, which would lock it out mid-test.
    """
    path = Path(tempfile.mkdtemp(prefix="sscl-state-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
