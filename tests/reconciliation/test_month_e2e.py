"""A month of usage against the fake Stripe on a test clock: the draft invoice equals our totals,
a corrupted Stripe total is caught, the invoice held, repaired and released, and the period closes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from stripemeter.api.app import Services
from tests.fake_stripe.conftest import WebhookReceiver
from tests.reconciliation.conftest import relay
from tests.stripe_sync.conftest import FakeStripe

T0 = datetime(2026, 10, 1, tzinfo=UTC)  # a calendar month that ended before the tests run
T1 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _call(fake: FakeStripe, method: str, path: str, **params: Any) -> Any:
    """A test-mode call (test clocks live there)."""
    return fake.call(method, path, live=False, **params)


class Month:
    """Drives the fake's test clock and our pusher's clock together."""

    def __init__(self, fake: FakeStripe, services: Services, clock_id: str) -> None:
        self.fake = fake
        self.services = services
        self.clock_id = clock_id
        self.now = T0
        services.stripe_sync.pusher.clock = lambda: self.now
        services.reconciliation.reconciler.clock = lambda: self.now

    def advance(self, to: datetime) -> None:
        self.now = to
        _call(
            self.fake,
            "POST",
            f"/v1/test_helpers/test_clocks/{self.clock_id}/advance",
            frozen_time=int(to.timestamp()),
        )


def _stripe_total(fake: FakeStripe, meter: str, customer: str) -> Decimal:
    page = _call(
        fake,
        "GET",
        f"/v1/billing/meters/{meter}/event_summaries",
        customer=customer,
        start_time=int(T0.timestamp()),
        end_time=int(T1.timestamp()),
    )
    return sum((Decimal(str(s["aggregated_value"])) for s in page["data"]), Decimal(0))


async def _setup(api: httpx.AsyncClient, fake: FakeStripe) -> dict[str, Any]:
    meter = fake.meter("api_calls", live=False)
    clock = _call(fake, "POST", "/v1/test_helpers/test_clocks", frozen_time=int(T0.timestamp()))
    price = _call(
        fake,
        "POST",
        "/v1/prices",
        currency="usd",
        unit_amount=2,
        **{
            "product_data[name]": "API calls",
            "recurring[interval]": "month",
            "recurring[usage_type]": "metered",
            "recurring[meter]": meter,
        },
    )
    customers = {}
    for ref in ("c1", "c2"):
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
            "metric": "api_calls",
            "aggregation": "sum",
            "meterEventName": "api_calls",
            "priceId": price["id"],
        },
    )
    assert mapping.status_code == 201, mapping.text
    return {"meter": meter, "clock": clock["id"], "price": price["id"], "customers": customers}


async def test_month_with_duplicates_late_events_and_outage_ends_in_parity(
    api: httpx.AsyncClient,
    fake: FakeStripe,
    receiver: WebhookReceiver,
    app_services: Services,
) -> None:
    """Usage all month; at period end c1's draft matches, c2's corrupted total is held, repaired, released."""
    ids = await _setup(api, fake)
    month = Month(fake, app_services, ids["clock"])
    account = app_services.stripe_sync.accounts.live
    assert account is not None
    account.breaker.reset_timeout = 0.3  # the outage opens the breaker; let it probe soon after
    inbox_start = len(receiver.received)
    expected = {"c1": Decimal(0), "c2": Decimal(0)}
    for day in range(30):
        at = T0 + day * DAY + timedelta(hours=12)
        month.advance(at + timedelta(hours=1))
        batch = []
        for ref, quantity in (("c1", Decimal(day + 1)), ("c2", Decimal("2.5"))):
            key = f"{ref}-{day}"
            batch.append(
                {
                    "metric": "api_calls",
                    "customerRef": ref,
                    "quantity": str(quantity),
                    "ts": _ts(at),
                    "idempotencyKey": key,
                }
            )
            expected[ref] += quantity
        # Retries of yesterday's batch: duplicates, never counted twice.
        if day:
            batch.append(
                {
                    "metric": "api_calls",
                    "customerRef": "c1",
                    "quantity": str(day),
                    "ts": _ts(at - DAY),
                    "idempotencyKey": f"c1-{day - 1}",
                }
            )
        # A late event inside the lateness window (a day behind the watermark): counted.
        if day % 5 == 4:
            batch.append(
                {
                    "metric": "api_calls",
                    "customerRef": "c2",
                    "quantity": "1",
                    "ts": _ts(at - DAY - timedelta(hours=3)),
                    "idempotencyKey": f"late-{day}",
                }
            )
            expected["c2"] += 1
        response = await api.post("/v1/events/ingest", json={"events": batch})
        assert response.status_code == 200, response.text
        assert all(r["status"] in ("accepted", "duplicate") for r in response.json()["results"])
        if day == 10:
            # Stripe is down for a while: every push fails and is rescheduled.
            fake.control.fault(kind="server_error", count=1000, path="/v1/billing/meter_events")
        if day == 13:
            fake.control.http.delete("/_control/faults").raise_for_status()
            await asyncio.sleep(0.4)
        summary = (await api.post("/v1/pushes/flush", json={})).json()
        if 10 <= day < 13:
            assert "delivered" not in summary["results"]
    assert _stripe_total(fake, ids["meter"], ids["customers"]["c1"]) == expected["c1"]
    # Someone sends a meter event straight to Stripe: c2's Stripe total is now 40 too high.
    _call(
        fake,
        "POST",
        "/v1/billing/meter_events",
        event_name="api_calls",
        **{
            "payload[stripe_customer_id]": ids["customers"]["c2"],
            "payload[value]": "40",
            "timestamp": int((month.now - timedelta(hours=1)).timestamp()),
        },
    )
    # Period end: Stripe drafts both invoices and tells us.
    month.advance(T1 + timedelta(seconds=30))
    answers = await relay(api, receiver, inbox_start, wait_for=4)
    await app_services.reconciliation.webhooks.drain()
    created = [a for a in answers if a["type"] == "invoice.created"]
    assert len(created) == 2
    assert not any(a["duplicate"] for a in answers)
    invoices = {
        ref: _call(fake, "GET", "/v1/invoices", customer=cid)["data"][0]
        for ref, cid in ids["customers"].items()
    }
    parity = {
        ref: (await api.get(f"/v1/invoices/{inv['id']}/parity")).json()
        for ref, inv in invoices.items()
    }
    assert parity["c1"]["status"] == "ok", parity["c1"]
    assert parity["c2"]["status"] == "released", __import__("json").dumps(parity["c2"]["actions"])
    steps = [a["action"] for a in parity["c2"]["actions"]]
    assert steps.index("held") < steps.index("repaired") < steps.index("released")
    for ref, invoice in invoices.items():
        fresh = _call(fake, "GET", f"/v1/invoices/{invoice['id']}")
        line = fresh["lines"]["data"][0]
        assert Decimal(str(line["quantity_decimal"])) == expected[ref]
        assert fresh["auto_advance"] is True
        assert fresh["total"] == int((expected[ref] * 2).to_integral_value())
    alerts = (await api.get("/v1/reconciliation/alerts")).json()["data"]
    assert [a["subject"] for a in alerts] == [invoices["c2"]["id"]]
    assert alerts[0]["resolvedAt"] is not None
    report = (await api.get("/v1/reconciliation", params={"period": "2026-10"})).json()
    statuses = {(r["customerRef"], r["status"]) for r in report["reports"]}
    assert statuses == {("c1", "ok"), ("c2", "ok")}
    # Finalization closes the period; a correction for it becomes a true-up on the next invoice.
    before = len(receiver.received)
    month.advance(T1 + timedelta(hours=2))
    await relay(api, receiver, before, wait_for=2)
    await app_services.reconciliation.webhooks.drain()
    assert _call(fake, "GET", f"/v1/invoices/{invoices['c1']['id']}")["status"] == "open"
    approver = await app_services.keys.create("acme", "adjustments:approve")
    created_adj = await api.post(
        "/v1/adjustments",
        json={
            "metric": "api_calls",
            "customerRef": "c1",
            "period": "2026-10",
            "delta": 50,
            "reason": "correction",
            "note": "missed batch",
        },
    )
    assert created_adj.status_code == 201, created_adj.text
    approved = await api.post(
        f"/v1/adjustments/{created_adj.json()['id']}/approve",
        headers={"Authorization": f"Bearer {approver.key}"},
    )
    assert approved.status_code == 200, approved.text
    delivery = approved.json()["delivery"]
    assert approved.json()["tier"] == "true_up"
    assert delivery["trueUps"][0]["status"] == "sent"
    assert delivery["trueUps"][0]["amount"] == 100
    items = _call(fake, "GET", "/v1/invoiceitems", customer=ids["customers"]["c1"])["data"]
    assert [i["amount"] for i in items] == [100]
    again = (await api.post("/v1/reconciliation/run", json={"period": "2026-10"})).json()
    assert {r["status"] for r in again["reports"]} == {"ok"}
