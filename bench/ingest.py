"""Ingest benchmark: a real ``stripemeter serve`` driven over loopback HTTP by a separate process.

For each backend (a fresh SQLite file, a fresh PostgreSQL database) and worker count, and for each
case (single events at concurrency 32, batches of 100, batches of 1,000), this script migrates a new
database, mints an admin key with the CLI, starts the server as a subprocess, waits for
``/health/ready``, warms it up, then loads it for ``--seconds`` with ``wrk`` and prints events/s,
requests/s, p50/p99 latency, errors, and how long after the load stopped the counters reflected every
acknowledged event (checked in the database: counters' count and sum equal the ledger's accepted
events, and at least every acknowledged event is in the ledger).

Why wrk: this machine may have two cores shared by the server, PostgreSQL and the load generator. A
Python asyncio client (httpx) spends about as much CPU per request as the server does, so it would
take most of a core and cap the figures it measures. wrk (C, LuaJIT) needs a few percent of a core
for the same load; its CPU share is printed with every row so that claim can be checked. A Lua script
builds every request body with unique idempotency keys (nothing is a duplicate).

This machine's speed can drift by a third within minutes: ``--repeat 3`` runs each case three
times and reports the median run (every run is printed too).

Usage: ``python bench/ingest.py [--seconds 20] [--backends sqlite,postgres]
[--cases single,batch100,batch1000] [--workers 1,2] [--repeat N] [--env NAME=VALUE]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg

PG_ADMIN_URL = os.environ.get(
    "STRIPEMETER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CASES = {"single": 0, "batch100": 100, "batch1000": 1000}  # 0: POST /v1/events, one event

LUA = r"""
-- Unique events for StripeMeter ingest. args: batch (0 = single-event route), nonce, customers.
local counter = 0
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

function init(args)
  batch = tonumber(args[1])
  nonce = args[2]
  customers = tonumber(args[3])
  path = batch == 0 and "/v1/events" or "/v1/events/ingest"
  headers = {["Content-Type"] = "application/json"}
  for k, v in pairs(wrk.headers) do headers[k] = v end
end

local function event(ts)
  counter = counter + 1
  -- Quantities with decimals (0.25 .. 6.25) so the exact-sum check means something.
  return string.format(
    '{"metric":"api_calls","customerRef":"cus_%d","quantity":"%d.25","ts":"%s",' ..
    '"idempotencyKey":"%s-%d-%d"}',
    counter % customers, counter % 7, ts, nonce, tid, counter)
end

function request()
  local ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local body
  if batch == 0 then
    body = event(ts)
  else
    local parts = {}
    for i = 1, batch do parts[i] = event(ts) end
    body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass
class Row:
    """One measured case."""

    backend: str
    workers: int
    case: str
    events_per_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    lag_ms: float | None
    exact: bool
    wrk_cpu: float
    server_us: float  # server CPU (all worker processes) per acknowledged event
    db_us: float | None  # PostgreSQL backend CPU per acknowledged event
    load: float  # 1-minute load average when the case started (others' work on the machine)
    acked: int
    in_ledger: int


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    try:
        with psycopg.connect(PG_ADMIN_URL) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg = str(row[0]) if row else "?"
    except psycopg.Error as exc:
        pg = f"unavailable ({type(exc).__name__})"
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split(
        "\n"
    )[0]
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} cores"),
        ("Memory", mem),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("PostgreSQL", pg),
        ("SQLite", sqlite3.sqlite_version),
        ("Load generator", wrk.strip() or "wrk"),
    ]


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """A new, empty database URL; removed afterwards."""
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="sm_bench_")
        try:
            yield f"sqlite:///{folder}/bench.db"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    name = f"sm_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(*args: str, env: dict[str, str]) -> str:
    """Run the ``stripemeter`` command and return its stdout."""
    exe = shutil.which("stripemeter", path=str(Path(sys.executable).parent)) or "stripemeter"
    done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"stripemeter {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def server(
    url: str, workers: int, env: dict[str, str], log_path: Path
) -> Iterator[tuple[str, int]]:
    """A running ``stripemeter serve``; yields its base URL and pid once ready."""
    port = free_port()
    exe = shutil.which("stripemeter", path=str(Path(sys.executable).parent)) or "stripemeter"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [exe, "serve", "--port", str(port), "--workers", str(workers), "--database-url", url],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{base}/health/ready", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after 60 s; see {log_path}")
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the group we started
                proc.wait()


def run_wrk(
    base: str, key: str, batch: int, seconds: float, concurrency: int, script: Path, customers: int
) -> tuple[dict[str, int], float]:
    """Run wrk; returns its summary and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    threads = 1 if concurrency < 16 or (os.cpu_count() or 1) < 4 else 2
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-H",
            f"Authorization: Bearer {key}",
            "-s",
            str(script),
            base,
            "--",
            str(batch),
            secrets.token_hex(4),
            str(customers),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:]), cpu
    raise RuntimeError(f"wrk failed:\n{done.stdout}\n{done.stderr}")


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the state on


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each live process."""
    used: dict[int, float] = {}
    for pid in pids:
        if (fields := _stat(pid)) is not None:
            used[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return used


def db_backends(url: str) -> list[int]:
    """PostgreSQL backend pids connected to the benchmark database."""
    if not url.startswith("postgres"):
        return []
    name = url.rpartition("/")[2]
    with psycopg.connect(PG_ADMIN_URL) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))
        return [int(pid) for (pid,) in rows]


def used_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two samples (a process seen only after counts from its start)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def ledger_state(url: str) -> tuple[int, int, Decimal, Decimal]:
    """(accepted events, sum of counter counts, sum of accepted quantities, sum of counter sums)."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as db:
            events = db.execute("SELECT quantity FROM events WHERE status = 'accepted'").fetchall()
            counters = db.execute('SELECT "count", "sum" FROM counters').fetchall()
        return (
            len(events),
            sum(int(c) for c, _ in counters),
            sum((Decimal(q) for (q,) in events), Decimal(0)),
            sum((Decimal(s) for _, s in counters), Decimal(0)),
        )
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM events WHERE status = 'accepted'),"
            " (SELECT coalesce(sum(count), 0) FROM counters),"
            " (SELECT coalesce(sum(quantity), 0) FROM events WHERE status = 'accepted'),"
            " (SELECT coalesce(sum(sum), 0) FROM counters)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), Decimal(row[2]), Decimal(row[3])


def counters_count(url: str) -> int:
    """Sum of counter counts (the cheap check polled after the load stops)."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as db:
            return int(db.execute('SELECT coalesce(sum("count"), 0) FROM counters').fetchone()[0])
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(sum(count), 0) FROM counters").fetchone()
        return int(row[0]) if row else 0


def run_case(
    backend: str, workers: int, case: str, args: argparse.Namespace, script: Path, logs: Path
) -> Row:
    """Measure one case on a fresh database and server."""
    batch = CASES[case]
    per_request = max(batch, 1)
    concurrency = args.concurrency if batch == 0 else args.batch_concurrency
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("STRIPEMETER_", "DATABASE_URL"))
    }
    env.update(dict(args.env))
    with fresh_database(backend) as url:
        env["DATABASE_URL"] = url
        cli("migrate", env=env)
        key = json.loads(
            cli("keys", "create", "--tenant", "bench", "--scopes", "admin", "--json", env=env)
        )["key"]
        log_path = logs / f"{backend}-w{workers}-{case}.log"
        load = os.getloadavg()[0]
        with server(url, workers, env, log_path) as (base, pid):
            warm, _ = run_wrk(base, key, batch, args.warmup, concurrency, script, args.customers)
            tree = process_tree(pid)
            app_before, db_before = cpu_seconds(tree), cpu_seconds(db_backends(url))
            summary, cpu = run_wrk(
                base, key, batch, args.seconds, concurrency, script, args.customers
            )
            stopped = time.monotonic()
            app_cpu = used_since(app_before, cpu_seconds(tree))
            db_cpu = used_since(db_before, cpu_seconds(db_backends(url)))
            acked = sum((s["requests"] - s["status"]) * per_request for s in (warm, summary))
            lag: float | None = None
            while time.monotonic() - stopped < 30:
                if counters_count(url) >= acked:
                    lag = (time.monotonic() - stopped) * 1000
                    break
                time.sleep(0.01)
        accepted, counted, q_ledger, q_counters = ledger_state(url)
    seconds = summary["duration_us"] / 1e6
    ok_requests = summary["requests"] - summary["status"]
    errors = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Row(
        backend=backend,
        workers=workers,
        case=case,
        events_per_s=ok_requests * per_request / seconds,
        requests_per_s=summary["requests"] / seconds,
        p50_ms=summary["p50"] / 1000,
        p99_ms=summary["p99"] / 1000,
        errors=errors,
        lag_ms=lag,
        exact=accepted == counted and q_ledger == q_counters and accepted >= acked,
        wrk_cpu=cpu / seconds * 100,
        server_us=app_cpu / max(ok_requests * per_request, 1) * 1e6,
        db_us=db_cpu / max(ok_requests * per_request, 1) * 1e6 if backend == "postgres" else None,
        load=load,
        acked=acked,
        in_ledger=accepted,
    )


def median_run(runs: list[Row]) -> Row:
    """The run with the median event rate; an inexact run is reported over any exact one."""
    inexact = [r for r in runs if not r.exact]
    if inexact:
        return inexact[0]
    return sorted(runs, key=lambda r: r.events_per_s)[len(runs) // 2]


def table(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| backend | workers | case | events/s | requests/s | p50 ms | p99 ms | errors "
        "| counters caught up after | counters exact | server CPU/event | PostgreSQL CPU/event "
        "| wrk CPU | load avg |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lag = "never (30 s)" if r.lag_ms is None else f"{r.lag_ms:.0f} ms"
        exact = "yes" if r.exact else f"NO ({r.in_ledger} in ledger, {r.acked} acked)"
        db = "-" if r.db_us is None else f"{r.db_us:.0f} us"
        lines.append(
            f"| {r.backend} | {r.workers} | {r.case} | {r.events_per_s:,.0f} | {r.requests_per_s:,.0f} "
            f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {lag} | {exact} "
            f"| {r.server_us:.0f} us | {db} | {r.wrk_cpu:.0f}% | {r.load:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run every (backend, workers, case) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="load time per case")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured load before each case")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--cases", default="single,batch100,batch1000")
    parser.add_argument("--workers", default="1,2", help="server worker counts to measure")
    parser.add_argument("--concurrency", type=int, default=32, help="connections, single events")
    parser.add_argument(
        "--customers", type=int, default=1000, help="distinct customers events cycle through"
    )
    parser.add_argument("--batch-concurrency", type=int, default=8, help="connections, batches")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per case (fresh database each); the row shown is the median run by events/s",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=lambda s: tuple(s.split("=", 1)),
        metavar="NAME=VALUE",
        help="extra server environment (repeatable)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    info = machine()
    for name, value in info:
        print(f"{name:15} {value}")
    print()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sm_bench_") as tmp:
        script = Path(tmp) / "ingest.lua"
        script.write_text(LUA)
        logs = Path(tmp)
        for backend in args.backends.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                for case in args.cases.split(","):
                    runs = [
                        run_case(backend, workers, case, args, script, logs)
                        for _ in range(args.repeat)
                    ]
                    for run in runs if args.repeat > 1 else ():
                        print("  run: " + table([run]).splitlines()[-1], flush=True)
                    row = median_run(runs)
                    rows.append(row)
                    print(table([row]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    command = "python bench/ingest.py " + " ".join(sys.argv[1:])
    print(f"\nCommand: `{command.strip()}` (paste into docs/benchmarks.md, section Ingest)")


if __name__ == "__main__":
    main()
