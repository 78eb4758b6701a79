"""The fake's own clock: wall time by default, frozen or shifted on demand by tests."""

from __future__ import annotations

import threading
import time


class FakeClock:
    """Unix-seconds clock that follows wall time plus an offset, or stays frozen."""

    def __init__(self, *, frozen_at: int | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen_at = frozen_at
        self._offset = 0

    def now(self) -> int:
        """Return the current time in whole Unix seconds."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return int(time.time()) + self._offset

    @property
    def frozen(self) -> bool:
        """Whether the clock stands still until moved."""
        return self._frozen_at is not None

    def set(self, timestamp: int, *, freeze: bool = True) -> None:
        """Move the clock to ``timestamp``; keep it there when ``freeze``, else let it run."""
        with self._lock:
            if freeze:
                self._frozen_at = timestamp
            else:
                self._frozen_at = None
                self._offset = timestamp - int(time.time())

    def advance(self, seconds: int) -> None:
        """Move the clock forward (or back, if negative) by ``seconds``."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds
