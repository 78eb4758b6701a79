"""`/v1/usage/projection`: usage and cost so far with tiers, run-rate projection, unpriced metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe

from stripemeter.api.app import Services
from stripemeter.store.tables import price_mappings
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
PER_UNIT_2C = {"currency": "usd", "unit_amount": 2}


def dec(value: Any) -> Decimal:
    """A JSON number as an exact Decimal."""
    return Decimal(str(value))


def daily(customer: str, metric: str, days: range, quantity: int) -> list[dict[str, Any]]:
    """One event per day at noon UTC in March 2026."""
    return [
        {"metric": metric, "customerRef": customer, "quantity": quantity,
         "ts": f"2026-03-{day:02d}T12:00:00Z"}
        for day in days
    ]  # fmt: skip


async def send(api: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    """Ingest events and check every one was accepted."""
    response = await api.post("/v1/events/ingest", json={"events": events})
    assert response.status_code == 200, response.text
    assert all(r["status"] == "accepted" for r in response.json()["results"]), response.text


async def set_price(
    api: httpx.AsyncClient, metric: str, price: dict[str, Any], **extra: Any
) -> None:
    """Configure a metric's price."""
    response = await api.put(f"/v1/metric-prices/{metric}", json={"price": price, **extra})
    assert response.status_code == 200, response.text


async def project(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """POST a projection and return the body."""
    response = await api.post("/v1/usage/projection", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
def fixed_clock(app_services: Services) -> None:
    """The projection's clock stands at NOW."""
    app_services.pricing.projection.clock = lambda: NOW


@pytest.mark.usefixtures("fixed_clock")
class TestCostSoFar:
    async def test_per_tier_breakdown(self, api: httpx.AsyncClient) -> None:
        """1,000 units on graduated tiers cost 500 x 2c + 500 x 0.5c + $1 flat = $13.50, tier by tier."""
        await set_price(api, "api_calls", GRADUATED)
        await send(api, daily("cus_1", "api_calls", range(1, 11), 100))
        body = await project(api, customerRef="cus_1")
        line = body["lineItems"][0]
        assert (line["metric"], line["priced"], line["priceSource"]) == (
            "api_calls",
            True,
            "configured",
        )
        assert dec(line["quantity"]) == 1000
        assert line["amount"] == 1350
        assert dec(line["total"]) == Decimal("13.5")
        tiers = [(t["tier"], dec(t["quantity"]), dec(t["amountExact"])) for t in line["tiers"]]
        assert tiers == [(1, Decimal(500), Decimal(1000)), (2, Decimal(500), Decimal(350))]
        assert dec(body["subtotal"]) == Decimal("13.5")
        assert dec(body["total"]) == Decimal("13.5")
        assert body["currency"] == "usd"
        assert body["periodStart"] == "2026-03-01T00:00:00Z"
        assert body["periodEnd"] == "2026-04-01T00:00:00Z"
        assert body["complete"] is True
        assert body["freshness"]["lastUpdate"] is not None

    async def test_credits_and_tax_are_applied_in_order(self, api: httpx.AsyncClient) -> None:
        """Credits are drawn before an exclusive tax: ($20 - $5) x 10 % = $1.50 tax, $16.50 total."""
        await set_price(api, "api_calls", PER_UNIT_2C)
        await send(api, daily("cus_1", "api_calls", range(1, 11), 100))
        body = await project(api, customerRef="cus_1", taxRate=10, credits=[{"amount": 5}])
        assert (dec(body["subtotal"]), dec(body["credits"])) == (Decimal(20), Decimal(5))
        assert (dec(body["tax"]), dec(body["total"])) == (Decimal("1.5"), Decimal("16.5"))

    async def test_minimum_charge_applies(self, api: httpx.AsyncClient) -> None:
        """A configured minimum raises a small line and is shown as a limit adjustment."""
        await set_price(api, "api_calls", PER_UNIT_2C, limits={"minimum": 50})
        await send(api, daily("cus_1", "api_calls", range(1, 2), 100))
        line = (await project(api, customerRef="cus_1"))["lineItems"][0]
        assert (line["amount"], line["limitAdjustment"]) == (5000, 4800)


@pytest.mark.usefixtures("fixed_clock")
class TestRunRate:
    async def test_projection_uses_the_recent_window(self, api: httpx.AsyncClient) -> None:
        """Sum metrics project so far + window usage per second x time left, for the chosen window."""
        await set_price(api, "api_calls", PER_UNIT_2C)
        await send(api, daily("cus_1", "api_calls", range(1, 9), 100))
        await send(api, daily("cus_1", "api_calls", range(9, 11), 400))
        week = await project(api, customerRef="cus_1")
        line = week["lineItems"][0]
        # so far 1,600; last 7 days 1,300 -> 1300/7 a day x 21 days left = 3,900
        assert dec(line["quantity"]) == 1600
        assert line["projected"]["method"] == "run_rate"
        assert dec(line["projected"]["quantity"]) == 5500
        assert dec(week["projected"]["total"]) == 110
        assert week["projection"]["windowSeconds"] == 7 * 86400
        assert week["projection"]["window"] == {"start": "2026-03-04T00:00:00Z",
                                                "end": "2026-03-11T00:00:00Z"}  # fmt: skip
        # the last 2 days: 800 -> 400 a day x 21 = 8,400
        two_days = await project(api, customerRef="cus_1", windowSeconds=2 * 86400)
        assert dec(two_days["lineItems"][0]["projected"]["quantity"]) == 10000
        assert dec(two_days["projected"]["total"]) == 200

    async def test_max_metrics_project_their_current_value(self, api: httpx.AsyncClient) -> None:
        """A max metric does not accumulate: it is projected at its current value."""
        response = await api.put("/v1/metrics/seats", json={"aggregation": "max"})
        assert response.status_code == 200, response.text
        await set_price(api, "seats", {"currency": "usd", "unit_amount": 500})
        await send(
            api,
            [*daily("cus_1", "seats", range(1, 3), 4), *daily("cus_1", "seats", range(3, 4), 7)],
        )
        line = (await project(api, customerRef="cus_1"))["lineItems"][0]
        assert dec(line["quantity"]) == 7
        assert line["amount"] == 3500
        assert line["projected"]["method"] == "current_value"
        assert dec(line["projected"]["quantity"]) == 7

    async def test_a_past_period_projects_its_actual_value(self, api: httpx.AsyncClient) -> None:
        """For an ended period the projection is the actual usage."""
        await set_price(api, "api_calls", PER_UNIT_2C)
        await send(api, [{"metric": "api_calls", "customerRef": "cus_1", "quantity": 10,
                          "ts": "2026-02-10T00:00:00Z"}])  # fmt: skip
        body = await project(api, customerRef="cus_1", period="2026-02")
        line = body["lineItems"][0]
        assert line["projected"]["method"] == "actual"
        assert dec(line["projected"]["quantity"]) == 10
        assert body["projected"]["total"] == body["total"]


@pytest.mark.usefixtures("fixed_clock")
async def test_unpriced_metrics_say_so(api: httpx.AsyncClient) -> None:
    """A metric without a price is listed with its reason and never priced at a placeholder."""
    await set_price(api, "api_calls", PER_UNIT_2C)
    await send(api, daily("cus_1", "api_calls", range(1, 3), 100))
    await send(api, daily("cus_1", "storage_gb", range(1, 3), 7))
    body = await project(api, customerRef="cus_1")
    lines = {line["metric"]: line for line in body["lineItems"]}
    storage = lines["storage_gb"]
    assert storage["priced"] is False
    assert storage["reason"] == "no_price"
    assert storage["amount"] is None
    assert storage["total"] is None
    assert dec(storage["quantity"]) == 14
    assert body["unpricedMetrics"] == ["storage_gb"]
    assert body["complete"] is False
    assert dec(body["subtotal"]) == 4


@pytest.mark.usefixtures("fixed_clock")
async def test_get_takes_query_parameters(api: httpx.AsyncClient) -> None:
    """GET answers the same projection from query parameters; unknown parameters are refused."""
    await set_price(api, "api_calls", PER_UNIT_2C)
    await send(api, daily("cus_1", "api_calls", range(1, 3), 100))
    posted = await project(api, customerRef="cus_1", windowSeconds=86400)
    got = await api.get("/v1/usage/projection",
                        params={"customerRef": "cus_1", "windowSeconds": "86400"})  # fmt: skip
    assert got.status_code == 200, got.text
    assert got.json() == posted
    bad = await api.get("/v1/usage/projection", params={"customerRef": "c", "colour": "x"})
    assert bad.status_code == 400
    missing = await api.post("/v1/usage/projection", json={})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "customerRef"


async def test_the_seed_call_works_as_written(
    client: httpx.AsyncClient, app_services: Services
) -> None:
    """The README's `{"tenantId": "your-tenant-id", "customerRef": "cus_ABC123"}` works with a key."""
    key = await issue(app_services, "your-tenant-id", "usage:read")
    response = await client.post(
        "/v1/usage/projection",
        json={"tenantId": "your-tenant-id", "customerRef": "cus_ABC123"},
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key.key}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customerRef"] == "cus_ABC123"
    assert body["lineItems"] == []
    assert dec(body["total"]) == 0


async def test_stripe_prices_are_read_through_the_mapping_and_cached(
    api: httpx.AsyncClient, app_services: Services, stripe_client: stripe.StripeClient,
    fake_stripe_url: str,
) -> None:  # fmt: skip
    """A mapped metric is priced with its Stripe price, read once, and re-read after price.updated."""
    params: Any = {"currency": "usd", "unit_amount_decimal": "0.5", "product_data": {"name": "API"}}
    created = stripe_client.v1.prices.create(params)
    now = datetime.now(UTC)
    async with app_services.db.write() as conn:
        await conn.execute(
            price_mappings.insert().values(
                id="map_1", tenant_id="acme", metric="api_calls", aggregation="sum",
                driver="meters", stripe_account="default", price_id=created.id, currency="usd",
                active=True, shadow=False, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    await send(api, [{"metric": "api_calls", "customerRef": "cus_1", "quantity": 3,
                      "ts": now.strftime("%Y-%m-%dT%H:%M:%SZ")}])  # fmt: skip
    async with httpx.AsyncClient(base_url=fake_stripe_url) as control:
        await control.delete("/_control/requests")

        async def retrievals() -> int:
            log = await control.get(
                "/_control/requests", params={"path": f"/v1/prices/{created.id}"}
            )
            return len(log.json()["requests"])

        first = await project(api, customerRef="cus_1")
        line = first["lineItems"][0]
        assert (line["priceSource"], line["priceId"], line["amount"]) == ("stripe", created.id, 2)
        await project(api, customerRef="cus_1")
        assert await retrievals() == 1
        app_services.pricing.price_updated(created.id)
        await project(api, customerRef="cus_1")
        assert await retrievals() == 2


async def test_an_unreachable_stripe_is_reported_not_priced(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A mapping whose Stripe price cannot be read leaves the metric unpriced with the reason."""
    now = datetime.now(UTC)
    async with app_services.db.write() as conn:
        await conn.execute(
            price_mappings.insert().values(
                id="map_2", tenant_id="acme", metric="api_calls", aggregation="sum",
                driver="meters", stripe_account="default", price_id="price_missing",
                active=True, shadow=False, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    body = await project(api, customerRef="cus_1")
    line = body["lineItems"][0]
    assert line["priced"] is False
    assert line["reason"] == "stripe_price_not_found"
