"""A store blip within the lease's TTL keeps the account; one past the TTL gives it up (H16).

The lease loop (:mod:`sscl_daemon.daemon.lease`) gave the account up at the first failed
renewal, although the lease was still valid for its TTL: a killed and restarted postmaster
stopped every account and its WebSocket stream. The store here is real PostgreSQL reached
through a TCP relay that the test cuts: every connection through it is closed and new ones
are refused until the relay is mended (what a restarting server looks like to the daemon).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from tests.daemon.helpers import wait_until

from sscl_daemon.config import StoreSettings
from sscl_daemon.daemon.lease import LeaseLoop
from sscl_daemon.store import Lease, Store

TTL = 3.0
POLL = 0.1


class Relay:
    """Forwards TCP connections to PostgreSQL (at a TCP address, or at a Unix socket when
    ``socket`` is given: the embedded test server); :meth:`cut` closes them and refuses new ones."""

    def __init__(self, host: str, port: int, socket: str | None = None) -> None:
        self._target = (host, port)
        self._socket = socket
        self._open = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.close()
            return
        if self._socket is not None:
            up_reader, up_writer = await asyncio.open_unix_connection(self._socket)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self._open = False
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def mend(self) -> None:
        self._open = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


class Held:
    """A runner that only records whether it was aborted (the account given up)."""

    def __init__(self) -> None:
        self.lost = asyncio.Event()
        self.aborted = False

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def abort(self) -> None:
        self.aborted = True


@contextlib.asynccontextmanager
async def relayed_store(pg_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[Store, Relay]]:
    parts = urlsplit(pg_dsn)
    query = dict(parse_qsl(parts.query))
    socket_dir = query.pop("host", None)
    if socket_dir is not None:  # the embedded server: a Unix socket directory and port
        port = int(query.pop("port", "5432"))
        relay = Relay("", port, f"{socket_dir}/.s.PGSQL.{port}")
    else:
        assert parts.hostname is not None
        assert parts.port is not None
        relay = Relay(parts.hostname, parts.port)
    await relay.start()
    user = f"{parts.username}@" if parts.username else ""
    dsn = urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{relay.port}", query=urlencode(query)))
    store = await Store.open(StoreSettings(dsn=dsn, pool_max_size=2), tmp_path)
    try:
        yield store, relay
    finally:
        relay.mend()
        await store.close()
        await relay.close()


async def hold(store: Store) -> tuple[LeaseLoop, Held, asyncio.Task[None], Lease]:
    runner = Held()
    leases: list[Lease] = []

    def make(lease: Lease, _may_write: object) -> Held:
        leases.append(lease)
        return runner

    loop = LeaseLoop(store, "acme", "a:1", make, on_change=lambda: None, ttl=TTL, poll=POLL)
    task = asyncio.create_task(loop.run())
    await wait_until(lambda: loop.serving, 10, "the account held and started")
    return loop, runner, task, leases[0]


@pytest.mark.timeout(60)
async def test_a_renewal_failing_within_the_ttl_keeps_the_account(
    pg_dsn: str, store: Store, tmp_path: Path
) -> None:
    async with relayed_store(pg_dsn, tmp_path / "relayed") as (relayed, relay):
        loop, runner, task, lease = await hold(relayed)
        try:
            relay.cut()
            [before] = await store.lease_holders("acme")
            await wait_until(lambda: loop.renewal_failures >= 1, TTL * 2, "a renewal to fail")
            # Held, but no CRM request while undecided: the lock may be gone already.
            assert loop.held
            assert not loop.may_write()
            relay.mend()

            async def renewed_again() -> bool:
                [info] = await store.lease_holders("acme")
                return info.expires_at > before.expires_at

            await wait_until(renewed_again, TTL, "a renewal to succeed again")
            await wait_until(loop.may_write, TTL, "CRM requests allowed again")
            [info] = await store.lease_holders("acme")
            # Taken back with its own token, not lost and acquired again.
            assert (info.holder, info.token, info.held) == ("a:1", lease.token, True)
            assert loop.serving
            assert not runner.aborted
            assert not runner.lost.is_set()
        finally:
            loop.stop()
            await asyncio.wait_for(task, 10)


@pytest.mark.timeout(60)
async def test_a_store_out_past_the_ttl_gives_the_account_up(pg_dsn: str, tmp_path: Path) -> None:
    async with relayed_store(pg_dsn, tmp_path / "relayed") as (relayed, relay):
        loop, runner, task, _ = await hold(relayed)
        try:
            relay.cut()
            await wait_until(lambda: runner.aborted, TTL * 3, "the account given up")
            assert loop.renewal_failures >= 1
            assert not loop.may_write()
            assert not loop.serving
        finally:
            relay.mend()
            loop.stop()
            await asyncio.wait_for(task, 10)
