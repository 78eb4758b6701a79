"""Exactly-once survives SIGKILL: a server killed under concurrent ingest load loses no acknowledged
event, counts none twice, keeps the stored answers of Idempotency-Key requests, and its counters
still equal a recomputation from the ledger."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance import support

TENANT = "crash"
SENDERS = 8
# Kill once this many events are acknowledged (or after KILL_AFTER_SECONDS), with requests in flight.
KILL_AFTER_ACKS = 1500
KILL_AFTER_SECONDS = 4.0
METRICS = ["calls", "gb", "seats", "tokens"]
CUSTOMERS = [f"cus_{i}" for i in range(6)]
# Events spread over 30 h across a month start, all within the default 48 h lateness window.
BASE = datetime(2026, 3, 31, 6, tzinfo=UTC)
SPREAD_SECONDS = 30 * 3600


@dataclass
class Load:
    """What the senders sent and what the server acknowledged, shared between threads."""

    key: str
    url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    acked: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Requests sent with an Idempotency-Key header and answered: key -> (exact body, response text).
    answered: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    in_flight: int = 0
    failures: int = 0
    unexpected: list[str] = field(default_factory=list)

    def event(self, sender: int, n: int, rng: random.Random) -> dict[str, Any]:
        """A new unique event."""
        ts = BASE + timedelta(
            seconds=rng.randrange(SPREAD_SECONDS), microseconds=rng.randrange(10**6)
        )
        return {
            "metric": rng.choice(METRICS),
            "customerRef": rng.choice(CUSTOMERS),
            "quantity": str(Decimal(rng.randrange(0, 100_000)) / 100),
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "idempotencyKey": f"s{sender}-{n}",
        }

    def run(self, sender: int) -> None:
        """Send batches (1-25 events, a fifth of them resends of earlier events) until stopped.

        A third of the requests carry an ``Idempotency-Key`` header.
        """
        rng = random.Random(sender)
        n = requests = 0
        with httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30.0
        ) as http:
            while not self.stop.is_set():
                batch: list[dict[str, Any]] = []
                for _ in range(rng.randint(1, 25)):
                    with self.lock:
                        earlier = list(self.sent.values())[-200:] if rng.random() < 0.2 else []
                    if earlier:
                        batch.append(rng.choice(earlier))
                    else:
                        n += 1
                        batch.append(self.event(sender, n, rng))
                with self.lock:
                    for event in batch:
                        self.sent.setdefault(event["idempotencyKey"], event)
                    self.in_flight += 1
                body = json.dumps({"events": batch}).encode()
                headers = {"Content-Type": "application/json"}
                if rng.random() < 1 / 3:
                    requests += 1
                    headers["Idempotency-Key"] = f"req-s{sender}-{requests}"
                try:
                    response = http.post("/v1/events/ingest", content=body, headers=headers)
                except httpx.TransportError:
                    with self.lock:
                        self.in_flight -= 1
                        self.failures += 1
                    time.sleep(0.02)
                    continue
                with self.lock:
                    self.in_flight -= 1
                    if response.status_code != 200:
                        self.unexpected.append(f"{response.status_code}: {response.text[:300]}")
                        continue
                    if "Idempotency-Key" in headers:
                        self.answered[headers["Idempotency-Key"]] = (body, response.text)
                    for result in response.json()["results"]:
                        event = batch[result["index"]]
                        if result["status"] in ("accepted", "duplicate"):
                            self.acked[event["idempotencyKey"]] = event
                        else:
                            self.unexpected.append(f"{result} for {event}")


def send_all(url: str, key: str, events: list[dict[str, Any]]) -> dict[str, str]:
    """Send events in batches of 500; the status of each by idempotency key."""
    statuses: dict[str, str] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        for start in range(0, len(events), 500):
            batch = events[start : start + 500]
            response = http.post("/v1/events/ingest", json={"events": batch})
            assert response.status_code == 200, response.text
            for result in response.json()["results"]:
                statuses[batch[result["index"]]["idempotencyKey"]] = result["status"]
    return statuses


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_event(backend: str, tmp_path: Path) -> None:
    """After SIGKILL mid-load and a restart, acknowledged events are stored once and counters derive."""
    with support.fresh_database(backend, tmp_path) as database_url:
        support.migrate(database_url, tmp_path)
        key = support.create_key(database_url, tmp_path, TENANT)

        server = support.ServerProcess(database_url, tmp_path)
        try:
            server.wait_ready()
            load = Load(key, server.url)
            senders = [threading.Thread(target=load.run, args=(i,)) for i in range(SENDERS)]
            for thread in senders:
                thread.start()
            deadline = time.monotonic() + KILL_AFTER_SECONDS
            while True:
                with load.lock:
                    acked, in_flight = len(load.acked), load.in_flight
                enough = acked >= KILL_AFTER_ACKS or time.monotonic() > deadline
                if enough and in_flight >= SENDERS // 2:
                    break
                time.sleep(0.001)
            server.kill()  # with requests in flight, some of them perhaps committed but unanswered
            time.sleep(0.3)
            load.stop.set()
            for thread in senders:
                thread.join(timeout=60)
        finally:
            server.kill()

        assert not load.unexpected, load.unexpected[:5]
        assert load.acked, f"nothing was acknowledged before the kill:\n{server.log()}"
        assert load.failures > 0, "the kill did not interrupt any request"

        # The ledger as the restarted service finds it, read straight from the database.
        with support.serving(database_url, tmp_path) as restarted:
            ledger = support.assert_counters_derivable(database_url, TENANT)
            stored = {row.idempotency_key: row for row in ledger}
            missing = sorted(set(load.acked) - set(stored))
            assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
            for event_key, event in load.acked.items():
                row = stored[event_key]
                assert (row.metric, row.customer_ref, row.quantity) == (
                    event["metric"], event["customerRef"], Decimal(event["quantity"]),
                )  # fmt: skip
                assert row.ts == datetime.fromisoformat(event["ts"])
            assert set(stored) <= set(load.sent)

            # Clients retry what they sent; the service must know every acknowledged event.
            statuses = send_all(restarted.url, key, list(load.sent.values()))
            wrongly_new = [k for k in load.acked if statuses[k] != "duplicate"]
            assert not wrongly_new, f"acknowledged events counted again: {wrongly_new[:5]}"
            assert {statuses[k] for k in stored} == {"duplicate"}
            assert set(statuses.values()) <= {"accepted", "duplicate"}

            ledger = support.assert_counters_derivable(database_url, TENANT)
            assert len(ledger) == len(load.sent)

            # An answered Idempotency-Key request, retried after the crash, gets the same answer.
            assert load.answered
            with httpx.Client(base_url=restarted.url, timeout=60) as http:
                for request_key, (body, text) in load.answered.items():
                    again = http.post(
                        "/v1/events/ingest",
                        content=body,
                        headers={
                            "Authorization": f"Bearer {key}",
                            "Content-Type": "application/json",
                            "Idempotency-Key": request_key,
                        },
                    )
                    assert again.status_code == 200, again.text
                    assert again.headers.get("Idempotent-Replayed") == "true", request_key
                    assert again.text == text, request_key
            assert len(support.assert_counters_derivable(database_url, TENANT)) == len(load.sent)
