"""The spool: durable, ordered, shared by processes under one drain lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stripemeter.client import Event
from stripemeter.client._spool import MemoryQueue, Spool


def events(n: int) -> list[Event]:
    """``n`` distinct events."""
    return [Event.create(metric="m", customer_ref="c", quantity=i) for i in range(n)]


class TestSpool:
    def test_events_come_back_in_order_with_their_keys(self, tmp_path: Path) -> None:
        """peek returns the oldest events first, as tracked."""
        spool = Spool(tmp_path / "s.sqlite3")
        tracked = events(5)
        spool.put(tracked[:2])
        spool.put(tracked[2:])
        assert [s.event for s in spool.peek(10)] == tracked
        assert [s.event for s in spool.peek(2)] == tracked[:2]
        spool.close()

    def test_removed_events_are_gone_for_every_reader(self, tmp_path: Path) -> None:
        """remove deletes by position; another handle on the file sees the same."""
        path = tmp_path / "s.sqlite3"
        first, second = Spool(path), Spool(path)
        first.put(events(3))
        seqs = [s.seq for s in second.peek(2)]
        second.remove(seqs)
        assert first.count() == 1
        first.close()
        second.close()

    def test_events_outlive_the_process_that_spooled_them(self, tmp_path: Path) -> None:
        """A child process spools and exits without any cleanup; the parent reads its events."""
        path = tmp_path / "s.sqlite3"
        code = (
            "import os, sys\n"
            "from stripemeter.client import Event\n"
            "from stripemeter.client._spool import Spool\n"
            "e = Event.create(metric='m', customer_ref='c', quantity=7, idempotency_key='k-1')\n"
            "Spool(sys.argv[1]).put([e])\n"
            "os._exit(0)\n"  # no close, no atexit, no flush of Python buffers
        )
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
        spool = Spool(path)
        (item,) = spool.peek(10)
        assert item.event.idempotency_key == "k-1"
        assert item.event.quantity == 7
        spool.close()

    def test_the_drain_lock_excludes_other_processes(self, tmp_path: Path) -> None:
        """While one process holds the lock another cannot take it; after unlock it can."""
        path = tmp_path / "s.sqlite3"
        code = (
            "import sys\n"
            "from stripemeter.client._spool import Spool\n"
            "print(Spool(sys.argv[1]).try_lock())\n"
        )

        def other_process_gets_lock() -> bool:
            done = subprocess.run([sys.executable, "-c", code, str(path)], check=True,
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
            return done.stdout.strip() == "True"

        spool = Spool(path)
        assert spool.try_lock()
        assert not other_process_gets_lock()
        spool.unlock()
        assert other_process_gets_lock()
        spool.close()

    def test_a_second_handle_in_the_same_process_is_excluded_too(self, tmp_path: Path) -> None:
        """Two clients of one spool in one process do not drain at once."""
        path = tmp_path / "s.sqlite3"
        first, second = Spool(path), Spool(path)
        assert first.try_lock()
        assert not second.try_lock()
        first.close()  # closing releases the lock
        assert second.try_lock()
        second.close()


class TestMemoryQueue:
    def test_it_behaves_like_the_spool(self) -> None:
        """Same order, removal and count, without a file."""
        queue = MemoryQueue()
        tracked = events(3)
        queue.put(tracked)
        assert [s.event for s in queue.peek(2)] == tracked[:2]
        queue.remove([s.seq for s in queue.peek(2)])
        assert queue.count() == 1
        assert queue.try_lock()
