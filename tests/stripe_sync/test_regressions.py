"""Regressions of the delta pusher (issue #3), each pinned by name with the case that found it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select, update

from stripemeter.api.app import Services
from stripemeter.store.tables import counters, push_log
from tests.stripe_sync.conftest import FakeStripe, ingest


class Crash(Exception):
    """Stands for the process dying at a hook step."""


async def _setup(api: httpx.AsyncClient, fake: FakeStripe) -> tuple[str, str]:
    meter = fake.meter("api_calls")
    response = await api.post(
        "/v1/mappings",
        json={"metric": "api_calls", "aggregation": "sum", "meterEventName": "api_calls"},
    )
    assert response.status_code == 201, response.text
    customer = fake.customer()
    created = await api.post(
        "/v1/customers", json={"customerRef": "c1", "stripeCustomerId": customer}
    )
    assert created.status_code == 201, created.text
    return meter, customer


async def test_a_counter_change_committed_with_an_older_clock_is_still_pushed(
    api: httpx.AsyncClient, fake: FakeStripe, app_services: Services
) -> None:
    """A counter whose ``updated_at`` steps back (two writers committing out of clock order) is pushed."""
    meter, customer = await _setup(api, fake)
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 5})
    await app_services.stripe_sync.pusher.tick()
    assert fake.meter_total(meter, customer) == Decimal(5)
    # What PostgreSQL allows: a writer read its clock, waited for the counter's lock behind a
    # later writer, and commits its change with the earlier time.
    async with app_services.db.write() as conn:
        row = (await conn.execute(select(counters))).mappings().one()
        await conn.execute(
            update(counters).values(
                sum=row["sum"] + 2,
                count=row["count"] + 1,
                updated_at=row["updated_at"] - timedelta(seconds=1),
            )
        )
    await app_services.stripe_sync.pusher.tick()
    assert fake.meter_total(meter, customer) == Decimal(7)


async def test_a_flush_pushes_the_change_behind_a_resent_intent(
    api: httpx.AsyncClient, fake: FakeStripe, app_services: Services
) -> None:
    """One flush re-sends a crashed intent, then pushes what changed after it, and is done."""
    meter, customer = await _setup(api, fake)
    pusher = app_services.stripe_sync.pusher

    def crash(step: str) -> None:
        if step == "after_intent":
            raise Crash(step)

    pusher.hook = crash
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 3})
    with pytest.raises(Crash):
        await pusher.flush("acme")
    pusher.hook = None
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 4})
    async with app_services.db.write() as conn:  # the crashed process's lease lapses
        await conn.execute(update(push_log).values(lease_expires_at=None, lease_owner=None))
    summary = await pusher.flush("acme")
    assert fake.meter_total(meter, customer) == Decimal(7), summary.results
    sent = [r["params"]["payload"]["value"] for r in fake.accepted_events()]
    assert sent == ["3", "4"]
    rows = (await api.get("/v1/pushes")).json()["data"]
    assert [(Decimal(str(r["pushedTotal"])), r["pending"], r["changed"]) for r in rows] == [
        (Decimal(7), None, False)
    ]
