"""Counters keyed by a customer's billing cycle: ingest, re-keying, lateness, closed periods, replay."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from stripemeter.api.app import Services
from stripemeter.domain.periods import BillingCycle, Period
from stripemeter.services.billing_cycles import BillingCycles
from stripemeter.services.replay import ReplayScope, ReplayService
from stripemeter.store import billing, cycles
from stripemeter.store.tables import audit_log, counters
from tests.conftest import issue
from tests.integration._counters import event, ingest

OCT15 = datetime(2025, 10, 15, tzinfo=UTC)
NOV15 = datetime(2025, 11, 15, tzinfo=UTC)
DEC15 = datetime(2025, 12, 15, tzinfo=UTC)


async def set_cycle(
    services: Services,
    anchor: datetime | None,
    *,
    tenant: str = "acme",
    customer: str = "cus_1",
    interval: str = "month",
) -> bool:
    """Store a customer's cycle (None: calendar months) as the pusher would; True if re-keyed."""
    cycles = BillingCycles(services.db, services.stripe_sync.accounts)
    cycle = BillingCycle(anchor, interval) if anchor is not None else None
    async with services.db.write() as conn:
        return await cycles.apply(
            conn,
            tenant,
            customer,
            cycle,
            source="manual",
            stripe_customer_id="cus_stripe",
            subscription_id="sub_1",
        )


async def counter_rows(
    services: Services, tenant: str = "acme", customer: str = "cus_1"
) -> dict[tuple[str, datetime], dict[str, Any]]:
    """(metric, period start) -> the stored row, for one customer."""
    async with services.db.read() as conn:
        rows = await conn.execute(
            select(counters).where(
                counters.c.tenant_id == tenant, counters.c.customer_ref == customer
            )
        )
        return {(r["metric"], r["period_start"]): dict(r) for r in rows.mappings()}


async def no_differences(services: Services, tenant: str = "acme") -> None:
    """The service's replay finds every counter equal to its recomputation."""
    report = await ReplayService(services.db).run(tenant, ReplayScope(), apply=False, actor="t")
    assert report.differences == []


async def test_events_either_side_of_the_anchor_land_in_different_periods(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """With an anchor on the 15th, the 14th and the 16th are two periods; the 1st is no boundary."""
    await set_cycle(app_services, OCT15)
    await ingest(
        api,
        event("2025-11-14T12:00:00Z", 3),
        event("2025-11-16T12:00:00Z", 5),
        event("2025-12-01T00:00:00Z", 7),
    )
    rows = await counter_rows(app_services)
    assert {start: (r["period_end"], r["sum"]) for (_, start), r in rows.items()} == {
        OCT15: (NOV15, Decimal(3)),
        NOV15: (DEC15, Decimal(12)),
    }
    await no_differences(app_services)


async def test_a_cycle_learned_after_ingest_re_keys_the_counters_from_the_ledger(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Calendar counters become anchored ones in the transaction that stores the cycle, audited."""
    await ingest(
        api,
        event("2025-11-14T12:00:00Z", 3),
        event("2025-11-16T12:00:00Z", 5, metric="gb"),
        event("2025-11-16T13:00:00Z", 2),
        event("2025-10-20T00:00:00Z", 1),
    )
    before = await counter_rows(app_services)
    assert {start for _, start in before} == {
        datetime(2025, 10, 1, tzinfo=UTC),
        datetime(2025, 11, 1, tzinfo=UTC),
    }
    assert await set_cycle(app_services, OCT15) is True
    after = await counter_rows(app_services)
    assert {key: (r["period_end"], r["sum"], r["count"]) for key, r in after.items()} == {
        ("api_calls", OCT15): (NOV15, Decimal(4), 2),
        ("api_calls", NOV15): (DEC15, Decimal(2), 1),
        ("gb", NOV15): (DEC15, Decimal(5), 1),
    }
    await no_differences(app_services)
    listed = (await api.get("/v1/events", params={"customerRef": "cus_1"})).json()["events"]
    assert {e["ts"]: e["periodStart"] for e in listed if e["metric"] == "api_calls"} == {
        "2025-11-14T12:00:00Z": "2025-10-15T00:00:00Z",
        "2025-11-16T13:00:00Z": "2025-11-15T00:00:00Z",
        "2025-10-20T00:00:00Z": "2025-10-15T00:00:00Z",
    }
    async with app_services.db.read() as conn:
        actions = [
            r.action
            for r in await conn.execute(select(audit_log).where(audit_log.c.tenant_id == "acme"))
        ]
    assert actions.count("billing_cycle.changed") == 1

    # The same periods again (another anchor of the same cycle) change nothing.
    assert await set_cycle(app_services, NOV15) is False
    assert await counter_rows(app_services) == after
    # Back to calendar months: re-keyed again, still derivable.
    assert await set_cycle(app_services, None) is True
    assert {start for _, start in await counter_rows(app_services)} == {
        datetime(2025, 10, 1, tzinfo=UTC),
        datetime(2025, 11, 1, tzinfo=UTC),
    }
    await no_differences(app_services)


async def test_an_anchor_on_the_31st_clamps_to_the_end_of_february(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Anchored on Jan 31, the period turns on Feb 28 (2025) and again on Mar 31."""
    await set_cycle(app_services, datetime(2025, 1, 31, 10, tzinfo=UTC))
    await ingest(
        api,
        event("2025-02-28T09:59:59Z", 1),
        event("2025-02-28T10:00:00Z", 2),
        event("2025-03-30T00:00:00Z", 4),
        event("2025-03-31T10:00:00Z", 8),
    )
    rows = await counter_rows(app_services)
    assert {(r["period_start"], r["period_end"], r["sum"]) for r in rows.values()} == {
        (
            datetime(2025, 1, 31, 10, tzinfo=UTC),
            datetime(2025, 2, 28, 10, tzinfo=UTC),
            Decimal(1),
        ),
        (
            datetime(2025, 2, 28, 10, tzinfo=UTC),
            datetime(2025, 3, 31, 10, tzinfo=UTC),
            Decimal(6),
        ),
        (
            datetime(2025, 3, 31, 10, tzinfo=UTC),
            datetime(2025, 4, 30, 10, tzinfo=UTC),
            Decimal(8),
        ),
    }
    await no_differences(app_services)


async def test_the_lateness_window_is_judged_within_the_anchored_period(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """An event 3 days before the watermark but in the previous anchored period is on time there."""
    await set_cycle(app_services, OCT15)
    [first] = await ingest(api, event("2025-11-17T12:00:00Z", 1))
    [other_period, same_period] = await ingest(
        api,
        event("2025-11-14T12:00:00Z", 2),  # 72 h back, but its own period has no watermark
        event("2025-11-15T00:00:00Z", 4),  # 60 h back in the same period: beyond 48 h
    )
    assert first["status"] == other_period["status"] == "accepted"
    assert (same_period["status"], same_period["reason"]) == ("held", "beyond_lateness_window")
    await no_differences(app_services)


async def test_an_invoiced_anchored_period_holds_its_late_events(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Once [Oct 15, Nov 15) is closed, an event of Nov 14 is held; one of Nov 16 counts."""
    await set_cycle(app_services, OCT15)
    async with app_services.db.write() as conn:
        await billing.close_period(
            conn, "acme", "cus_1", Period(OCT15, NOV15), "in_1", datetime.now(UTC)
        )
    results = await ingest(api, event("2025-11-14T12:00:00Z", 2), event("2025-11-16T12:00:00Z", 3))
    assert [(r["status"], r.get("reason")) for r in results] == [
        ("held", "period_closed"),
        ("accepted", None),
    ]
    # Approving the held event books it into the next open (anchored) period.
    approved = await api.post(f"/v1/events/held/{results[0]['eventId']}/approve", json={})
    assert approved.status_code == 200, approved.text
    rows = await counter_rows(app_services)
    assert {start: r["sum"] for (_, start), r in rows.items()} == {NOV15: Decimal(5)}
    await no_differences(app_services)


async def test_cycle_changes_racing_with_ingest_keep_counters_derivable(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Ingest and cycle changes run concurrently; every event counts once, in a current period."""
    rng = random.Random(7)
    base = datetime(2025, 11, 10, tzinfo=UTC)
    anchors = [OCT15, datetime(2025, 10, 20, tzinfo=UTC), None, datetime(2025, 9, 3, tzinfo=UTC)]
    sent = Decimal(0)

    async def send(batch: int) -> None:
        nonlocal sent
        events = []
        for i in range(5):
            at = base + timedelta(hours=rng.randrange(0, 24 * 12))
            events.append(
                event(at.isoformat().replace("+00:00", "Z"), 1, idempotencyKey=f"k{batch}-{i}")
            )
        results = await ingest(api, *events)
        sent += sum(Decimal(1) for r in results if r["status"] == "accepted")

    async def churn() -> None:
        for anchor in anchors * 2:
            await set_cycle(app_services, anchor)
            await asyncio.sleep(0)

    await asyncio.gather(churn(), *(send(b) for b in range(20)))
    await no_differences(app_services)
    rows = await counter_rows(app_services)
    assert sum((r["sum"] for r in rows.values()), Decimal(0)) == sent
    final = anchors[-1]
    assert final is not None
    cycle = BillingCycle(final)
    for (_, start), row in rows.items():
        assert cycle.period_containing(start) == Period(start, row["period_end"])


async def test_usage_reads_take_the_period_from_the_counters(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """usage/current, history by month and the customer list show [Nov 15, Dec 15) totals."""
    await set_cycle(app_services, OCT15)
    await ingest(
        api,
        event("2025-11-14T12:00:00Z", 3),
        event("2025-11-16T12:00:00Z", 5),
        event("2025-11-20T12:00:00Z", 1, customerRef="cus_2"),
    )
    current = await api.get(
        "/v1/usage/current", params={"customerRef": "cus_1", "period": "2025-11"}
    )
    assert current.status_code == 200, current.text
    body = current.json()
    assert body["period"] == {"start": "2025-11-15T00:00:00Z", "end": "2025-12-15T00:00:00Z"}
    assert [(m["metric"], m["value"]) for m in body["metrics"]] == [("api_calls", 5)]
    by_day = await api.get(
        "/v1/usage/current", params={"customerRef": "cus_1", "period": "2025-11-14"}
    )
    assert by_day.json()["period"]["start"] == "2025-10-15T00:00:00Z"
    assert by_day.json()["metrics"][0]["value"] == 3

    history = await api.get(
        "/v1/usage/history",
        params={
            "customerRef": "cus_1",
            "metric": "api_calls",
            "from": "2025-10-15T00:00:00Z",
            "to": "2025-12-15T00:00:00Z",
            "interval": "month",
        },
    )
    assert history.status_code == 200, history.text
    assert [(b["start"], b["value"]) for b in history.json()["usage"]] == [
        ("2025-10-15T00:00:00Z", 3),
        ("2025-11-15T00:00:00Z", 5),
    ]

    listed = await api.get("/v1/usage/customers", params={"period": "2025-11"})
    assert listed.status_code == 200, listed.text
    customers = {c["customerRef"]: c for c in listed.json()["customers"]}
    assert customers["cus_1"]["period"]["start"] == "2025-11-15T00:00:00Z"
    assert customers["cus_1"]["metrics"][0]["value"] == 5
    assert customers["cus_2"]["period"] == {
        "start": "2025-11-01T00:00:00Z",
        "end": "2025-12-01T00:00:00Z",
    }


async def test_an_adjustment_for_a_month_lands_in_the_period_starting_in_it(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """An approved adjustment for 2025-11 counts in [Nov 15, Dec 15), and survives a re-key."""
    approver = await issue(app_services, "acme", "adjustments:approve")
    await set_cycle(app_services, OCT15)
    await ingest(api, event("2025-11-16T12:00:00Z", 5))
    created = await api.post(
        "/v1/adjustments",
        json={
            "metric": "api_calls",
            "customerRef": "cus_1",
            "period": "2025-11",
            "delta": 2,
            "reason": "correction",
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["periodStart"] == "2025-11-15T00:00:00Z"
    approved = await api.post(
        f"/v1/adjustments/{created.json()['id']}/approve",
        headers={"Authorization": f"Bearer {approver.key}"},
    )
    assert approved.status_code == 200, approved.text
    rows = await counter_rows(app_services)
    assert {start: r["sum"] for (_, start), r in rows.items()} == {NOV15: Decimal(7)}
    await no_differences(app_services)
    await set_cycle(
        app_services, datetime(2025, 10, 20, tzinfo=UTC)
    )  # Nov 15 is in [Oct 20, Nov 20)
    rows = await counter_rows(app_services)
    assert {start: r["sum"] for (_, start), r in rows.items()} == {
        datetime(2025, 10, 20, tzinfo=UTC): Decimal(7)
    }
    await no_differences(app_services)


async def test_customer_mapping_changes_reach_the_cycle(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Another Stripe customer makes the cycle stale; deleting the mapping re-keys to months."""
    mapped = await api.post(
        "/v1/customers", json={"customerRef": "cus_1", "stripeCustomerId": "cus_stripe"}
    )
    assert mapped.status_code == 201, mapped.text
    await set_cycle(app_services, OCT15)
    await ingest(api, event("2025-11-14T12:00:00Z", 3))
    assert {start for _, start in await counter_rows(app_services)} == {OCT15}

    remapped = await api.post(
        "/v1/customers", json={"customerRef": "cus_1", "stripeCustomerId": "cus_other"}
    )
    assert remapped.status_code in (200, 201), remapped.text
    async with app_services.db.read() as conn:
        stored = await cycles.get(conn, "acme", "cus_1")
    assert stored is not None
    assert stored.checked_at is None
    assert {start for _, start in await counter_rows(app_services)} == {OCT15}

    deleted = await api.delete("/v1/customers/cus_1")
    assert deleted.status_code == 204, deleted.text
    assert {start for _, start in await counter_rows(app_services)} == {
        datetime(2025, 11, 1, tzinfo=UTC)
    }
    await no_differences(app_services)
