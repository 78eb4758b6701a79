"""Several ``stripemeter serve`` processes on one database count each event once, whoever wins the race.

Every sender posts the same events (same keys) in its own shuffled, differently cut batches to its
own server process, all starting together; then the same again with ``Idempotency-Key`` requests
replayed on every process at once; then every sender reuses the same keys with its own payloads
(conflicts racing across processes: one payload per key wins, the others are reported).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance import support

TENANT = "race"
PROCESSES = 3
SENDERS_PER_PROCESS = 2
DISTINCT_EVENTS = 400
REQUESTS = 24  # Idempotency-Key requests, each replayed by every sender
CONTESTED = 150  # keys every sender reuses with its own payload
METRICS = ["calls", "gb", "seats"]
CUSTOMERS = ["cus_hot", "cus_hot", "cus_hot", "cus_b", "cus_c"]  # a hot customer contends most
BASE = datetime(2026, 4, 30, 20, tzinfo=UTC)  # events cross the start of May


def make_events(prefix: str, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` distinct events with client keys."""
    return [
        {
            "metric": rng.choice(METRICS),
            "customerRef": rng.choice(CUSTOMERS),
            "quantity": str(rng.randrange(0, 10_000)),
            "ts": (BASE + timedelta(seconds=rng.randrange(8 * 3600))).isoformat(),
            "idempotencyKey": f"{prefix}-{i}",
        }
        for i in range(count)
    ]


def cut(events: list[dict[str, Any]], rng: random.Random) -> list[list[dict[str, Any]]]:
    """The events shuffled and cut into batches of 1-60."""
    order = events[:]
    rng.shuffle(order)
    batches = []
    while order:
        size = rng.randint(1, 60)
        batches.append(order[:size])
        order = order[size:]
    return batches


def race(urls: list[str], key: str, work: Callable[[httpx.Client, int], Any]) -> list[Any]:
    """Run ``work(client, sender)`` on every sender at once (each bound to one server process)."""
    senders = len(urls) * SENDERS_PER_PROCESS
    start = threading.Barrier(senders)
    results: list[Any] = [None] * senders
    errors: list[BaseException] = []

    def run(sender: int) -> None:
        url = urls[sender % len(urls)]
        headers = {"Authorization": f"Bearer {key}"}
        try:
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                start.wait(timeout=60)
                results[sender] = work(http, sender)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if errors:
        raise errors[0]
    return results


@pytest.mark.slow
def test_processes_racing_on_the_same_events_count_each_once(backend: str, tmp_path: Path) -> None:
    """Same events through many processes: ledger once, accepted totals = distinct events, counters derive."""
    rng = random.Random(7)
    plain = make_events("plain", DISTINCT_EVENTS, rng)
    # Idempotency-Key requests: 24 bodies of 25 events drawn from 200, so bodies overlap each other.
    pool = make_events("keyed", 200, rng)
    bodies = [{"events": rng.sample(pool, 25)} for _ in range(REQUESTS)]

    with support.fresh_database(backend, tmp_path) as database_url:
        support.migrate(database_url, tmp_path)
        key = support.create_key(database_url, tmp_path, TENANT)
        with support.serving_many(database_url, tmp_path, PROCESSES) as servers:
            urls = [server.url for server in servers]

            def send_plain(http: httpx.Client, sender: int) -> list[dict[str, Any]]:
                replies = []
                for batch in cut(plain, random.Random(sender)):
                    response = http.post("/v1/events/ingest", json={"events": batch})
                    assert response.status_code == 200, response.text
                    replies.append(response.json())
                return replies

            replies = [r for per_sender in race(urls, key, send_plain) for r in per_sender]
            senders = PROCESSES * SENDERS_PER_PROCESS
            assert sum(r["accepted"] for r in replies) == DISTINCT_EVENTS
            assert sum(r["duplicates"] for r in replies) == DISTINCT_EVENTS * (senders - 1)
            assert sum(r["conflicts"] + r["held"] + r["rejected"] for r in replies) == 0
            ledger = support.assert_counters_derivable(database_url, TENANT)
            assert sorted(row.idempotency_key for row in ledger) == sorted(
                e["idempotencyKey"] for e in plain
            )

            def send_keyed(http: httpx.Client, sender: int) -> list[tuple[int, int, bool, str]]:
                replies = []
                order = list(range(REQUESTS))
                random.Random(sender).shuffle(order)
                for j in order:
                    response = http.post(
                        "/v1/events/ingest",
                        json=bodies[j],
                        headers={"Idempotency-Key": f"request-{j}"},
                    )
                    replayed = response.headers.get("Idempotent-Replayed") == "true"
                    replies.append((j, response.status_code, replayed, response.text))
                return replies

            keyed = [r for per_sender in race(urls, key, send_keyed) for r in per_sender]

            problems = [(j, status, text[:300]) for j, status, _, text in keyed if status != 200]
            assert not problems, problems
            originals: dict[int, str] = {}
            for j in range(REQUESTS):
                answers = [(replayed, text) for k, _, replayed, text in keyed if k == j]
                assert len(answers) == senders
                first = [text for replayed, text in answers if not replayed]
                assert len(first) == 1, f"request-{j} was processed {len(first)} times"
                assert {text for _, text in answers} == {first[0]}, f"request-{j} replays differ"
                originals[j] = first[0]
            accepted = sum(json.loads(body)["accepted"] for body in originals.values())
            distinct = {e["idempotencyKey"] for body in bodies for e in body["events"]}
            assert accepted == len(distinct)
            ledger = support.assert_counters_derivable(database_url, TENANT)
            assert len(ledger) == DISTINCT_EVENTS + len(distinct)

            # Conflicts racing: every sender reuses the same keys with its own payloads (other
            # quantities and customers, so other counters and other locks). One payload per key wins.
            contested = make_events("contested", CONTESTED, rng)

            def send_variants(http: httpx.Client, sender: int) -> dict[str, tuple[str, Any]]:
                mine = [
                    {**e, "quantity": str(1000 + sender), "customerRef": CUSTOMERS[sender % 5]}
                    for e in contested
                ]
                seen: dict[str, tuple[str, Any]] = {}
                for batch in cut(mine, random.Random(sender)):
                    response = http.post("/v1/events/ingest", json={"events": batch})
                    assert response.status_code == 200, response.text
                    for result in response.json()["results"]:
                        event = batch[result["index"]]
                        seen[event["idempotencyKey"]] = (result["status"], event)
                return seen

            outcomes = race(urls, key, send_variants)
            stored = {row.idempotency_key: row for row in support.read_ledger(database_url, TENANT)}
            for event in contested:
                name = event["idempotencyKey"]
                statuses = sorted(per_sender[name][0] for per_sender in outcomes)
                assert statuses == ["accepted"] + ["conflict"] * (senders - 1), (name, statuses)
                (winner,) = [p[name][1] for p in outcomes if p[name][0] == "accepted"]
                row = stored[name]
                assert (row.customer_ref, str(row.quantity)) == (
                    winner["customerRef"],
                    winner["quantity"],
                )
            ledger = support.assert_counters_derivable(database_url, TENANT)
            assert len(ledger) == DISTINCT_EVENTS + len(distinct) + CONTESTED
