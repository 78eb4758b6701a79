"""Group commit: concurrent small ingest requests share one transaction.

Each request still gets its own per-event results, and is answered only after the shared commit.
Hot customers serialise on their counter rows, so one transaction for many requests is what lifts
single-event throughput on both databases.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

DEFAULT_MAX_GROUP = 2000  # events per shared transaction


class _Pending(Generic[Item, Result]):
    __slots__ = ("future", "items")

    def __init__(self, items: Sequence[Item], future: asyncio.Future[list[Result]]) -> None:
        self.items = items
        self.future = future


class GroupCommitter(Generic[Item, Result]):
    """Feeds queued batches to ``commit`` in groups, from ``writers`` concurrent tasks."""

    def __init__(
        self,
        commit: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        max_group: int = DEFAULT_MAX_GROUP,
        writers: int = 1,
    ) -> None:
        self._commit = commit
        self._max_group = max_group
        self._writers = writers
        self._queue: asyncio.Queue[_Pending[Item, Result]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the writer tasks on the running loop."""
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self._writers)]

    async def stop(self) -> None:
        """Finish everything queued, then stop the writers."""
        await self._queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Queue a batch and wait until it is committed (or failed)."""
        if not self._tasks:
            return await self._commit(list(items))
        pending: _Pending[Item, Result] = _Pending(
            items, asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(pending)
        return await pending.future

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            size = len(group[0].items)
            while size < self._max_group and not self._queue.empty():
                nxt = self._queue.get_nowait()
                group.append(nxt)
                size += len(nxt.items)
            try:
                await self._commit_group(group)
            finally:
                for _ in group:
                    self._queue.task_done()

    async def _commit_group(self, group: list[_Pending[Item, Result]]) -> None:
        try:
            results = await self._commit([item for pending in group for item in pending.items])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0], exc)
                return
            # One request's bad luck must not fail its neighbours: retry each on its own.
            for pending in group:
                try:
                    _settle(pending, await self._commit(list(pending.items)))
                except Exception as single_exc:
                    _settle(pending, single_exc)
            return
        offset = 0
        for pending in group:
            count = len(pending.items)
            _settle(pending, results[offset : offset + count])
            offset += count


def _settle(pending: _Pending[Item, Result], outcome: list[Result] | BaseException) -> None:
    if pending.future.done():  # the requester went away (client disconnected)
        return
    if isinstance(outcome, BaseException):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)
