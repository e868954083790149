"""The tasks of one account's runner: supervised ones by name, background ones in a set.

Where it sits: :class:`~sscl_daemon.daemon.accounts.AccountRunner` starts every long-lived
task of its account here (the subscription, the committer, a dispatcher per writer, the
loops), each restarted with backoff by :func:`~sscl_daemon.daemon.supervise.supervise`,
and spawns the one-off ones (a gap's reads, an on-demand directory load) as background
tasks. A refused fenced write is not a crash to retry: it sets the runner's ``lost`` event,
which the lease loop (:mod:`.lease`) answers by aborting the runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sscl_daemon.daemon.supervise import Backoff, FatalError, supervise
from sscl_daemon.logging import get_logger
from sscl_daemon.store import LeaseLostError

log = get_logger(__name__)


async def cancel_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them to end (bounded: a stuck task is left behind)."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5.0)


class AccountTasks:
    """One account's tasks; a fatal error goes to ``on_fatal``, a lost lease sets ``lost``."""

    def __init__(
        self, account: str, *, on_fatal: Callable[[str], None], lost: asyncio.Event
    ) -> None:
        self._account = account
        self._on_fatal = on_fatal
        self._lost = lost
        # Supervised, by the name a stop picks them by (accounts.STREAMING, "dispatcher:*").
        self.supervised: dict[str, asyncio.Task[None]] = {}
        self.background: set[asyncio.Task[None]] = set()

    def supervise(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        fatal: tuple[type[BaseException], ...] = (),
    ) -> None:
        task_name = f"{self._account}:{name}"
        coro = supervise(task_name, self._fenced(run), backoff=Backoff(), fatal=fatal)
        task = asyncio.create_task(coro, name=task_name)
        self.supervised[name] = task
        task.add_done_callback(self._task_done)

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=f"{self._account}:{name}")
        self.background.add(task)
        task.add_done_callback(self._background_done)

    def _fenced(self, run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """A refused fenced write is not a crash to retry: the account belongs to another now."""

        async def guarded() -> None:
            try:
                await run()
            except LeaseLostError as exc:
                log.warning(
                    "daemon.account.fenced_out",
                    account=self._account,
                    error=str(exc),
                    hint="a fenced write was refused: the lease is lost; stopping the account",
                )
                self._lost.set()
                # Parked until the lease loop cancels the runner.
                await asyncio.Event().wait()

        return guarded

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self.background.discard(task)
        self._task_done(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, FatalError):
            self._on_fatal(str(exc))
        elif isinstance(exc, LeaseLostError):
            self._lost.set()
        elif exc is not None:
            log.error(
                "daemon.task.failed", account=self._account, task=task.get_name(), error=repr(exc)
            )
