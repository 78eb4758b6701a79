"""Metric settings, strict mode and the audit log: configured per tenant, honoured by ingest, audited."""

from __future__ import annotations

import httpx

from stripemeter.api.app import Services
from tests.conftest import issue
from tests.integration._counters import audit_actions, bearer, event, ingest


async def test_an_unconfigured_metric_shows_its_defaults(api: httpx.AsyncClient) -> None:
    """GET of a metric nobody configured returns sum, the default window and configured: false."""
    response = await api.get("/v1/metrics/api_calls")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "metric": "api_calls",
        "aggregation": "sum",
        "latenessWindowSeconds": 48 * 3600,
        "unit": "unit",
        "description": "",
        "configured": False,
        "updatedAt": None,
    }
    listed = (await api.get("/v1/metrics")).json()
    assert listed["metrics"] == []
    assert listed["defaults"]["latenessWindowSeconds"] == 48 * 3600


async def test_put_configures_a_metric_and_audits_each_change(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """PUT creates then replaces a metric's settings; both changes are in the audit log."""
    body = {"aggregation": "max", "latenessWindowSeconds": 3600, "unit": "seats"}
    created = await api.put("/v1/metrics/seats", json=body)
    assert created.status_code == 200, created.text
    assert created.json()["configured"] is True
    assert created.json()["aggregation"] == "max"
    replaced = await api.put("/v1/metrics/seats", json={"aggregation": "last"})
    assert replaced.status_code == 200
    # PUT replaces: the omitted window and unit return to their defaults.
    assert replaced.json()["latenessWindowSeconds"] == 48 * 3600
    assert replaced.json()["unit"] == "unit"
    [listed] = (await api.get("/v1/metrics")).json()["metrics"]
    assert (listed["metric"], listed["aggregation"]) == ("seats", "last")
    assert (await api.get("/v1/metrics/seats")).json()["configured"] is True
    actions = await audit_actions(app_services)
    assert actions[-2:] == ["metric.created", "metric.updated"]
    [latest, *_] = (await api.get("/v1/audit")).json()["entries"]
    assert latest["details"]["before"]["aggregation"] == "max"
    assert latest["details"]["after"]["aggregation"] == "last"


async def test_invalid_settings_are_rejected_precisely(api: httpx.AsyncClient) -> None:
    """An unknown aggregation, a negative window or an unknown field is a 400 naming the field."""
    cases = [
        ({"aggregation": "avg"}, "aggregation", "invalid_aggregation"),
        ({"aggregation": "sum", "latenessWindowSeconds": -1}, "latenessWindowSeconds", None),
        ({"aggregation": "sum", "latenessWindowSeconds": 1.5}, "latenessWindowSeconds", None),
        ({"aggregation": "sum", "colour": "red"}, "colour", "unknown_field"),
        ({}, "aggregation", "required"),
    ]
    for body, param, code in cases:
        response = await api.put("/v1/metrics/api_calls", json=body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["param"] == param
        if code is not None:
            assert error["code"] == code


async def test_a_per_metric_lateness_window_is_honoured(api: httpx.AsyncClient) -> None:
    """A metric with a one-hour window holds an event two hours late; the default 48 h one counts it."""
    # Ingest first, so the settings are cached: the PUT must refresh them.
    await ingest(api, event("2025-01-20T00:00:00Z", metric="strict_calls"))
    put = await api.put(
        "/v1/metrics/strict_calls", json={"aggregation": "sum", "latenessWindowSeconds": 3600}
    )
    assert put.status_code == 200
    await ingest(api, event("2025-01-20T00:00:00Z", metric="api_calls"))
    results = await ingest(
        api,
        event("2025-01-19T22:00:00Z", metric="strict_calls"),
        event("2025-01-19T22:00:00Z", metric="api_calls"),
    )
    assert [r["status"] for r in results] == ["held", "accepted"]
    assert results[0]["reason"] == "beyond_lateness_window"


async def test_strict_mode_rejects_unknown_metrics_per_event(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """With strict mode on, an unconfigured metric is rejected at its index; configured ones count."""
    assert (await api.get("/v1/tenant/settings")).json() == {
        "tenantId": "acme",
        "strictMetrics": False,
    }
    await api.put("/v1/metrics/api_calls", json={"aggregation": "sum"})
    turned_on = await api.put("/v1/tenant/settings", json={"strictMetrics": True})
    assert turned_on.status_code == 200, turned_on.text
    assert turned_on.json()["strictMetrics"] is True
    response = await api.post(
        "/v1/events/ingest",
        json={
            "events": [event("2025-01-20T00:00:00Z"), event("2025-01-20T00:00:00Z", metric="gpu")]
        },
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["status"] == "accepted"
    assert second["status"] == "rejected"
    assert second["index"] == 1
    assert second["error"]["field"] == "metric"
    assert second["error"]["code"] == "unknown_metric"
    assert "gpu" in second["error"]["message"]
    await api.put("/v1/tenant/settings", json={"strictMetrics": False})
    [relaxed] = await ingest(api, event("2025-01-21T00:00:00Z", metric="gpu"))
    assert relaxed["status"] == "accepted"
    assert (await audit_actions(app_services)).count("tenant.settings_updated") == 2
    bad = await api.put("/v1/tenant/settings", json={"strictMetrics": "yes"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "strictMetrics"


async def test_settings_are_per_tenant(api: httpx.AsyncClient, app_services: Services) -> None:
    """One tenant's metrics, strict mode and audit log are invisible to and inert for another."""
    other = await issue(app_services, "globex")
    headers = bearer(other.key)
    await api.put("/v1/metrics/api_calls", json={"aggregation": "max"}, headers=headers)
    await api.put("/v1/tenant/settings", json={"strictMetrics": True}, headers=headers)
    assert (await api.get("/v1/metrics")).json()["metrics"] == []
    assert (await api.get("/v1/metrics/api_calls")).json()["configured"] is False
    assert (await api.get("/v1/tenant/settings")).json()["strictMetrics"] is False
    [accepted] = await ingest(api, event("2025-01-20T00:00:00Z", metric="anything"))
    assert accepted["status"] == "accepted"
    own_audit = (await api.get("/v1/audit")).json()["entries"]
    assert all(e["action"] == "key.created" for e in own_audit)
    foreign = await api.put(
        "/v1/metrics/api_calls", json={"aggregation": "sum", "tenantId": "globex"}
    )
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "tenant_mismatch"
    foreign_query = await api.get("/v1/metrics", params={"tenantId": "globex"})
    assert foreign_query.status_code == 403


async def test_metric_and_audit_routes_check_scopes(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Reading needs usage:read, PUT needs mappings:write, tenant settings and audit need admin."""
    reader = bearer((await issue(app_services, "acme", "usage:read")).key)
    mapper = bearer((await issue(app_services, "acme", "mappings:write")).key)
    writer = bearer((await issue(app_services, "acme", "events:write")).key)
    body = {"aggregation": "sum"}
    denied = [
        await api.get("/v1/metrics", headers=writer),
        await api.get("/v1/metrics/x", headers=writer),
        await api.put("/v1/metrics/x", json=body, headers=reader),
        await api.get("/v1/tenant/settings", headers=mapper),
        await api.put("/v1/tenant/settings", json={"strictMetrics": True}, headers=mapper),
        await api.get("/v1/audit", headers=reader),
    ]
    for response in denied:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "missing_scope"
    assert (await api.get("/v1/metrics", headers=reader)).status_code == 200
    assert (await api.put("/v1/metrics/x", json=body, headers=mapper)).status_code == 200


async def test_the_audit_log_is_cursor_paginated(api: httpx.AsyncClient) -> None:
    """Audit pages follow nextCursor, newest first, and end with hasMore false."""
    for aggregation in ("sum", "max", "last"):
        await api.put("/v1/metrics/api_calls", json={"aggregation": aggregation})
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        page = (await api.get("/v1/audit", params=params)).json()
        seen.extend(e["id"] for e in page["entries"])
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    assert len(seen) == 4  # the admin key's creation and three metric changes
    assert seen == sorted(seen, reverse=True)
