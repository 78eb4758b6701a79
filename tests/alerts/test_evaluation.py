"""Every rule type fires once and resolves once across repeated evaluations, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import httpx
from sqlalchemy import update

from stripemeter.api.app import Services
from stripemeter.domain.periods import period_for
from stripemeter.store.tables import push_log, reconciliation_reports
from tests.alerts.conftest import create_rule, evaluate, history, ingest, settle, states


def next_month(services: Services) -> None:
    """Move the evaluator's clock into the next billing period."""
    later = period_for(datetime.now(UTC)).end + timedelta(hours=1)
    services.alerts.evaluator.clock = lambda: later


async def test_usage_threshold_fires_once_and_resolves_in_the_next_period(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Below: nothing; above: one trigger with value and threshold; a new period: one resolution."""
    rule = await create_rule(
        api, type="usage_threshold", metric="api_calls", thresholds=[100], renotifyAfter=None
    )
    await ingest(api, "api_calls", "cus_1", 50)
    assert await settle(api) == []
    await ingest(api, "api_calls", "cus_1", 60)
    await ingest(api, "api_calls", "cus_2", 5)
    assert await settle(api) == ["triggered"]
    [state] = await states(api, status="triggered")
    assert state["ruleId"] == rule["id"]
    assert (state["customerRef"], state["metric"]) == ("cus_1", "api_calls")
    assert (state["status"], state["value"], state["threshold"]) == ("triggered", 110, 100)
    next_month(app_services)
    assert await settle(api) == ["resolved"]
    assert await states(api, status="triggered") == []
    assert await history(api) == ["triggered", "resolved"]
    [event] = (await api.get("/v1/alerts/events", params={"transition": "triggered"})).json()[
        "data"
    ]
    assert (event["value"], event["threshold"], event["fromStatus"]) == (110, 100, "ok")


async def test_percent_of_limit_escalates_through_80_90_100(api: httpx.AsyncClient) -> None:
    """With a limit of 1000, thresholds 80/90/100 % fire at 800, 900 and 1000, each once."""
    assert (
        await api.put(
            "/v1/limits", json={"customerRef": "cus_1", "metric": "api_calls", "limit": 1000}
        )
    ).status_code == 200
    await create_rule(
        api,
        type="usage_threshold",
        metric="api_calls",
        thresholds=[80, 90, 100],
        percentOfLimit=True,
    )
    await ingest(api, "api_calls", "cus_2", 5000)  # no limit: percent-of-limit does not apply
    await ingest(api, "api_calls", "cus_1", 850)
    assert await settle(api) == ["triggered"]
    await ingest(api, "api_calls", "cus_1", 100)
    assert await settle(api) == ["escalated"]
    await ingest(api, "api_calls", "cus_1", 100)
    assert await settle(api) == ["escalated"]
    [state] = await states(api)
    assert (state["customerRef"], state["value"], state["threshold"], state["level"]) == (
        "cus_1", 1050, 1000, 2,
    )  # fmt: skip
    thresholds = [e["threshold"] for e in (await api.get("/v1/alerts/events")).json()["data"]]
    assert thresholds == [1000, 900, 800]


async def test_spend_threshold_fires_on_projected_spend_and_resolves(
    api: httpx.AsyncClient,
) -> None:
    """Projected spend over the budget fires once; without a price there is no spend: resolved."""
    price = {"price": {"currency": "usd", "unit_amount": 2}}
    assert (await api.put("/v1/metric-prices/api_calls", json=price)).status_code == 200
    await create_rule(api, type="spend_threshold", thresholds=[10])
    await ingest(api, "api_calls", "cus_1", 100)  # $2 so far
    await ingest(api, "api_calls", "cus_2", 1000)  # $20 so far
    assert await settle(api) == ["triggered"]
    [state] = await states(api)
    assert state["customerRef"] == "cus_2"
    assert Decimal(str(state["value"])) >= 20
    assert (await api.delete("/v1/metric-prices/api_calls")).status_code in (200, 204)
    assert await settle(api) == ["resolved"]


async def test_spike_fires_on_a_burst_and_resolves_when_it_passes(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Twenty events in the last hour against one an hour before: one spike, resolved later."""
    now = datetime.now(UTC)
    baseline = [
        {"metric": "api_calls", "customerRef": "cus_1", "quantity": 1,
         "ts": (now - timedelta(hours=h)).isoformat()}
        for h in range(2, 26)
    ]  # fmt: skip
    assert (await api.post("/v1/events/ingest", json={"events": baseline})).status_code == 200
    await create_rule(api, type="spike", metric="api_calls", thresholds=[5])
    assert await settle(api) == []
    for minute in range(20):
        await ingest(api, "api_calls", "cus_1", 1, now - timedelta(minutes=minute))
    assert await settle(api) == ["triggered"]
    [state] = await states(api)
    assert Decimal(str(state["value"])) >= 15
    later = now + timedelta(hours=3)
    app_services.alerts.evaluator.clock = lambda: later
    assert await settle(api) == ["resolved"]


async def test_drift_fires_from_the_reconciliation_report(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A report in drift above the threshold fires; the report back to ok resolves."""
    now = datetime.now(UTC)
    period = period_for(now)
    async with app_services.db.write() as conn:
        await conn.execute(
            reconciliation_reports.insert().values(
                tenant_id="acme", metric="api_calls", mapping_id="map_1", target="live",
                customer_ref="cus_1", period_start=period.start, period_end=period.end,
                local_total=Decimal(105), pushed_total=Decimal(100), stripe_total=Decimal(100),
                trued_up=Decimal(0), drift_abs=Decimal(5), drift_pct=Decimal("0.05"),
                epsilon=Decimal("0.005"), status="drift", closed=False, run_id="run_1",
                checked_at=now, created_at=now,
            )
        )  # fmt: skip
    await create_rule(api, type="drift", thresholds=[1])
    assert await settle(api) == ["triggered"]
    [state] = await states(api)
    assert (state["customerRef"], state["metric"], state["value"]) == ("cus_1", "api_calls", 5)
    async with app_services.db.write() as conn:
        await conn.execute(update(reconciliation_reports).values(status="ok", drift_abs=Decimal(0)))
    assert await settle(api) == ["resolved"]


async def test_push_failure_fires_on_an_old_unpushed_change(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A change unconfirmed for two hours passes a one-hour threshold; confirming it resolves."""
    now = datetime.now(UTC)
    period = period_for(now)
    async with app_services.db.write() as conn:
        await conn.execute(
            push_log.insert().values(
                tenant_id="acme", mapping_id="map_1", target="live", customer_ref="cus_1",
                period_start=period.start, period_end=period.end, pushed_total=Decimal(0),
                pushed_seq=0, status="parked", dirty=False, changed_at=now - timedelta(hours=2),
                attempts=3, last_error="boom", next_attempt_at=now, updated_at=now,
            )
        )  # fmt: skip
    await create_rule(api, type="push_failure", thresholds=[3600])
    assert await settle(api) == ["triggered"]
    [state] = await states(api)
    assert state["customerRef"] is None
    assert state["value"] >= 7200
    async with app_services.db.write() as conn:
        await conn.execute(update(push_log).values(status="ok", dirty=False))
    assert await settle(api) == ["resolved"]


async def test_held_events_fire_when_they_pile_up_and_resolve_when_reviewed(
    api: httpx.AsyncClient,
) -> None:
    """A held event passes a threshold of one; dismissing it resolves the alert."""
    now = datetime.now(UTC)
    await ingest(api, "api_calls", "cus_1", 1, now)
    held = await ingest(api, "api_calls", "cus_1", 1, now - timedelta(days=5))
    assert held["status"] == "held"
    await create_rule(api, type="held_events", thresholds=[1])
    assert await settle(api) == ["triggered"]
    dismissed = await api.post(f"/v1/events/held/{held['eventId']}/dismiss", json={})
    assert dismissed.status_code == 200, dismissed.text
    assert await settle(api) == ["resolved"]


async def test_concurrent_evaluations_fire_once(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Several evaluations of one tenant at once (as from several processes) record one change."""
    await create_rule(api, type="usage_threshold", metric="api_calls", thresholds=[10])
    await ingest(api, "api_calls", "cus_1", 50)
    assert await settle(api) == ["triggered"]
    next_month(app_services)
    evaluator = app_services.alerts.evaluator
    results = await asyncio.gather(*(evaluator.evaluate_tenant("acme") for _ in range(5)))
    assert sum(len(r.transitions) for r in results) <= 1
    assert await settle(api) == ["resolved"]


async def test_the_ingest_hook_evaluates_touched_counters_without_a_loop_tick(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Putting committed events on the hook fires their threshold promptly, in the background."""
    await create_rule(api, type="usage_threshold", metric="api_calls", thresholds=[10])
    await ingest(api, "api_calls", "cus_1", 50)
    hooks = app_services.alerts.hooks
    touched = SimpleNamespace(
        tenant_id="acme", event=SimpleNamespace(metric="api_calls", customer_ref="cus_1")
    )
    hooks.committed([touched])
    for _ in range(100):
        if await states(api, status="triggered"):
            break
        await asyncio.sleep(0.02)
    [state] = await states(api, status="triggered")
    assert state["customerRef"] == "cus_1"
    assert await evaluate(api) == []


async def test_disabled_rules_are_not_evaluated(api: httpx.AsyncClient) -> None:
    """A disabled rule makes no transitions; enabling it does."""
    rule = await create_rule(
        api, type="usage_threshold", metric="api_calls", thresholds=[10], enabled=False
    )
    await ingest(api, "api_calls", "cus_1", 50)
    assert await settle(api) == []
    assert (await api.patch(f"/v1/alerts/{rule['id']}", json={"enabled": True})).status_code == 200
    assert await settle(api) == ["triggered"]
