"""Running ``stripemeter worker`` processes for tests, and waiting for the write log to settle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text

from tests.stripe_sync.conftest import LIVE_KEY

STRIPEMETER = str(Path(sys.executable).with_name("stripemeter"))


def start_worker(
    database_url: str,
    fake_url: str,
    *,
    crash_at: str | None = None,
    interval: float = 0.2,
    batch_size: int | None = None,
) -> subprocess.Popen[bytes]:
    """A worker process pushing to the fake Stripe; ``crash_at`` SIGKILLs it at that step."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "DATABASE_URL"))}
    env |= {
        "DATABASE_URL": database_url,
        "STRIPE_API_BASE": fake_url,
        "STRIPE_SECRET_KEY": LIVE_KEY,
        "STRIPEMETER_PUSH_INTERVAL_SECONDS": str(interval),
        "STRIPEMETER_PUSH_LEASE_SECONDS": "1",
        "STRIPEMETER_STRIPE_TIMEOUT_SECONDS": "1",
        "STRIPEMETER_LOG_LEVEL": "WARNING",
    }
    if crash_at:
        env["STRIPEMETER_TEST_CRASH_AT"] = crash_at
    if batch_size is not None:
        env["STRIPEMETER_PUSH_BATCH_SIZE"] = str(batch_size)
    return subprocess.Popen(
        [STRIPEMETER, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait (SIGKILL if it hangs)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _sync_url(database_url: str) -> str:
    return database_url.replace("postgresql://", "postgresql+psycopg://", 1)


def log_state(database_url: str) -> list[tuple[str, Decimal, str | None, bool]]:
    """(status, pushed_total, pending_to, busy) of every write-log row (busy: flagged or leased)."""
    engine = create_engine(_sync_url(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT status, pushed_total, pending_to, dirty OR lease_owner IS NOT NULL"
                    " FROM push_log ORDER BY id"
                )
            ).all()
    finally:
        engine.dispose()
    return [(r[0], Decimal(str(r[1])), r[2], bool(r[3])) for r in rows]


def wait_idle(database_url: str, expected_rows: int, timeout: float = 20.0) -> None:
    """Wait until every row is confirmed with nothing pending or flagged."""
    deadline = time.monotonic() + timeout
    state = log_state(database_url)
    while time.monotonic() < deadline:
        state = log_state(database_url)
        if len(state) >= expected_rows and all(
            s == "ok" and p is None and not d for s, _, p, d in state
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"write log never settled: {state}")


__all__ = ["psycopg", "start_worker", "stop_worker", "wait_idle"]
