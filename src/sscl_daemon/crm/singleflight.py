"""One CRM lookup per question at a time (writer.write_batch -> Resolver -> here).

A writer without a batch API (Pipedrive, Clio, Bullhorn) writes a batch's calls
concurrently (``batch.each``), so two calls with the same number used to search the CRM
twice, and every call of a cold batch read the user list: the cache only helps once a
lookup has finished. :class:`SingleFlight` makes the later askers wait for the lookup
already under way and take its answer; :class:`SharedCache` is that plus a bounded TTL
cache of the answers worth keeping (``crm/contacts.py``: contacts by number, the user
list; a writer's own per-contact reads may use it too).

An answer is shared exactly as the asker alone would have seen it: a failure value
(``RetryLater``/``PermanentFailure``) goes to each waiter and is not cached, so the next
asker tries again; an exception raised by the lookup is raised in each waiter. If the
asker running the lookup is cancelled, the waiters are not: one of them runs it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

from cachetools import TTLCache

from sscl_daemon.errors import SsclError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
# A cached answer may itself be None (no matter for this contact).
_MISSING = object()


class _Abandoned(SsclError):
    """The asker running the lookup was cancelled; a waiter takes over."""


class SingleFlight(Generic[K, V]):
    """Concurrent ``run(key, lookup)`` calls for one key share a single ``lookup()``."""

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Future[V]] = {}
        # Askers answered by another's lookup, and those waiting now (diagnostics, tests).
        self.shared = 0
        self.waiting = 0

    async def run(self, key: K, lookup: Callable[[], Awaitable[V]]) -> V:
        while (flight := self._flights.get(key)) is not None:
            self.waiting += 1
            try:
                # shield: a waiter's cancellation must not cancel the others' answer.
                answer = await asyncio.shield(flight)
            except _Abandoned:
                continue
            finally:
                self.waiting -= 1
            self.shared += 1
            return answer
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            answer = await lookup()
        except asyncio.CancelledError:
            _settle(flight, _Abandoned())
            raise
        except BaseException as exc:
            _settle(flight, exc)
            raise
        finally:
            del self._flights[key]
        flight.set_result(answer)
        return answer

    def __len__(self) -> int:
        """Lookups under way."""
        return len(self._flights)


def _settle(flight: asyncio.Future[V], exc: BaseException) -> None:
    flight.set_exception(exc)
    # Retrieved here, so a flight nobody waited for is not reported as a lost exception.
    flight.exception()


class SharedCache(Generic[K, V]):
    """A bounded TTL cache whose misses go through a :class:`SingleFlight`.

    ``keep`` says which answers are cached (not failures); an answer that is not kept
    still reaches every asker that waited for it.
    """

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        keep: Callable[[V], bool],
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache: TTLCache[K, V] = TTLCache(maxsize=max(maxsize, 1), ttl=ttl, timer=timer)
        self._keep = keep
        self._flights: SingleFlight[K, V] = SingleFlight()
        self.hits = 0
        self.misses = 0

    @property
    def shared(self) -> int:
        """Askers that waited for another's lookup instead of making their own."""
        return self._flights.shared

    async def get(self, key: K, lookup: Callable[[], Awaitable[V]]) -> V:
        cached = self._cache.get(key, _MISSING)
        if cached is not _MISSING:
            self.hits += 1
            return cast(V, cached)
        return await self._flights.run(key, lambda: self._fetch(key, lookup))

    async def _fetch(self, key: K, lookup: Callable[[], Awaitable[V]]) -> V:
        # Answered while this asker waited for a flight that was abandoned.
        cached = self._cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cast(V, cached)
        self.misses += 1
        answer = await lookup()
        if self._keep(answer):
            self._cache[key] = answer
        return answer

    def peek(self, key: K) -> V | None:
        """The cached answer, if any (no lookup, not counted)."""
        return self._cache.get(key)

    def put(self, key: K, value: V) -> None:
        self._cache[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)
