"""One background task a service owns: started once, cancelled and awaited on stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
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
