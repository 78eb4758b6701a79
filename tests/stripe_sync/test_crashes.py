"""Kill a worker (SIGKILL) at each step of a push, restart it: Stripe's total equals ours, once."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest

from stripemeter.api.app import Services
from tests.stripe_sync.conftest import FakeStripe, ingest
from tests.stripe_sync.workers import start_worker, stop_worker, wait_idle

pytestmark = pytest.mark.slow


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """A SQLite file shared by the test's app and the worker processes."""
    return "sqlite"


async def _prepare(api: httpx.AsyncClient, fake: FakeStripe) -> tuple[str, str]:
    meter = fake.meter("api_calls")
    response = await api.post(
        "/v1/mappings",
        json={"metric": "api_calls", "aggregation": "sum", "meterEventName": "api_calls"},
    )
    assert response.status_code == 201, response.text
    customer = fake.customer()
    await api.post("/v1/customers", json={"customerRef": "c1", "stripeCustomerId": customer})
    await ingest(
        api,
        {"metric": "api_calls", "customerRef": "c1", "quantity": 7},
        {"metric": "api_calls", "customerRef": "c1", "quantity": "0.25"},
    )
    return meter, customer


@pytest.mark.parametrize("step", ["after_intent", "before_call", "after_call"])
async def test_sigkill_at_a_step_then_restart_pushes_exactly_once(
    api: httpx.AsyncClient,
    app_services: Services,
    fake: FakeStripe,
    fake_url: str,
    step: str,
) -> None:
    """Killed after writing the intent, before calling, or after Stripe accepted: no double count."""
    meter, customer = await _prepare(api, fake)
    url = app_services.settings.database_url
    crashing = start_worker(url, fake_url, crash_at=step)
    assert crashing.wait(timeout=20) == -9
    expected_calls = 1 if step == "after_call" else 0
    assert len(fake.accepted_events()) == expected_calls
    worker = start_worker(url, fake_url)
    try:
        wait_idle(url, 1)
        await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 2})
        await asyncio.sleep(0.3)
        wait_idle(url, 1)
    finally:
        stop_worker(worker)
    assert fake.meter_total(meter, customer) == Decimal("9.25")
    identifiers = [e["params"]["identifier"] for e in fake.accepted_events()]
    assert len(set(identifiers)) == 2  # the first push (maybe re-sent) and the +2


async def test_sigkill_while_the_call_is_in_flight(
    api: httpx.AsyncClient, app_services: Services, fake: FakeStripe, fake_url: str
) -> None:
    """Killed while Stripe is still answering (slow response): the restart re-sends the same key."""
    meter, customer = await _prepare(api, fake)
    url = app_services.settings.database_url
    fake.control.fault(kind="delay", delay=1.5, count=1, path="/v1/billing/meter_events")
    worker = start_worker(url, fake_url)
    deadline = time.monotonic() + 15
    for _ in range(750):
        if fake.control.requests("/v1/billing/meter_events") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    worker.kill()
    worker.wait()
    await asyncio.sleep(1.6)  # Stripe finishes applying the call nobody is waiting for
    restarted = start_worker(url, fake_url)
    try:
        wait_idle(url, 1)
    finally:
        stop_worker(restarted)
    assert fake.meter_total(meter, customer) == Decimal("7.25")
