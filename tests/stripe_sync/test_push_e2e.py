"""Pushes end to end against the fake Stripe over real HTTP: totals, corrections, last/max, faults."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.stripe_sync.conftest import FakeStripe, flush, ingest


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """These run on SQLite; the write-log SQL shared with PostgreSQL is covered by the PG tests."""
    return "sqlite"


async def _setup(
    api: httpx.AsyncClient,
    fake: FakeStripe,
    *,
    metric: str = "api_calls",
    aggregation: str = "sum",
    formula: str = "sum",
    customers: tuple[str, ...] = ("c1",),
    **mapping: Any,
) -> tuple[str, dict[str, str]]:
    meter = fake.meter(metric, formula)
    response = await api.post(
        "/v1/mappings",
        json={"metric": metric, "aggregation": aggregation, "meterEventName": metric} | mapping,
    )
    assert response.status_code == 201, response.text
    ids = {}
    for ref in customers:
        ids[ref] = fake.customer()
        created = await api.post(
            "/v1/customers", json={"customerRef": ref, "stripeCustomerId": ids[ref]}
        )
        assert created.status_code == 201, created.text
    return meter, ids


async def test_sum_push_makes_stripe_total_equal_local_total(
    api: httpx.AsyncClient, fake: FakeStripe
) -> None:
    """Events for two customers are pushed as deltas; Stripe's summaries equal the counters."""
    meter, ids = await _setup(api, fake, customers=("c1", "c2"))
    await ingest(
        api,
        {"metric": "api_calls", "customerRef": "c1", "quantity": "10.5"},
        {"metric": "api_calls", "customerRef": "c1", "quantity": 2},
        {"metric": "api_calls", "customerRef": "c2", "quantity": 7},
    )
    result = await flush(api)
    assert result["results"] == {"delivered": 2}
    assert fake.meter_total(meter, ids["c1"]) == Decimal("12.5")
    assert fake.meter_total(meter, ids["c2"]) == Decimal(7)
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 3})
    await flush(api)
    assert fake.meter_total(meter, ids["c1"]) == Decimal("15.5")
    sent = fake.accepted_events()
    assert len(sent) == 3  # one call per (customer, change), not per event
    assert [e["params"]["payload"]["value"] for e in sent[-1:]] == ["3"]
    for event in sent:
        assert event["headers"]["idempotency-key"] == event["params"]["identifier"]
    again = await flush(api)
    assert again["results"].get("delivered", 0) == 0


async def test_negative_corrections_are_sent(api: httpx.AsyncClient, fake: FakeStripe) -> None:
    """A correction that lowers the total is pushed as a negative delta, never skipped."""
    meter, ids = await _setup(api, fake)
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 10})
    await flush(api)
    await ingest(
        api, {"metric": "api_calls", "customerRef": "c1", "quantity": -4, "source": "correction"}
    )
    await flush(api)
    assert fake.meter_total(meter, ids["c1"]) == Decimal(6)
    assert fake.accepted_events()[-1]["params"]["payload"]["value"] == "-4"


async def test_max_goes_to_a_last_meter_as_the_value(
    api: httpx.AsyncClient, fake: FakeStripe
) -> None:
    """A max metric sends the value itself to a `last` meter, with increasing timestamps."""
    meter, ids = await _setup(api, fake, metric="seats", aggregation="max", formula="last")
    await ingest(
        api,
        {"metric": "seats", "customerRef": "c1", "quantity": 5},
        {"metric": "seats", "customerRef": "c1", "quantity": 9},
        {"metric": "seats", "customerRef": "c1", "quantity": 2},
    )
    await flush(api)
    assert fake.meter_total(meter, ids["c1"]) == Decimal(9)
    await ingest(api, {"metric": "seats", "customerRef": "c1", "quantity": 12})
    await flush(api)
    assert fake.meter_total(meter, ids["c1"]) == Decimal(12)
    stamps = [e["params"]["timestamp"] for e in fake.accepted_events()]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


async def test_last_goes_to_a_last_meter(api: httpx.AsyncClient, fake: FakeStripe) -> None:
    """A last metric that drops is pushed as its new value."""
    meter, ids = await _setup(api, fake, metric="gb", aggregation="last", formula="last")
    await ingest(api, {"metric": "gb", "customerRef": "c1", "quantity": 40})
    await flush(api)
    await ingest(api, {"metric": "gb", "customerRef": "c1", "quantity": 3, "ts": _now_iso()})
    await flush(api)
    assert fake.meter_total(meter, ids["c1"]) == Decimal(3)


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def test_429_and_500_storms_are_retried_until_delivered(
    api: httpx.AsyncClient, fake: FakeStripe
) -> None:
    """Rate limits and server errors are retried with backoff; the total arrives exactly once."""
    meter, ids = await _setup(api, fake)
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 8})
    fake.control.fault(kind="rate_limit", count=1, path="/v1/billing/meter_events")
    fake.control.fault(kind="server_error", count=1, path="/v1/billing/meter_events")
    fake.control.fault(
        kind="rate_limit", count=1, path="/v1/billing/meter_events", should_retry=True
    )
    first = await flush(api)
    # Three in-call attempts fail; the row is rescheduled, and the next flush delivers it.
    assert first["results"] == {"rescheduled": 1}
    rows = (await api.get("/v1/pushes")).json()["data"]
    assert rows[0]["status"] == "pending"
    assert "RateLimited" in rows[0]["lastError"]
    second = await flush(api)
    assert second["results"] == {"delivered": 1}
    assert fake.meter_total(meter, ids["c1"]) == Decimal(8)
    identifiers = {
        r["params"]["identifier"] for r in fake.control.requests("/v1/billing/meter_events")
    }
    assert len(identifiers) == 1  # every retry re-sent the same intent


async def test_a_timeout_after_stripe_applied_the_call_is_not_double_counted(
    api: httpx.AsyncClient, fake: FakeStripe
) -> None:
    """A slow response times the client out; the resend with the same key is deduplicated."""
    meter, ids = await _setup(api, fake)
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 5})
    fake.control.fault(kind="delay", delay=2.5, count=1, path="/v1/billing/meter_events")
    await flush(api)
    await flush(api)
    assert fake.meter_total(meter, ids["c1"]) == Decimal(5)
    rows = (await api.get("/v1/pushes")).json()["data"]
    assert rows[0]["status"] == "ok"
    assert rows[0]["pushedTotal"] == 5


async def test_a_dropped_connection_is_retried(api: httpx.AsyncClient, fake: FakeStripe) -> None:
    """A connection dropped before any response is a network error, retried in the same flush."""
    meter, ids = await _setup(api, fake)
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 4})
    fake.control.fault(kind="drop", count=1, path="/v1/billing/meter_events")
    result = await flush(api)
    assert result["results"] == {"delivered": 1}
    assert fake.meter_total(meter, ids["c1"]) == Decimal(4)


async def test_a_permanent_error_parks_the_row_without_blocking_others(
    api: httpx.AsyncClient, fake: FakeStripe
) -> None:
    """A 400 Stripe says not to retry parks that row with the reason; other customers go through."""
    meter, ids = await _setup(api, fake, customers=("c1", "c2"))
    await ingest(
        api,
        {"metric": "api_calls", "customerRef": "c1", "quantity": 1},
        {"metric": "api_calls", "customerRef": "c2", "quantity": 2},
    )
    fake.control.fault(
        kind="server_error", count=1, path="/v1/billing/meter_events", should_retry=False
    )
    result = await flush(api)
    assert result["results"] == {"parked": 1, "delivered": 1}
    parked = (await api.get("/v1/pushes", params={"status": "parked"})).json()["data"]
    assert len(parked) == 1
    assert "ServerError:500" in parked[0]["lastError"]
    retried = await flush(api, retryParked=True)
    assert retried["results"] == {"delivered": 1}
    assert fake.meter_total(meter, ids["c1"]) + fake.meter_total(meter, ids["c2"]) == 3


async def test_an_unmapped_customer_is_parked_then_pushed_once_mapped(
    api: httpx.AsyncClient, fake: FakeStripe
) -> None:
    """Usage of a customer without a Stripe id is reported as unmapped, not dropped."""
    meter, _ = await _setup(api, fake, customers=())
    await ingest(api, {"metric": "api_calls", "customerRef": "late", "quantity": 6})
    await flush(api)
    parked = (await api.get("/v1/pushes", params={"status": "parked"})).json()["data"]
    assert parked[0]["lastError"].startswith("unmapped_customer")
    stripe_id = fake.customer()
    await api.post("/v1/customers", json={"customerRef": "late", "stripeCustomerId": stripe_id})
    await flush(api)
    assert fake.meter_total(meter, stripe_id) == Decimal(6)


async def test_circuit_breaker_opens_after_repeated_failures(
    api: httpx.AsyncClient, fake: FakeStripe
) -> None:
    """Five consecutive transient failures open the breaker; calls stop instead of hammering."""
    await _setup(api, fake, customers=("c1", "c2", "c3"))
    await ingest(
        api,
        *({"metric": "api_calls", "customerRef": c, "quantity": 1} for c in ("c1", "c2", "c3")),
    )
    fake.control.fault(kind="server_error", count=50, path="/v1/billing/meter_events")
    await flush(api)
    calls = len(fake.control.requests("/v1/billing/meter_events"))
    assert calls <= 6  # threshold 5 (+1 in flight); the rest were refused locally
    metrics = (await api.get("/metrics")).text
    assert 'stripemeter_stripe_breaker_state{account="live"} 1.0' in metrics
