"""`/v1/usage/projection`: usage and cost so far with tiers, run-rate projection, unpriced metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from stripemeter.api.app import Services
from tests.conftest import issue

NOW = datetime(2026, 3, 11, tzinfo=UTC)  # 10 days into March 2026 (31 days)
GRADUATED = {
    "currency": "usd",
    "billing_scheme": "tiered",
    "tiers_mode": "graduated",
    "tiers": [
        {"up_to": 500, "unit_amount": 2},
        {"up_to": "inf", "unit_amount_decimal": "0.5", "flat_amount": 100},
    ],
}


def daily_events(customer: str, metric: str, days: range, quantity: int) -> list[dict[str, Any]]:
    """One event per day at noon UTC in March 2026."""
    return [
        {"metric": metric, "customerRef": customer, "quantity": quantity,
         "ts": f"2026-03-{day:02d}T12:00:00Z"}
        for day in days
    ]  # fmt: skip


async def send(api: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    """Ingest events and check every one was accepted."""
    response = await api.post("/v1/events/ingest", json={"events": events})
    assert response.status_code in (200, 201, 207), response.text
    assert all(r["status"] == "accepted" for r in response.json()["results"]), response.text


async def price(api: httpx.AsyncClient, metric: str, body: dict[str, Any]) -> None:
    """Configure a metric's price."""
    response = await api.put(f"/v1/metric-prices/{metric}", json=body)
    assert response.status_code == 200, response.text


async def test_cost_so_far_has_a_per_tier_breakdown(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """1,000 units on graduated tiers cost 500 × 2¢ + 500 × 0.5¢ + $1 flat = $13.50, tier by tier."""
    app_services.pricing.projection.clock = lambda: NOW
    await price(api, "api_calls", {"price": GRADUATED})
    await send(api, daily_events("cus_1", "api_calls", range(1, 11), 100))
    response = await api.post("/v1/usage/projection", json={"customerRef": "cus_1"})
    assert response.status_code == 200, response.text
    body = response.json()
    line = body["lineItems"][0]
    assert line["metric"] == "api_calls" and line["priced"] is True
    assert line["priceSource"] == "configured"
    assert Decimal(str(line["quantity"])) == 1000
    assert line["amount"] == 1350
    assert Decimal(str(line["total"])) == Decimal("13.5")
    tiers = [
        (t["tier"], Decimal(str(t["quantity"])), Decimal(str(t["amountExact"])))
        for t in line["tiers"]
    ]
    assert tiers == [(1, 500, 1000), (2, 500, 350)]
    assert Decimal(str(body["subtotal"])) == Decimal("13.5")
    assert body["currency"] == "usd"
    assert body["periodStart"] == "2026-03-01T00:00:00Z"
