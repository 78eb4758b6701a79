"""Backfill: background operations through real ingest, dry runs, re-runs, and a million-row stream."""

from __future__ import annotations

import asyncio
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from stripemeter.domain.events import EventLimits
from stripemeter.services.backfill import BackfillService, Progress


def _jsonl(count: int, start: int = 0) -> str:
    at = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "".join(
        f'{{"metric":"api_calls","customerRef":"c{i % 7}","quantity":"1","ts":"{at}",'
        f'"idempotencyKey":"bf-{i}"}}\n'
        for i in range(start, start + count)
    )


async def _finished(api: httpx.AsyncClient, op: str) -> dict[str, Any]:
    for _ in range(200):
        body: dict[str, Any] = (await api.get(f"/v1/backfill/{op}")).json()
        if body["status"] in ("completed", "failed"):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError("backfill did not finish")


async def test_backfill_body_dry_run_rerun_and_csv(api: httpx.AsyncClient, tmp_path: Path) -> None:
    """A JSONL body is ingested in the background; dry run writes nothing; re-running changes nothing."""
    body = _jsonl(1200) + "not json\n"
    dry = (await api.post("/v1/backfill", params={"dryRun": "true"}, content=body)).json()
    assert (await _finished(api, dry["id"]))["counts"] == {
        "total": 1201,
        "accepted": 1200,
        "duplicate": 0,
        "held": 0,
        "rejected": 1,
        "conflict": 0,
    }
    first = (await api.post("/v1/backfill", content=body)).json()
    done = await _finished(api, first["id"])
    assert done["counts"]["accepted"] == 1200
    assert done["errors"][0]["line"] == 1201
    again = await _finished(api, (await api.post("/v1/backfill", content=body)).json()["id"])
    assert again["counts"]["duplicate"] == 1200
    assert again["counts"]["accepted"] == 0
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "metric,customer_ref,quantity,ts,idempotency_key\n"
        f"api_calls,c1,2,{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')},csv-1\n"
    )
    from_path = (await api.post("/v1/backfill", params={"path": str(csv_file)})).json()
    assert (await _finished(api, from_path["id"]))["counts"]["accepted"] == 1
    other = await api.get(f"/v1/backfill/{first['id']}x")
    assert other.status_code == 404


@pytest.fixture
def backend() -> str:
    """The streaming test runs on SQLite (memory, not the database, is what it measures)."""
    return "sqlite"


@pytest.mark.slow
async def test_million_rows_stream_in_constant_memory(services: Services, tmp_path: Path) -> None:
    """A million-row file streams through the backfill reader in bounded memory (dry run)."""
    path = tmp_path / "million.jsonl"
    with path.open("w") as handle:
        for start in range(0, 1_000_000, 50_000):
            handle.write(_jsonl(50_000, start))
    service = BackfillService(services.db, services.ingest, EventLimits())
    size = path.stat().st_size
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as handle:
        progress = await service.stream("acme", handle, "jsonl", True, Progress())
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) * 1024
    assert progress.total == 1_000_000
    assert progress.accepted == 1_000_000
    # Holding the rows would take gigabytes; streaming keeps the peak far below the file size.
    assert grown < size / 2, f"peak RSS grew {grown / 1e6:.0f} MB for a {size / 1e6:.0f} MB file"
    print(f"1M rows in {time.perf_counter() - started:.1f}s, RSS +{grown / 1e6:.0f} MB")


async def test_backfill_paths_stay_inside_the_backfill_folder(api: httpx.AsyncClient) -> None:
    """A key cannot make the server read files outside STRIPEMETER_BACKFILL_DIR."""
    for path in ("/etc/passwd", "../../etc/passwd", "0" * 5000):
        response = await api.post("/v1/backfill", params={"path": path})
        assert response.status_code == 400, path
        assert response.json()["error"]["param"] == "path"
