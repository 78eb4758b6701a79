"""Two workers on PostgreSQL share the write log through leases: all work done, nothing twice."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from decimal import Decimal

import httpx
import pytest

from stripemeter.api.app import Services
from tests.stripe_sync.conftest import FakeStripe, ingest
from tests.stripe_sync.workers import start_worker, stop_worker, wait_idle

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CUSTOMERS = 40


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """PostgreSQL: FOR UPDATE SKIP LOCKED is what lets several workers share rows."""
    return "postgres"


async def test_two_workers_never_push_the_same_row_twice(
    api: httpx.AsyncClient, app_services: Services, fake: FakeStripe, fake_url: str
) -> None:
    """Each push identifier reaches Stripe once, and every customer's total arrives."""
    meter = fake.meter("api_calls")
    await api.post(
        "/v1/mappings",
        json={"metric": "api_calls", "aggregation": "sum", "meterEventName": "api_calls"},
    )
    ids = {}
    for i in range(CUSTOMERS):
        ids[f"c{i}"] = fake.customer()
    await api.post(
        "/v1/customers/import",
        json={"customers": [{"customerRef": r, "stripeCustomerId": s} for r, s in ids.items()]},
    )
    # Slow Stripe a little so both workers hold leases at the same time.
    fake.control.fault(kind="delay", delay=0.05, count=CUSTOMERS, path="/v1/billing/meter_events")
    await ingest(api, *({"metric": "api_calls", "customerRef": r, "quantity": 3} for r in ids))
    url = app_services.settings.database_url
    workers = [start_worker(url, fake_url, interval=0.05) for _ in range(2)]
    try:
        await asyncio.sleep(0.5)
        await ingest(api, *({"metric": "api_calls", "customerRef": r, "quantity": 1} for r in ids))
        await asyncio.sleep(0.3)
        wait_idle(url, CUSTOMERS, timeout=40)
    finally:
        for worker in workers:
            stop_worker(worker)
    sent = Counter(
        r["params"]["identifier"] for r in fake.control.requests("/v1/billing/meter_events")
    )
    assert sent
    assert max(sent.values()) == 1, sent.most_common(3)
    for stripe_id in ids.values():
        assert fake.meter_total(meter, stripe_id) == Decimal(4)


async def test_two_workers_never_call_stripe_at_once_for_one_customer_and_meter(
    api: httpx.AsyncClient, app_services: Services, fake: FakeStripe, fake_url: str
) -> None:
    """Rows sharing a (customer, meter) in two workers' leases never overlap at Stripe.

    Four metrics map to one meter, so each customer has four rows with the same Stripe key; the
    workers claim two rows at a time and each call takes 0.15 s at the fake. Its request log
    (wall-clock start and end of every request) shows calls of one key strictly one after the
    other, while calls of different customers did overlap: the workers ran side by side.
    """
    meter = fake.meter("api_calls")
    metrics_ = [f"m{i}" for i in range(4)]
    for metric in metrics_:
        created = await api.post(
            "/v1/mappings",
            json={"metric": metric, "aggregation": "sum", "meterEventName": "api_calls"},
        )
        assert created.status_code == 201, created.text
    ids = {f"c{i}": fake.customer() for i in range(3)}
    await api.post(
        "/v1/customers/import",
        json={"customers": [{"customerRef": r, "stripeCustomerId": s} for r, s in ids.items()]},
    )
    fake.control.fault(kind="delay", delay=0.15, count=1000, path="/v1/billing/meter_events")
    await ingest(
        api, *({"metric": m, "customerRef": r, "quantity": 2} for r in ids for m in metrics_)
    )
    url = app_services.settings.database_url
    workers = [start_worker(url, fake_url, interval=0.05, batch_size=2) for _ in range(2)]
    try:
        await asyncio.sleep(1.0)
        await ingest(
            api, *({"metric": m, "customerRef": r, "quantity": 1} for r in ids for m in metrics_)
        )
        await asyncio.sleep(0.3)
        wait_idle(url, len(ids) * len(metrics_), timeout=60)
    finally:
        for worker in workers:
            stop_worker(worker)
    calls: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for request in fake.control.requests("/v1/billing/meter_events"):
        key = (request["params"]["payload"]["stripe_customer_id"], request["params"]["event_name"])
        calls.setdefault(key, []).append((request["started"], request["finished"]))
    assert sum(len(spans) for spans in calls.values()) >= len(ids) * len(metrics_)
    for key, spans in calls.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two calls for {key} overlapped: {spans}"
    every = sorted(span for spans in calls.values() for span in spans)
    assert any(start < end for (_, end), (start, _) in itertools.pairwise(every)), (
        "no two calls overlapped at all: the workers did not run side by side"
    )
    for stripe_id in ids.values():
        assert fake.meter_total(meter, stripe_id) == Decimal(3 * len(metrics_))
