"""The per-process TTL cache: one load per key at a time, nothing stale kept."""

from __future__ import annotations

import asyncio

import pytest

from stripemeter.services.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_misses_share_one_load() -> None:
    cache: TtlCache[str, int] = TtlCache(5.0)
    loads = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        await release.wait()
        return 42

    waiting = [asyncio.create_task(cache.get("t", load)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [42] * 20
    assert loads == 1


async def test_a_value_is_reloaded_once_it_is_ttl_old() -> None:
    clock = Clock()
    cache: TtlCache[str, float] = TtlCache(5.0, clock=clock)

    async def load() -> float:
        return clock.now

    assert await cache.get("t", load) == 0.0
    clock.now = 4.9
    assert await cache.get("t", load) == 0.0
    clock.now = 5.0
    assert await cache.get("t", load) == 5.0


async def test_a_failed_load_is_not_kept() -> None:
    cache: TtlCache[str, int] = TtlCache(5.0)
    attempts = 0

    async def load() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("database unavailable")
        return 7

    with pytest.raises(RuntimeError):
        await cache.get("t", load)
    assert await cache.get("t", load) == 7


async def test_a_load_in_flight_when_invalidated_is_not_kept() -> None:
    cache: TtlCache[str, str] = TtlCache(5.0)
    release = asyncio.Event()

    async def old() -> str:
        await release.wait()
        return "before the change"

    async def new() -> str:
        return "after the change"

    first = asyncio.create_task(cache.get("t", old))
    await asyncio.sleep(0)
    cache.invalidate("t")
    release.set()
    assert await first == "before the change"
    assert await cache.get("t", new) == "after the change"


async def test_one_caller_cancelled_does_not_cancel_the_shared_load() -> None:
    cache: TtlCache[str, int] = TtlCache(5.0)
    release = asyncio.Event()

    async def load() -> int:
        await release.wait()
        return 1

    impatient = asyncio.create_task(cache.get("t", load))
    patient = asyncio.create_task(cache.get("t", load))
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient == 1
