"""Two workers on PostgreSQL share the write log through leases: all work done, nothing twice."""

from __future__ import annotations

import asyncio
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
