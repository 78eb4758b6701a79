"""Shadow pushes stay in test mode; legacy usage records end at the local total."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from stripemeter.api.app import Services, create_app
from tests.conftest import issue
from tests.stripe_sync.conftest import FakeStripe, flush, ingest, sync_settings


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite is enough here: these tests are about where pushes go, not the database."""
    return "sqlite"


async def test_shadow_pushes_reach_test_mode_only(api: httpx.AsyncClient, fake: FakeStripe) -> None:
    """A shadow mapping pushes the same totals to the test-mode account; live sees its own only."""
    live_meter = fake.meter("api_calls")
    test_meter = fake.meter("api_calls_shadow", live=False)
    created = await api.post(
        "/v1/mappings",
        json={
            "metric": "api_calls",
            "aggregation": "sum",
            "meterEventName": "api_calls",
            "shadow": True,
            "shadowMeterEventName": "api_calls_shadow",
        },
    )
    assert created.status_code == 201, created.text
    live_customer = fake.customer()
    test_customer = fake.customer(live=False)
    await api.post(
        "/v1/customers",
        json={
            "customerRef": "c1",
            "stripeCustomerId": live_customer,
            "shadowStripeCustomerId": test_customer,
        },
    )
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 11})
    result = await flush(api)
    assert result["results"] == {"delivered": 2}
    assert fake.meter_total(live_meter, live_customer) == 11
    assert fake.meter_total(test_meter, test_customer, live=False) == 11
    by_key: dict[str, set[str]] = {}
    for request in fake.accepted_events():
        by_key.setdefault(request["params"]["event_name"], set()).add(
            request["params"]["payload"]["stripe_customer_id"]
        )
    # The shadow event went out under the test key only (the fake keeps modes apart).
    assert by_key == {"api_calls": {live_customer}, "api_calls_shadow": {test_customer}}
    rows = (await api.get("/v1/pushes")).json()["data"]
    assert sorted(r["target"] for r in rows) == ["live", "shadow"]


async def test_shadow_without_a_test_key_is_skipped_never_live(
    database_url: str, fake_url: str, fake: FakeStripe
) -> None:
    """Without STRIPE_TEST_SECRET_KEY a shadow row is skipped with a warning; live gets one push."""
    settings = sync_settings(database_url, fake_url, stripe_test_secret_key=None)
    services = Services.build(settings)
    app = create_app(settings, services=services)
    async with LifespanManager(app):
        key = await issue(services, "acme")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"Authorization": f"Bearer {key.key}"}
        ) as api:
            meter = fake.meter("api_calls")
            await api.post(
                "/v1/mappings",
                json={
                    "metric": "api_calls",
                    "aggregation": "sum",
                    "meterEventName": "api_calls",
                    "shadow": True,
                },
            )
            customer = fake.customer()
            await api.post(
                "/v1/customers", json={"customerRef": "c1", "stripeCustomerId": customer}
            )
            await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 3})
            result = await flush(api)
            assert result["results"] == {"delivered": 1, "skipped": 1}
            assert fake.meter_total(meter, customer) == 3  # once, not twice
            assert len(fake.accepted_events()) == 1
            shadow = [
                r for r in (await api.get("/v1/pushes")).json()["data"] if r["target"] == "shadow"
            ]
            assert "no STRIPE_TEST_SECRET_KEY" in shadow[0]["lastError"]


def _legacy_item(fake: FakeStripe, customer: str) -> tuple[str, str]:
    price = fake.call(
        "POST",
        "/v1/prices",
        currency="usd",
        unit_amount=10,
        **{
            "product_data[name]": "API",
            "recurring[interval]": "month",
            "recurring[usage_type]": "metered",
        },
    )
    subscription: dict[str, Any] = fake.call(
        "POST", "/v1/subscriptions", customer=customer, **{"items[0][price]": price["id"]}
    )
    return str(price["id"]), str(subscription["items"]["data"][0]["id"])


async def test_legacy_usage_records_total_matches_rounded_local_total(
    api: httpx.AsyncClient, fake: FakeStripe
) -> None:
    """Legacy pushes `set` the period total (rounded half-up) on the customer's own item."""
    customer = fake.customer()
    price, item = _legacy_item(fake, customer)
    created = await api.post(
        "/v1/mappings", json={"metric": "api_calls", "aggregation": "sum", "priceId": price}
    )
    assert created.status_code == 201, created.text
    assert created.json()["driver"] == "legacy"
    await api.post("/v1/customers", json={"customerRef": "c1", "stripeCustomerId": customer})
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": "4.5", "ts": _now()})
    await flush(api)
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 3, "ts": _now()})
    await flush(api)
    summaries = fake.call("GET", f"/v1/subscription_items/{item}/usage_record_summaries")
    assert summaries["data"][0]["total_usage"] == 8  # round(7.5) = 8, set twice at one instant
    records = fake.control.requests(f"/v1/subscription_items/{item}/usage_records")
    assert [r["params"]["action"] for r in records] == ["set", "set"]
    assert len({r["params"]["timestamp"] for r in records}) == 1
    assert Decimal(str((await api.get("/v1/pushes")).json()["data"][0]["pushedTotal"])) == Decimal(
        "7.5"
    )


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
