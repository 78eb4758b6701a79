"""The pre-invoice parity gate for a max metric published to a Stripe `last` meter, over a month
on the fake's test clock: a clean draft passes, a corrupted one is held, repaired and released."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from tests.fake_stripe.conftest import WebhookReceiver
from tests.reconciliation.conftest import relay
from tests.reconciliation.test_month_e2e import DAY, T0, T1, Month, _call, _stripe_total, _ts
from tests.stripe_sync.conftest import FakeStripe

#: Seats reported per day (a gauge): our counter keeps the month's maximum.
SEATS = {
    "c1": [3, 8, 5, 5, 12, 7, 2, 9, 4, 6],
    "c2": [1, 1, 4, 2, 2, 6, 3, 3, 5, 1],
}


async def _setup(api: httpx.AsyncClient, fake: FakeStripe) -> dict[str, Any]:
    meter = fake.meter("seats", "last", live=False)
    clock = _call(fake, "POST", "/v1/test_helpers/test_clocks", frozen_time=int(T0.timestamp()))
    price = _call(
        fake,
        "POST",
        "/v1/prices",
        currency="usd",
        unit_amount=300,
        **{
            "product_data[name]": "Seats",
            "recurring[interval]": "month",
            "recurring[usage_type]": "metered",
            "recurring[meter]": meter,
        },
    )
    customers = {}
    for ref in SEATS:
        customer = _call(fake, "POST", "/v1/customers", test_clock=clock["id"])["id"]
        _call(
            fake, "POST", "/v1/subscriptions", customer=customer, **{"items[0][price]": price["id"]}
        )
        customers[ref] = customer
        created = await api.post(
            "/v1/customers", json={"customerRef": ref, "stripeCustomerId": customer}
        )
        assert created.status_code == 201, created.text
    mapping = await api.post(
        "/v1/mappings",
        json={
            "metric": "seats",
            "aggregation": "max",
            "meterEventName": "seats",
            "priceId": price["id"],
        },
    )
    assert mapping.status_code == 201, mapping.text
    return {"meter": meter, "clock": clock["id"], "price": price["id"], "customers": customers}


@pytest.mark.parametrize(
    "foreign_at", ["after_our_last_push", "in_the_last_hour", "zero_in_the_last_hour"]
)
async def test_max_metric_on_a_last_meter_passes_or_is_held_repaired_and_released(
    api: httpx.AsyncClient,
    fake: FakeStripe,
    receiver: WebhookReceiver,
    app_services: Services,
    foreign_at: str,
) -> None:
    """Seats all month; c1's draft line equals our max; c2's, overwritten by a later foreign
    event, is held, resent (the value replaces Stripe's), re-verified and released."""
    ids = await _setup(api, fake)
    month = Month(fake, app_services, ids["clock"])
    inbox_start = len(receiver.received)
    for index in range(10):
        at = T0 + 3 * index * DAY + timedelta(hours=12)
        month.advance(at + timedelta(hours=1))
        batch = [
            {
                "metric": "seats",
                "customerRef": ref,
                "quantity": values[index],
                "ts": _ts(at),
                "idempotencyKey": f"{ref}-{index}",
            }
            for ref, values in SEATS.items()
        ]
        response = await api.post("/v1/events/ingest", json={"events": batch})
        assert response.status_code == 200, response.text
        assert {r["status"] for r in response.json()["results"]} == {"accepted"}
        await api.post("/v1/pushes/flush", json={})
    expected = {ref: Decimal(max(values)) for ref, values in SEATS.items()}
    for ref, customer in ids["customers"].items():
        assert _stripe_total(fake, ids["meter"], customer) == expected[ref]
    # Someone reports c2's seats straight to Stripe, later than our last push: `last` takes it.
    foreign = month.now - timedelta(minutes=30)
    foreign_value = "0" if foreign_at.startswith("zero") else "40"
    if foreign_at.endswith("in_the_last_hour"):
        # Past our last/max reserve: the repair must find it and stamp after it (a zero last
        # value cannot be located in the summaries: the repair takes the latest instant).
        month.advance(T1 - timedelta(minutes=5))
        foreign = T1 - timedelta(minutes=8)
    _call(
        fake,
        "POST",
        "/v1/billing/meter_events",
        event_name="seats",
        **{
            "payload[stripe_customer_id]": ids["customers"]["c2"],
            "payload[value]": foreign_value,
            "timestamp": int(foreign.timestamp()),
        },
    )
    assert _stripe_total(fake, ids["meter"], ids["customers"]["c2"]) == Decimal(foreign_value)
    # Period end: Stripe drafts both invoices and tells us.
    month.advance(T1 + timedelta(seconds=30))
    answers = await relay(api, receiver, inbox_start, wait_for=4)
    await app_services.reconciliation.webhooks.drain()
    assert len([a for a in answers if a["type"] == "invoice.created"]) == 2
    invoices = {
        ref: _call(fake, "GET", "/v1/invoices", customer=cid)["data"][0]
        for ref, cid in ids["customers"].items()
    }
    parity = {
        ref: (await api.get(f"/v1/invoices/{inv['id']}/parity")).json()
        for ref, inv in invoices.items()
    }
    assert parity["c1"]["status"] == "ok", parity["c1"]
    assert parity["c2"]["status"] == "released", parity["c2"]
    steps = [a["action"] for a in parity["c2"]["actions"]]
    assert "held" not in [a["action"] for a in parity["c1"]["actions"]]
    assert steps.index("held") < steps.index("repaired") < steps.index("released")
    for ref, invoice in invoices.items():
        fresh = _call(fake, "GET", f"/v1/invoices/{invoice['id']}")
        line = fresh["lines"]["data"][0]
        assert Decimal(str(line["quantity_decimal"])) == expected[ref]
        assert fresh["auto_advance"] is True
        assert fresh["total"] == int(expected[ref] * 300)
    assert _stripe_total(fake, ids["meter"], ids["customers"]["c2"]) == expected["c2"]
    alerts = (await api.get("/v1/reconciliation/alerts")).json()["data"]
    assert [a["subject"] for a in alerts] == [invoices["c2"]["id"]]
    assert alerts[0]["resolvedAt"] is not None
    report = (await api.get("/v1/reconciliation", params={"period": "2026-10"})).json()
    statuses = {(r["customerRef"], r["status"]) for r in report["reports"]}
    assert statuses == {("c1", "ok"), ("c2", "ok")}
