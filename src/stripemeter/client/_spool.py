"""Where tracked events wait until the server has answered for them: on disk, or in memory.

``Spool`` is a SQLite file (stdlib ``sqlite3``, WAL, ``synchronous=FULL`` so every commit is
fsync'd). An event is written there by ``track`` before anything is sent, and deleted only once the
server has answered for it (accepted, duplicate, conflict, held or rejected). Events tracked while
the server is down therefore survive the process; the next client of the same API URL and tenant
finds the file and sends them, with the idempotency keys they were given, so they count once.

Several processes may share one spool: SQLite serialises the writes, and a drain (read a batch,
send it, delete what was answered) holds an exclusive ``flock`` on a sibling ``.lock`` file, so two
processes never send the same events at the same time. ``MemoryQueue`` is the same interface
without the disk, used when the spool is turned off.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stripemeter.client._models import Event, meta_default

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's own locking is all there is
    fcntl = None  # type: ignore[assignment]

SPOOL_BUSY_TIMEOUT = 30.0  # seconds SQLite waits for another process's write lock
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spooled_events_v1 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL,
    body TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    """An event waiting to be sent, with its position in the store."""

    seq: int
    event: Event


class EventStore(Protocol):
    """What the clients need from a place that keeps events until they are answered."""

    def put(self, events: Sequence[Event]) -> None:
        """Keep these events (durably, for a spool) before returning."""

    def peek(self, limit: int) -> list[SpooledEvent]:
        """The oldest ``limit`` events, left in place."""

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget events that the server answered for."""

    def count(self) -> int:
        """How many events wait."""

    def try_lock(self) -> bool:
        """Take the drain lock shared with other processes, without waiting."""

    def unlock(self) -> None:
        """Release the drain lock."""

    def close(self) -> None:
        """Release files; the events stay."""


def encode_event(event: Event) -> str:
    """The spool's text form of an event: its wire JSON."""
    return json.dumps(event.to_wire(), default=meta_default, separators=(",", ":"))


class Spool:
    """Events on disk in a SQLite file, shared safely by threads and processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._mutex = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=SPOOL_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit
        self._conn.execute(_SCHEMA)
        lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._locked = False

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r})"

    def put(self, events: Sequence[Event]) -> None:
        """Append events and fsync them, in one transaction."""
        rows = [(e.idempotency_key, encode_event(e)) for e in events]
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO spooled_events_v1 (idempotency_key, body) VALUES (?, ?)", rows
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def peek(self, limit: int) -> list[SpooledEvent]:
        """The oldest events, in the order they were tracked."""
        with self._mutex:
            rows = self._conn.execute(
                "SELECT seq, body FROM spooled_events_v1 ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [SpooledEvent(seq, Event.from_wire(json.loads(body))) for seq, body in rows]

    def remove(self, seqs: Iterable[int]) -> None:
        """Delete answered events, in one transaction."""
        params = [(seq,) for seq in seqs]
        if not params:
            return
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("DELETE FROM spooled_events_v1 WHERE seq = ?", params)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def count(self) -> int:
        """How many events wait in the file (from every process)."""
        with self._mutex:
            (n,) = self._conn.execute("SELECT count(*) FROM spooled_events_v1").fetchone()
        return int(n)

    def try_lock(self) -> bool:
        """Take the exclusive drain lock on ``<spool>.lock`` if no other process holds it."""
        with self._mutex:
            if self._locked:
                return True
            if fcntl is None or self._lock_fd is None:  # pragma: no cover - not POSIX
                self._locked = True
                return True
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            self._locked = True
            return True

    def unlock(self) -> None:
        """Release the drain lock."""
        with self._mutex:
            if self._locked and fcntl is not None and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._locked = False

    def close(self) -> None:
        """Close the database and the lock file (which releases the lock)."""
        with self._mutex:
            self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self._locked = False


class MemoryQueue:
    """Events in memory only: lost if the process ends before they are sent."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._events: dict[int, Event] = {}
        self._seq = itertools.count(1)

    def __repr__(self) -> str:
        return f"MemoryQueue(<{self.count()} events>)"

    def put(self, events: Sequence[Event]) -> None:
        """Queue events."""
        with self._mutex:
            for event in events:
                self._events[next(self._seq)] = event

    def peek(self, limit: int) -> list[SpooledEvent]:
        """The oldest events (dicts keep insertion order)."""
        with self._mutex:
            items = itertools.islice(self._events.items(), limit)
            return [SpooledEvent(seq, event) for seq, event in items]

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget answered events."""
        with self._mutex:
            for seq in seqs:
                self._events.pop(seq, None)

    def count(self) -> int:
        """How many events wait."""
        with self._mutex:
            return len(self._events)

    def try_lock(self) -> bool:
        """No other process can see this queue."""
        return True

    def unlock(self) -> None:
        """Nothing to release."""

    def close(self) -> None:
        """Nothing to close; unsent events are dropped with the object."""


def open_store(path: Path | None) -> EventStore:
    """A ``Spool`` at ``path``, or a ``MemoryQueue`` when ``path`` is None."""
    if path is None:
        return MemoryQueue()
    return Spool(path)
