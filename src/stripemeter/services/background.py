"""Background work a service owns: a task started once and cancelled on stop, and a periodic loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


class BackgroundTask:
    """Holds a service's loop task so every loop starts, stops and reports liveness alike."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``loop()`` on the running event loop."""
        self._task = asyncio.create_task(loop(), name=self._name)

    async def stop(self) -> None:
        """Cancel the task and wait until it has finished."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        """Whether the task is alive."""
        return self._task is not None and not self._task.done()


class PeriodicLoop:
    """Runs ``step`` now, then every ``interval()`` seconds or sooner when woken, until stopped.

    A failing step is reported through ``on_failure`` (called inside the ``except``, so it may log
    the traceback) and the loop goes on: one bad round must not end a service's schedule.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        *,
        interval: Callable[[], float],
        on_failure: Callable[[], None],
    ) -> None:
        self._step = step
        self._interval = interval
        self._on_failure = on_failure
        self._task = BackgroundTask(name)
        self._wake = asyncio.Event()
        self.stopping = False

    def start(self) -> None:
        """Run the loop in the background."""
        self.stopping = False
        self._task.start(self._loop)

    async def stop(self) -> None:
        """Let the current step see ``stopping``, then cancel the loop and wait for it."""
        self.stopping = True
        self._wake.set()
        await self._task.stop()

    @property
    def running(self) -> bool:
        """Whether the loop is alive."""
        return self._task.running

    def wake(self) -> None:
        """Start the next step now."""
        self._wake.set()

    async def _loop(self) -> None:
        while not self.stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive anything one step does
                self._on_failure()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval())
