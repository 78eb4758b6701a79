"""A subscription anchored on the 15th, against the fake Stripe on a test clock: counters, usage and
pushes follow its periods, and the draft invoice of each anchored period equals our pushed total."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from stripemeter.api.app import Services
from stripemeter.domain.webhook_signatures import signature_header
from stripemeter.store.tables import counters
from tests.fake_stripe.conftest import WEBHOOK_SECRET, WebhookReceiver
from tests.reconciliation.conftest import relay
from tests.stripe_sync.conftest import FakeStripe

START = datetime(2026, 8, 10, tzinfo=UTC)  # the subscription starts here (periods ended before now)
AUG15 = datetime(2026, 8, 15, tzinfo=UTC)  # its billing-cycle anchor
SEP15 = datetime(2026, 9, 15, tzinfo=UTC)
OCT15 = datetime(2026, 10, 15, tzinfo=UTC)


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _call(fake: FakeStripe, method: str, path: str, **params: Any) -> Any:
    return fake.call(method, path, live=False, **params)


class Clock:
    """Moves the fake's test clock and our pusher's and reconciler's clocks together."""

    def __init__(self, fake: FakeStripe, services: Services, clock_id: str) -> None:
        self.fake, self.clock_id, self.now = fake, clock_id, START
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


async def _setup(
    api: httpx.AsyncClient, fake: FakeStripe, *, subscribe: bool = True, map_customer: bool = True
) -> dict[str, str]:
    meter = fake.meter("api_calls", live=False)
    clock = _call(fake, "POST", "/v1/test_helpers/test_clocks", frozen_time=int(START.timestamp()))
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
    customer = _call(fake, "POST", "/v1/customers", test_clock=clock["id"])["id"]
    if subscribe:
        _subscribe(fake, customer, price["id"])
    if map_customer:
        await _map(api, customer)
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
    return {"meter": meter, "clock": clock["id"], "price": price["id"], "customer": customer}


async def _map(api: httpx.AsyncClient, customer: str) -> None:
    created = await api.post(
        "/v1/customers", json={"customerRef": "c1", "stripeCustomerId": customer}
    )
    assert created.status_code == 201, created.text


def _stripe_total(
    fake: FakeStripe, meter: str, customer: str, start: datetime, end: datetime
) -> Decimal:
    page = _call(
        fake,
        "GET",
        f"/v1/billing/meters/{meter}/event_summaries",
        customer=customer,
        start_time=int(start.timestamp()),
        end_time=int(end.timestamp()),
    )
    return sum((Decimal(str(x["aggregated_value"])) for x in page["data"]), Decimal(0))


def _subscribe(fake: FakeStripe, customer: str, price: str) -> None:
    _call(
        fake,
        "POST",
        "/v1/subscriptions",
        customer=customer,
        billing_cycle_anchor=int(AUG15.timestamp()),
        **{"items[0][price]": price},
    )


async def _ingest(api: httpx.AsyncClient, at: datetime, quantity: int, key: str) -> None:
    response = await api.post(
        "/v1/events/ingest",
        json={
            "events": [
                {
                    "metric": "api_calls",
                    "customerRef": "c1",
                    "quantity": quantity,
                    "ts": _ts(at),
                    "idempotencyKey": key,
                }
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "accepted", response.text


async def _counters(services: Services) -> dict[datetime, tuple[datetime, Decimal]]:
    async with services.db.read() as conn:
        rows = await conn.execute(select(counters).where(counters.c.customer_ref == "c1"))
        return {r["period_start"]: (r["period_end"], r["sum"]) for r in rows.mappings()}


async def _pushed(api: httpx.AsyncClient) -> dict[str, Decimal]:
    rows = (await api.get("/v1/pushes", params={"customerRef": "c1"})).json()["data"]
    return {r["periodStart"]: Decimal(str(r["pushedTotal"])) for r in rows if r["target"] == "live"}


def _invoice_quantity(fake: FakeStripe, customer: str, period_start: datetime) -> Decimal:
    invoices = _call(fake, "GET", "/v1/invoices", customer=customer)["data"]
    [invoice] = [i for i in invoices if i["period_start"] == int(period_start.timestamp())]
    [line] = invoice["lines"]["data"]
    assert line["period"]["start"] == int(period_start.timestamp())
    return Decimal(str(line["quantity_decimal"]))


async def test_an_anchor_on_the_15th_keys_counters_pushes_and_invoices_alike(
    api: httpx.AsyncClient,
    fake: FakeStripe,
    receiver: WebhookReceiver,
    app_services: Services,
) -> None:
    """Sep 14 and Sep 16 land in two periods; each pushed total equals its invoice line at Stripe."""
    ids = await _setup(api, fake)
    clock = Clock(fake, app_services, ids["clock"])
    jul15 = datetime(2026, 7, 15, tzinfo=UTC)

    # Ingested before anything asked Stripe (one event even before the subscription started):
    # calendar counters, re-keyed when the pusher learns the cycle, before it creates any row.
    clock.advance(datetime(2026, 8, 12, 12, tzinfo=UTC))
    await _ingest(api, datetime(2026, 8, 9, 12, tzinfo=UTC), 2, "early")
    await _ingest(api, datetime(2026, 8, 12, 10, tzinfo=UTC), 1, "first")
    assert set(await _counters(app_services)) == {datetime(2026, 8, 1, tzinfo=UTC)}
    await api.post("/v1/pushes/flush", json={})
    assert await _counters(app_services) == {jul15: (AUG15, Decimal(3))}
    assert await _pushed(api) == {_ts(jul15): Decimal(3)}

    # Stripe's short first period [Aug 10, Aug 15) holds those pushes; the gate compares its
    # invoice with the anchored period ending with it.
    inbox = len(receiver.received)
    clock.advance(AUG15 + timedelta(minutes=30))
    answers = await relay(api, receiver, inbox, wait_for=1)
    await app_services.reconciliation.webhooks.drain()
    assert [a["type"] for a in answers] == ["invoice.created"]
    short = datetime(2026, 8, 10, tzinfo=UTC)
    assert _invoice_quantity(fake, ids["customer"], short) == Decimal(3)
    [first] = [
        i
        for i in _call(fake, "GET", "/v1/invoices", customer=ids["customer"])["data"]
        if i["period_start"] == int(short.timestamp())
    ]
    assert (await api.get(f"/v1/invoices/{first['id']}/parity")).json()["status"] == "ok"

    clock.advance(datetime(2026, 9, 14, 12, tzinfo=UTC))
    await _ingest(api, datetime(2026, 9, 14, 10, tzinfo=UTC), 3, "a")
    await api.post("/v1/pushes/flush", json={})
    assert await _counters(app_services) == {
        jul15: (AUG15, Decimal(3)),
        AUG15: (SEP15, Decimal(3)),
    }
    assert await _pushed(api) == {_ts(jul15): Decimal(3), _ts(AUG15): Decimal(3)}

    # Stripe drafts the invoice of [Aug 15, Sep 15) at the anchor: the pre-invoice gate compares
    # it with our total for the very same period, and the line equals what we pushed for it.
    inbox = len(receiver.received)
    clock.advance(SEP15 + timedelta(minutes=30))
    answers = await relay(api, receiver, inbox, wait_for=1)
    await app_services.reconciliation.webhooks.drain()
    assert [a["type"] for a in answers] == ["invoice.created"]
    assert _invoice_quantity(fake, ids["customer"], AUG15) == Decimal(3)
    [draft] = [
        i
        for i in _call(fake, "GET", "/v1/invoices", customer=ids["customer"])["data"]
        if i["period_start"] == int(AUG15.timestamp())
    ]
    parity = (await api.get(f"/v1/invoices/{draft['id']}/parity")).json()
    assert (parity["status"], parity["periodStart"]) == ("ok", _ts(AUG15)), parity

    # Finalized an hour later: the period closes, and an event of Sep 14 is held; Sep 16 counts.
    inbox = len(receiver.received)
    clock.advance(datetime(2026, 9, 20, 12, tzinfo=UTC))
    await relay(api, receiver, inbox, wait_for=1)
    await app_services.reconciliation.webhooks.drain()
    late = await api.post(
        "/v1/events/ingest",
        json={"events": [{"metric": "api_calls", "customerRef": "c1", "quantity": 9,
                          "ts": _ts(datetime(2026, 9, 14, 23, tzinfo=UTC))}]},
    )  # fmt: skip
    assert late.json()["results"][0]["reason"] == "period_closed", late.text
    await _ingest(api, datetime(2026, 9, 16, 10, tzinfo=UTC), 5, "b")
    await _ingest(api, datetime(2026, 9, 20, 10, tzinfo=UTC), 2, "c")
    await api.post("/v1/pushes/flush", json={})
    assert await _counters(app_services) == {
        jul15: (AUG15, Decimal(3)),
        AUG15: (SEP15, Decimal(3)),
        SEP15: (OCT15, Decimal(7)),
    }
    assert await _pushed(api) == {
        _ts(jul15): Decimal(3),
        _ts(AUG15): Decimal(3),
        _ts(SEP15): Decimal(7),
    }
    current = await api.get("/v1/usage/current", params={"customerRef": "c1", "period": "2026-09"})
    assert current.json()["period"] == {"start": _ts(SEP15), "end": _ts(OCT15)}
    assert current.json()["metrics"][0]["value"] == 7

    inbox = len(receiver.received)
    clock.advance(OCT15 + timedelta(minutes=30))
    answers = await relay(api, receiver, inbox, wait_for=2)
    await app_services.reconciliation.webhooks.drain()
    assert "invoice.created" in {a["type"] for a in answers}
    assert _invoice_quantity(fake, ids["customer"], SEP15) == Decimal(7)
    report = (await api.get("/v1/reconciliation", params={"period": "2026-09"})).json()
    statuses = {(r["periodStart"], r["status"]) for r in report["reports"]}
    assert (_ts(SEP15), "ok") in statuses, report


async def test_a_subscription_webhook_re_keys_counters_at_once(
    api: httpx.AsyncClient,
    fake: FakeStripe,
    app_services: Services,
) -> None:
    """Usage before the subscription is on calendar months; its created webhook re-keys it."""
    ids = await _setup(api, fake, subscribe=False)
    Clock(fake, app_services, ids["clock"])
    await _ingest(api, datetime(2026, 8, 12, 10, tzinfo=UTC), 1, "a")
    await _ingest(api, datetime(2026, 8, 20, 10, tzinfo=UTC), 4, "b")
    # Asked (as the pusher does before its first rows): no subscription yet, calendar months.
    pusher = app_services.stripe_sync.pusher
    assert await pusher.cycles.refresh("acme", "c1", source="pusher") is False
    assert await _counters(app_services) == {
        datetime(2026, 8, 1, tzinfo=UTC): (datetime(2026, 9, 1, tzinfo=UTC), Decimal(5))
    }
    _subscribe(fake, ids["customer"], ids["price"])
    subscription = _call(fake, "GET", "/v1/subscriptions", customer=ids["customer"])["data"][0]
    body = json.dumps(
        {
            "id": "evt_subscription_created",
            "object": "event",
            "type": "customer.subscription.created",
            "livemode": False,
            "created": int(time.time()),
            "data": {"object": subscription},
        }
    ).encode()
    response = await api.post(
        "/v1/webhooks/stripe",
        content=body,
        headers={
            "Stripe-Signature": signature_header(body, WEBHOOK_SECRET, int(time.time())),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    await app_services.reconciliation.webhooks.drain()
    assert await _counters(app_services) == {
        datetime(2026, 7, 15, tzinfo=UTC): (AUG15, Decimal(1)),
        AUG15: (SEP15, Decimal(4)),
    }
    replay = (await api.post("/v1/replay", json={"mode": "dry-run"})).json()
    assert replay["differences"] == []


async def test_a_row_filed_before_the_cycle_was_known_never_pushes_its_old_period(
    api: httpx.AsyncClient,
    fake: FakeStripe,
    app_services: Services,
) -> None:
    """A calendar row parked for an unmapped customer is superseded once the mapping brings the
    anchored cycle: un-parked, it sends nothing, and Stripe's total is exactly ours."""
    ids = await _setup(api, fake, map_customer=False)
    clock = Clock(fake, app_services, ids["clock"])
    clock.advance(datetime(2026, 8, 21, 12, tzinfo=UTC))
    await _ingest(api, datetime(2026, 8, 12, 10, tzinfo=UTC), 1, "a")
    await _ingest(api, datetime(2026, 8, 20, 10, tzinfo=UTC), 4, "b")
    await api.post("/v1/pushes/flush", json={})
    rows = (await api.get("/v1/pushes", params={"customerRef": "c1"})).json()["data"]
    assert [(r["periodStart"], r["status"]) for r in rows] == [("2026-08-01T00:00:00Z", "parked")]

    await _map(api, ids["customer"])  # un-parks the calendar row; the cycle is asked first
    await api.post("/v1/pushes/flush", json={})
    assert await _counters(app_services) == {
        datetime(2026, 7, 15, tzinfo=UTC): (AUG15, Decimal(1)),
        AUG15: (SEP15, Decimal(4)),
    }
    assert await _pushed(api) == {
        "2026-08-01T00:00:00Z": Decimal(0),
        "2026-07-15T00:00:00Z": Decimal(1),
        _ts(AUG15): Decimal(4),
    }
    window = (datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 9, 30, tzinfo=UTC))
    assert _stripe_total(fake, ids["meter"], ids["customer"], *window) == Decimal(5)
