"""Push benchmark: the pusher against the fake Stripe over real HTTP (loopback).

Three figures, on a fresh SQLite file or PostgreSQL database:

1. customers/s pushed: ingest one event for each of ``--customers`` customers, then time one
   ``flush`` that pushes every customer (one meter-event call each, through the rate limiter,
   breaker and two-phase write log).
2. Stripe calls per 10,000 events ingested: ingest 10,000 events over those customers in batches
   of 500 while the background loop pushes every ``--interval`` seconds; count meter-event calls
   the fake received until idle. Delta pushing makes this one call per changed customer per tick,
   not one per event.
3. ingest → confirmed latency: with the loop running, ingest one event and poll the write log until
   Stripe's confirmation is recorded; p50/max over ``--samples`` samples (bounded by the interval).

Usage: ``python bench/push.py [--backend sqlite|postgres] [--customers 1000] [--interval 1.0]
[--samples 10] [--markdown docs/benchmarks.md]``
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from stripemeter.api.app import Services, create_app
from stripemeter.config import Settings
from stripemeter.store.migrate import upgrade

LIVE_KEY = "sk_live_bench"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_fake() -> tuple[str, subprocess.Popen[bytes]]:
    """``stripemeter fake-stripe`` on a free port, in its own process (as Stripe is remote)."""
    port = _free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("stripemeter")), "fake-stripe", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(500):
        try:
            httpx.get(url + "/_control/clock", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.02)
    return url, process


def database(backend: str) -> str:
    """A fresh migrated database URL."""
    if backend == "sqlite":
        path = Path(tempfile.mkdtemp()) / "bench.db"
        url = f"sqlite:///{path}"
    else:
        name = f"sm_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    return url


def _ts(offset_s: float = 0) -> str:
    at = datetime.now(UTC) - timedelta(seconds=60 - offset_s)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    fake_url, server = start_fake()
    ctl = httpx.AsyncClient(base_url=fake_url, headers={"Authorization": f"Bearer {LIVE_KEY}"})
    settings = Settings(
        database_url=url,
        log_level="WARNING",
        stripe_api_base=fake_url,
        stripe_secret_key=SecretStr(LIVE_KEY),
        push_enabled=False,
        push_interval_seconds=args.interval,
        stripe_live_rate=args.rate,
    )
    services = Services.build(settings)
    app = create_app(settings, services=services)
    results: dict[str, Any] = {"backend": args.backend, "customers": args.customers}
    async with LifespanManager(app):
        key = await services.keys.create("bench", "admin")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {key.key}"},
            timeout=120,
        ) as api:
            created = await ctl.post(
                "/v1/billing/meters",
                data={
                    "display_name": "api",
                    "event_name": "api_calls",
                    "default_aggregation[formula]": "sum",
                },
            )
            created.raise_for_status()
            await api.post(
                "/v1/mappings",
                json={"metric": "api_calls", "aggregation": "sum", "meterEventName": "api_calls"},
            )
            refs = [f"cust_{i:05}" for i in range(args.customers)]
            for start in range(0, len(refs), 1000):
                chunk = refs[start : start + 1000]
                body = {
                    "customers": [
                        {"customerRef": r, "stripeCustomerId": f"cus_bench{i + start}"}
                        for i, r in enumerate(chunk)
                    ]
                }
                (await api.post("/v1/customers/import", json=body)).raise_for_status()

            async def ingest(events: list[dict[str, Any]]) -> None:
                for start in range(0, len(events), 500):
                    response = await api.post(
                        "/v1/events/ingest", json={"events": events[start : start + 500]}
                    )
                    response.raise_for_status()

            # 1. customers/s pushed by one flush.
            await ingest(
                [
                    {"metric": "api_calls", "customerRef": r, "quantity": 1, "ts": _ts()}
                    for r in refs
                ]
            )
            started = time.perf_counter()
            summary = (await api.post("/v1/pushes/flush", json={})).json()
            elapsed = time.perf_counter() - started
            results["flush_seconds"] = elapsed
            results["customers_per_second"] = summary["results"].get("delivered", 0) / elapsed

            # 2. Stripe calls per 10,000 events with the loop running.
            before = await _meter_event_calls(ctl)
            services.stripe_sync.pusher.start()
            events = [
                {
                    "metric": "api_calls",
                    "customerRef": refs[i % len(refs)],
                    "quantity": 1,
                    "ts": _ts(i / 1000),
                }
                for i in range(10_000)
            ]
            ingest_started = time.perf_counter()
            await ingest(events)
            results["ingest_seconds"] = time.perf_counter() - ingest_started
            await _wait_idle(api)
            after = await _meter_event_calls(ctl)
            results["calls_per_10k_events"] = after - before

            # 3. ingest → confirmed latency with the loop running.
            latencies = []
            for n in range(args.samples):
                ref = refs[n % len(refs)]
                rows = (await api.get("/v1/pushes", params={"customerRef": ref})).json()["data"]
                pushes_before = rows[0]["pushes"]
                t0 = time.perf_counter()
                await ingest(
                    [{"metric": "api_calls", "customerRef": ref, "quantity": 1, "ts": _ts()}]
                )
                while True:
                    rows = (await api.get("/v1/pushes", params={"customerRef": ref})).json()["data"]
                    if rows[0]["pushes"] > pushes_before and rows[0]["status"] == "ok":
                        break
                    await asyncio.sleep(0.01)
                latencies.append(time.perf_counter() - t0)
            results["latency_p50"] = statistics.median(latencies)
            results["latency_max"] = max(latencies)
            await services.stripe_sync.pusher.stop()
    server.terminate()
    server.wait()
    await ctl.aclose()
    return results


async def _meter_event_calls(ctl: httpx.AsyncClient) -> int:
    response = await ctl.get("/_control/requests", params={"path": "/v1/billing/meter_events"})
    return len(response.json()["requests"])


async def _wait_idle(api: httpx.AsyncClient) -> None:
    for _ in range(6000):
        rows = (await api.get("/v1/pushes", params={"limit": 1000})).json()["data"]
        if all(r["status"] == "ok" and r["pending"] is None and not r["changed"] for r in rows):
            await asyncio.sleep(0.5)
            rows = (await api.get("/v1/pushes", params={"limit": 1000})).json()["data"]
            if all(not r["changed"] and r["pending"] is None for r in rows):
                return
        await asyncio.sleep(0.05)


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    return (
        f"| {results['backend']} | {results['customers']} | {results['customers_per_second']:.0f} "
        f"| {results['calls_per_10k_events']} | {args.interval:g} s "
        f"| {results['latency_p50'] * 1000:.0f} ms / {results['latency_max'] * 1000:.0f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    results = asyncio.run(run(args, database(args.backend)))
    row = render(results, args)
    print(results)
    print(row)
    if args.markdown is not None:
        text = args.markdown.read_text() if args.markdown.exists() else ""
        if "## Push" not in text:
            text += (
                "\n## Push\n\n"
                f"`python bench/push.py` (fake Stripe in its own process; {platform.machine()}, Python "
                f"{sys.version.split()[0]}): the pusher against the fake Stripe over loopback HTTP, "
                "rate limit 1,000 calls/s (Stripe's live default). One flush pushes every "
                "customer once; then 10,000 events over the same customers are ingested while the "
                "loop runs; latency is ingest → Stripe-confirmed with the loop's interval.\n\n"
                "| backend | customers | customers/s pushed | Stripe calls per 10,000 events "
                "| loop interval | ingest → confirmed p50 / max |\n"
                "|---|---|---|---|---|---|\n"
            )
        args.markdown.write_text(text.rstrip("\n") + "\n" + row + "\n")


if __name__ == "__main__":
    main()
