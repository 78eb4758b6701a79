"""A per-process cache of values loaded from the database, at most ``ttl`` seconds old.

Concurrent misses of one key share a single load: when an entry expires under load, every request
in flight would otherwise open its own transaction at once, and a burst of connections beyond the
pool is opened and closed again for each expiry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values by key, each reloaded once it is ``ttl`` seconds old; failed loads are not kept."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or the result of ``load`` (shared with concurrent callers)."""
        entry = self._values.get(key)
        if entry is not None and self._clock() - entry[0] < self._ttl:
            return entry[1]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = task
        # One caller giving up (a client that disconnected) must not cancel the others' load.
        return await asyncio.shield(task)

    def invalidate(self, key: K) -> None:
        """Forget a key; a load already in flight is not kept either."""
        self._values.pop(key, None)
        self._loading.pop(key, None)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        started = self._clock()
        try:
            value = await load()
        finally:
            mine = self._loading.get(key) is asyncio.current_task()
            if mine:
                del self._loading[key]
        if mine:  # not invalidated while loading
            self._values[key] = (started, value)
        return value
