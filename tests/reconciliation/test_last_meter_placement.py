"""Where a last/max repair is stamped: after Stripe's latest event, found in its summaries."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx

from stripemeter.api.app import Services
from stripemeter.domain.periods import Period
from stripemeter.stripe.drivers.base import Destination
from stripemeter.stripe.drivers.meters import MeterEventsDriver
from tests.reconciliation.test_month_e2e import DAY, T0, Month, _call, _stripe_total, _ts
from tests.stripe_sync.conftest import FakeStripe


def _foreign(fake: FakeStripe, customer: str, value: str, at: int) -> None:
    """Another writer reports straight to Stripe."""
    _call(
        fake,
        "POST",
        "/v1/billing/meter_events",
        event_name="seats",
        **{"payload[stripe_customer_id]": customer, "payload[value]": value, "timestamp": at},
    )


async def test_the_latest_event_is_found_by_timestamp_not_by_arrival(
    fake: FakeStripe, app_services: Services
) -> None:
    """The search returns the minute of the event with the greatest timestamp, or None if unsure."""
    meter = fake.meter("seats", "last", live=False)
    clock = _call(fake, "POST", "/v1/test_helpers/test_clocks", frozen_time=int(T0.timestamp()))
    customer = _call(fake, "POST", "/v1/customers", test_clock=clock["id"])["id"]
    Month(fake, app_services, clock["id"]).advance(T0 + 20 * DAY)
    latest = T0 + 12 * DAY + timedelta(hours=7, minutes=41, seconds=33)
    for value, at in (("9", latest), ("5", latest - DAY), ("7", latest - timedelta(seconds=50))):
        _foreign(fake, customer, value, int(at.timestamp()))
    account = app_services.stripe_sync.accounts.live
    assert account is not None
    driver = MeterEventsDriver()
    destination = Destination(None, event_name="seats", meter_id=meter)
    period = Period(T0, T0 + 31 * DAY)
    found = await driver.latest_event_minute(account, destination, customer, period, Decimal(9))
    assert found == latest.replace(second=0)
    # Stripe's total is no longer the one reconciliation read: nothing to locate with.
    assert (
        await driver.latest_event_minute(account, destination, customer, period, Decimal(5)) is None
    )
    _foreign(fake, customer, "0", int((latest + timedelta(hours=1)).timestamp()))
    # A zero last value looks like an empty window: unknown.
    assert (
        await driver.latest_event_minute(account, destination, customer, period, Decimal(0)) is None
    )


async def test_an_event_further_ahead_than_we_may_stamp_stays_drift_until_time_catches_up(
    api: httpx.AsyncClient, fake: FakeStripe, app_services: Services
) -> None:
    """Mid-period, a foreign event 5 minutes ahead beats our 4-minute limit: the repair reports
    drift (never a false ok), and the same repair a few minutes later lands after it."""
    meter = fake.meter("seats", "last", live=False)
    clock = _call(fake, "POST", "/v1/test_helpers/test_clocks", frozen_time=int(T0.timestamp()))
    customer = _call(fake, "POST", "/v1/customers", test_clock=clock["id"])["id"]
    created = await api.post(
        "/v1/customers", json={"customerRef": "c1", "stripeCustomerId": customer}
    )
    assert created.status_code == 201, created.text
    mapping = await api.post(
        "/v1/mappings", json={"metric": "seats", "aggregation": "max", "meterEventName": "seats"}
    )
    assert mapping.status_code == 201, mapping.text
    month = Month(fake, app_services, clock["id"])
    month.advance(T0 + 10 * DAY + timedelta(hours=12))
    event = {
        "metric": "seats",
        "customerRef": "c1",
        "quantity": 6,
        "ts": _ts(month.now - timedelta(hours=1)),
    }
    response = await api.post("/v1/events/ingest", json={"events": [event]})
    assert response.status_code == 200, response.text
    await api.post("/v1/pushes/flush", json={})
    assert _stripe_total(fake, meter, customer) == Decimal(6)
    _foreign(fake, customer, "40", int((month.now + timedelta(minutes=5)).timestamp()))
    run = await api.post("/v1/reconciliation/run", json={"customerRef": "c1"})
    assert [r["status"] for r in run.json()["reports"]] == ["drift"]
    first = await _apply_open(api)
    assert first["result"]["verifiedStatus"] == "drift"
    assert _stripe_total(fake, meter, customer) == Decimal(40)
    month.advance(month.now + timedelta(minutes=3))
    second = await _apply_open(api)
    assert second["result"]["verifiedStatus"] == "ok"
    assert _stripe_total(fake, meter, customer) == Decimal(6)


async def _apply_open(api: httpx.AsyncClient) -> dict[str, Any]:
    suggestions = (await api.get("/v1/reconciliation/suggestions")).json()["data"]
    open_ = [s for s in suggestions if s["status"] == "open"]
    assert [s["kind"] for s in open_] == ["resend"], suggestions
    applied = await api.post(f"/v1/reconciliation/suggestions/{open_[0]['id']}/apply")
    assert applied.status_code == 200, applied.text
    body: dict[str, Any] = applied.json()
    return body
