"""Every report status and suggestion path, and every adjustment transition, on both databases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from stripemeter.api.app import Services
from tests.conftest import issue
from tests.stripe_sync.conftest import TEST_KEY, FakeStripe, flush, ingest


async def _setup(api: httpx.AsyncClient, fake: FakeStripe, *refs: str) -> dict[str, str]:
    fake.meter("api_calls", live=False)
    created = await api.post(
        "/v1/mappings",
        json={"metric": "api_calls", "aggregation": "sum", "meterEventName": "api_calls"},
    )
    assert created.status_code == 201, created.text
    ids = {}
    for ref in refs:
        ids[ref] = fake.customer(live=False)
        done = await api.post(
            "/v1/customers", json={"customerRef": ref, "stripeCustomerId": ids[ref]}
        )
        assert done.status_code == 201, done.text
    return ids


async def _run(api: httpx.AsyncClient, **body: Any) -> dict[str, str]:
    response = await api.post("/v1/reconciliation/run", json=body)
    assert response.status_code == 200, response.text
    return {r["customerRef"] + "/" + r["metric"]: r["status"] for r in response.json()["reports"]}


async def test_statuses_ok_pending_unmapped_and_error(
    api: httpx.AsyncClient, fake: FakeStripe, app_services: Services
) -> None:
    """Pushed → ok; not pushed yet → pending; unknown customer or metric → unmapped; Stripe down → error."""
    assert TEST_KEY
    await _setup(api, fake, "c1")
    await ingest(
        api,
        {"metric": "api_calls", "customerRef": "c1", "quantity": 10},
        {"metric": "api_calls", "customerRef": "nobody", "quantity": 1},
        {"metric": "unmapped_metric", "customerRef": "c1", "quantity": 1},
    )
    before = await _run(api)
    assert before["c1/api_calls"] == "pending"
    assert before["nobody/api_calls"] == "unmapped"
    assert before["c1/unmapped_metric"] == "unmapped"
    await flush(api)
    assert (await _run(api))["c1/api_calls"] == "ok"
    fake.control.fault(kind="server_error", count=50, path="/v1/billing/meters/")
    assert (await _run(api, customerRef="c1"))["c1/api_calls"] == "error"
    fake.control.http.delete("/_control/faults").raise_for_status()
    rows = (await api.get("/v1/reconciliation", params={"period": _month()})).json()
    # One current row per key whatever the number of runs; the summary never multiplies.
    assert len([r for r in rows["reports"] if r["customerRef"] == "c1"]) == 2
    summary = (await api.get("/v1/reconciliation/summary", params={"period": _month()})).json()
    assert summary["overall"]["local"] == 12
    csv = await api.get("/v1/reconciliation/summary", params={"period": _month(), "format": "csv"})
    assert csv.text.splitlines()[0] == "metric,local,stripe,drift_abs,drift_pct,items"
    assert csv.text.splitlines()[-1].startswith("TOTAL,12,")


async def test_drift_is_rechecked_suggested_applied_and_verified(
    api: httpx.AsyncClient, fake: FakeStripe, app_services: Services
) -> None:
    """An over-report in Stripe becomes drift after the re-check; applying pushes a compensation."""
    ids = await _setup(api, fake, "c1")
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 100})
    await flush(api)
    fake.call(
        "POST",
        "/v1/billing/meter_events",
        live=False,
        event_name="api_calls",
        **{"payload[stripe_customer_id]": ids["c1"], "payload[value]": "7"},
    )
    assert (await _run(api))["c1/api_calls"] == "drift"
    open_ = (await api.get("/v1/reconciliation/suggestions")).json()["data"]
    assert [(s["kind"], Decimal(str(s["delta"]))) for s in open_] == [("compensate", Decimal(-7))]
    writer = await issue(app_services, "acme", "usage:read")
    denied = await api.post(
        f"/v1/reconciliation/suggestions/{open_[0]['id']}/apply",
        headers={"Authorization": f"Bearer {writer.key}"},
    )
    assert denied.status_code == 403
    applied = await api.post(f"/v1/reconciliation/suggestions/{open_[0]['id']}/apply")
    assert applied.status_code == 200, applied.text
    assert applied.json()["result"]["verifiedStatus"] == "ok"
    again = await api.post(f"/v1/reconciliation/suggestions/{open_[0]['id']}/apply")
    assert again.status_code == 409
    actions = [e["action"] for e in (await api.get("/v1/audit")).json()["entries"]]
    assert "reconciliation.suggestion_applied" in actions


async def test_adjustment_lifecycle(
    api: httpx.AsyncClient, fake: FakeStripe, app_services: Services
) -> None:
    """Create → approve (not by its creator) → pushed; revert → net zero; reject; all audited."""
    await _setup(api, fake, "c1")
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": 10})
    await flush(api)
    body = {
        "metric": "api_calls",
        "customerRef": "c1",
        "period": _month(),
        "delta": "5",
        "reason": "correction",
    }
    created = (await api.post("/v1/adjustments", json=body)).json()
    assert created["status"] == "pending"
    own = await api.post(f"/v1/adjustments/{created['id']}/approve")
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "self_approval"
    approver = await issue(app_services, "acme", "adjustments:approve")
    as_approver = {"Authorization": f"Bearer {approver.key}"}
    approved = await api.post(f"/v1/adjustments/{created['id']}/approve", headers=as_approver)
    assert approved.status_code == 200, approved.text
    assert approved.json()["tier"] == "in_period"
    assert await _usage(api) == Decimal(15)
    assert (await _run(api))["c1/api_calls"] == "ok"
    reverted = await api.post(f"/v1/adjustments/{created['id']}/revert", headers=as_approver)
    assert reverted.json()["status"] == "reverted"
    assert await _usage(api) == Decimal(10)  # net zero, not minus five
    assert (await _run(api))["c1/api_calls"] == "ok"
    twice = await api.post(f"/v1/adjustments/{created['id']}/revert", headers=as_approver)
    assert twice.status_code == 409
    other = (await api.post("/v1/adjustments", json=body | {"delta": -2})).json()
    rejected = await api.post(f"/v1/adjustments/{other['id']}/reject", headers=as_approver)
    assert rejected.json()["status"] == "rejected"
    assert await _usage(api) == Decimal(10)
    actions = {e["action"] for e in (await api.get("/v1/audit")).json()["entries"]}
    assert {
        "adjustment.created",
        "adjustment.approved",
        "adjustment.reverted",
        "adjustment.rejected",
    } <= actions
    listed = (await api.get("/v1/adjustments", params={"status": "reverted"})).json()["data"]
    assert [a["id"] for a in listed] == [created["id"]]
    explained = (
        await api.get(
            "/v1/explain", params={"customerRef": "c1", "metric": "api_calls", "period": _month()}
        )
    ).json()
    assert len(explained["events"]) == 1
    assert len(explained["adjustments"]) == 2
    assert explained["pushes"][0]["identifier"] is None or explained["pushes"]


def _month() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m")


async def _usage(api: httpx.AsyncClient) -> Decimal:
    explained = (
        await api.get(
            "/v1/explain", params={"customerRef": "c1", "metric": "api_calls", "period": _month()}
        )
    ).json()
    return Decimal(str(explained["total"]))
