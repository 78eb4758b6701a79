"""Helpers for acceptance tests: databases, the real ``stripemeter`` CLI and server, ledger checks.

Everything here drives real OS processes over real HTTP and reads the database directly, so a test
built on it sees what an operator would see after a crash or a restart.

- ``fresh_database(backend, tmp_path)``: an empty database (SQLite file or a new PostgreSQL database,
  dropped afterwards); ``migrate`` and ``create_key`` run the CLI against it.
- ``ServerProcess`` / ``running_server``: ``stripemeter serve`` on a free port, ready when
  ``/health/ready`` answers 200; ``kill()`` is SIGKILL, ``stop()`` a graceful SIGTERM.
- ``read_ledger``, ``stored_counters`` and ``recompute_counters``: the ledger and counters as stored,
  and the counters recomputed here from the ledger alone (sum, max, last, count, watermark).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa

from stripemeter.store.tables import counters, events

PG_ADMIN_URL = os.environ.get(
    "STRIPEMETER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STRIPEMETER = str(Path(sys.executable).with_name("stripemeter"))
CLI_TIMEOUT = 120.0
READY_TIMEOUT = 60.0

CounterKey = tuple[str, str, datetime]  # (metric, customer_ref, period_start)


# ---------------------------------------------------------------------------------------------
# Databases


def pg_url(dbname: str) -> str:
    """A URL for another database on the test PostgreSQL server."""
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


@contextmanager
def postgres_database(prefix: str = "sm_acc") -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped (even with open connections) afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database on ``backend`` ("sqlite" or "postgres"), not migrated yet."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'stripemeter.db'}"
        return
    with postgres_database() as url:
        yield url


def sync_url(database_url: str) -> str:
    """The URL for a synchronous SQLAlchemy engine (psycopg for PostgreSQL)."""
    if database_url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + database_url.split("://", 1)[1]
    return database_url


@contextmanager
def sync_engine(database_url: str) -> Iterator[sa.Engine]:
    """A short-lived synchronous engine on the database."""
    engine = sa.create_engine(sync_url(database_url), poolclass=sa.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# The CLI


def environment(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: ours without StripeMeter/Stripe settings, plus these."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("STRIPEMETER_", "STRIPE_")) and name != "DATABASE_URL"
    }
    env.update(
        DATABASE_URL=database_url,
        STRIPEMETER_LOG_LEVEL="WARNING",
        STRIPEMETER_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def cli(
    *args: str, database_url: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``stripemeter ARGS`` to completion; fails the test with its output if it fails."""
    done = subprocess.run(
        [STRIPEMETER, *args],
        cwd=cwd,
        env=environment(database_url, env),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"stripemeter {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    )
    return done


def migrate(database_url: str, cwd: Path) -> None:
    """``stripemeter migrate``."""
    cli("migrate", database_url=database_url, cwd=cwd)


def create_key(database_url: str, cwd: Path, tenant: str, scopes: str = "admin") -> str:
    """``stripemeter keys create --json``: the new key's secret."""
    done = cli(
        "keys", "create", "--tenant", tenant, "--scopes", scopes, "--json",
        database_url=database_url, cwd=cwd,
    )  # fmt: skip
    return str(json.loads(done.stdout)["key"])


# ---------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    """A TCP port that was free a moment ago on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``stripemeter serve`` as a child process; its output goes to a log file in ``cwd``."""

    def __init__(
        self,
        database_url: str,
        cwd: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.database_url = database_url
        self.cwd = cwd
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"serve-{self.port}-{secrets.token_hex(3)}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [STRIPEMETER, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=cwd,
            env=environment(database_url, env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        """Everything the server printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Block until ``/health/ready`` answers 200; fails if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"stripemeter serve exited with {self.process.returncode}:\n{self.log()}"
                    )
                try:
                    if http.get("/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"stripemeter serve not ready after {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what was committed is all that survives."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait for a graceful exit (SIGKILL if it does not come)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._log.close()


@contextmanager
def running_server(
    database_url: str,
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """A ready ``stripemeter serve`` on ``database_url``; yields its base URL, stops it on exit."""
    with serving(database_url, cwd, env=env, port=port) as server:
        yield server.url


@contextmanager
def serving(
    database_url: str,
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[ServerProcess]:
    """Like ``running_server`` but yields the process, for tests that kill or restart it."""
    server = ServerProcess(database_url, cwd, env=env, port=port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextmanager
def serving_many(
    database_url: str, cwd: Path, count: int, *, env: Mapping[str, str] | None = None
) -> Iterator[list[ServerProcess]]:
    """``count`` servers on one database, started in parallel; all ready when yielded."""
    servers: list[ServerProcess] = []
    try:
        for _ in range(count):
            servers.append(ServerProcess(database_url, cwd, env=env))
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


# ---------------------------------------------------------------------------------------------
# The ledger and the counters


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One stored event, as the ledger holds it."""

    id: int
    idempotency_key: str
    metric: str
    customer_ref: str
    quantity: Decimal
    ts: datetime
    period_start: datetime
    status: str


def read_ledger(database_url: str, tenant: str) -> list[LedgerRow]:
    """Every event of a tenant, in id order."""
    query = (
        sa.select(
            events.c.id, events.c.idempotency_key, events.c.metric, events.c.customer_ref,
            events.c.quantity, events.c.ts, events.c.period_start, events.c.status,
        )
        .where(events.c.tenant_id == tenant)
        .order_by(events.c.id)
    )  # fmt: skip
    with sync_engine(database_url) as engine, engine.connect() as conn:
        return [LedgerRow(*row) for row in conn.execute(query)]


def stored_counters(database_url: str, tenant: str) -> dict[CounterKey, dict[str, Any]]:
    """Every counter row of a tenant: sum, max, last (with its time and key), count, watermark."""
    with sync_engine(database_url) as engine, engine.connect() as conn:
        rows = conn.execute(sa.select(counters).where(counters.c.tenant_id == tenant)).mappings()
        return {
            (r["metric"], r["customer_ref"], r["period_start"]): {
                "period_end": r["period_end"],
                "sum": r["sum"],
                "max": r["max"],
                "last": r["last"],
                "last_ts": r["last_ts"],
                "last_key": r["last_key"],
                "count": r["count"],
                "watermark": r["watermark"],
            }
            for r in rows
        }


def month_of(at: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month ``[start, end)`` holding ``at``."""
    at = at.astimezone(UTC)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    end = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def recompute_counters(ledger: Iterable[LedgerRow]) -> dict[CounterKey, dict[str, Any]]:
    """Counters from the accepted events alone, computed here; ``last`` is at the greatest (ts, key)."""
    series: dict[CounterKey, list[LedgerRow]] = {}
    for row in ledger:
        if row.status != "accepted":
            continue
        start, _ = month_of(row.ts)
        assert row.period_start == start, f"event {row.id} stored in the wrong period"
        series.setdefault((row.metric, row.customer_ref, start), []).append(row)
    result: dict[CounterKey, dict[str, Any]] = {}
    for key, rows in series.items():
        last = max(rows, key=lambda r: (r.ts, r.idempotency_key))
        result[key] = {
            "period_end": month_of(key[2])[1],
            "sum": sum((r.quantity for r in rows), Decimal(0)),
            "max": max(r.quantity for r in rows),
            "last": last.quantity,
            "last_ts": last.ts,
            "last_key": last.idempotency_key,
            "count": len(rows),
            "watermark": max(r.ts for r in rows),
        }
    return result


def assert_counters_derivable(database_url: str, tenant: str) -> list[LedgerRow]:
    """Counters equal their recomputation from the ledger, key for key; returns the ledger."""
    ledger = read_ledger(database_url, tenant)
    keys = [row.idempotency_key for row in ledger]
    assert len(keys) == len(set(keys)), "an idempotency key is in the ledger twice"
    expected = recompute_counters(ledger)
    stored = stored_counters(database_url, tenant)
    assert stored.keys() == expected.keys()
    for key, want in expected.items():
        assert stored[key] == want, key
    return ledger
