"""Every pricing and simulation route: scopes enforced, and another tenant's rows are invisible."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from tests.conftest import issue
from tests.pricing_api.test_simulations import example

PRICE = {"price": {"currency": "usd", "unit_amount": 2}}
# (method, path, body, scope that suffices)
ROUTES: list[tuple[str, str, Any, str]] = [
    ("POST", "/v1/usage/projection", {"customerRef": "cus_1"}, "usage:read"),
    ("GET", "/v1/usage/projection?customerRef=cus_1", None, "usage:read"),
    ("GET", "/v1/metric-prices", None, "usage:read"),
    ("GET", "/v1/metric-prices/api_calls", None, "usage:read"),
    ("PUT", "/v1/metric-prices/api_calls", PRICE, "mappings:write"),
    ("DELETE", "/v1/metric-prices/api_calls", None, "mappings:write"),
    ("POST", "/v1/simulations/scenarios", {}, "mappings:write"),
    ("GET", "/v1/simulations/scenarios", None, "usage:read"),
    ("GET", "/v1/simulations/scenarios/{scenario}", None, "usage:read"),
    ("PUT", "/v1/simulations/scenarios/{scenario}", example("volume"), "mappings:write"),
    ("DELETE", "/v1/simulations/scenarios/{scenario}", None, "mappings:write"),
    ("POST", "/v1/simulations/runs", {"scenarioId": "{scenario}"}, "usage:read"),
    ("GET", "/v1/simulations/runs", None, "usage:read"),
    ("GET", "/v1/simulations/runs/{run}", None, "usage:read"),
    ("POST", "/v1/simulations/batches", {"name": "b", "scenarioIds": ["{scenario}"]}, "usage:read"),
    ("GET", "/v1/simulations/batches/{batch}", None, "usage:read"),
]


async def call(client: httpx.AsyncClient, key: str, method: str, path: str, body: Any,
               ids: dict[str, str]) -> httpx.Response:  # fmt: skip
    """Send one request with ``key``, filling ids into the path and body."""
    path = path.format(**ids)
    if isinstance(body, dict):
        body = {k: (v.format(**ids) if isinstance(v, str) else
                    [i.format(**ids) if isinstance(i, str) else i for i in v] if isinstance(v, list) else v)
                for k, v in body.items()}  # fmt: skip
    return await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})


async def acme_objects(api: httpx.AsyncClient) -> dict[str, str]:
    """A price, a scenario, a run and a batch of tenant acme."""
    assert (await api.put("/v1/metric-prices/api_calls", json=PRICE)).status_code == 200
    scenario = (await api.post("/v1/simulations/scenarios", json=example("volume"))).json()
    run = (await api.post("/v1/simulations/runs", json={"scenarioId": scenario["id"]})).json()
    batch = (await api.post("/v1/simulations/batches",
                            json={"name": "b", "scenarioIds": [scenario["id"]]})).json()  # fmt: skip
    return {"scenario": scenario["id"], "run": run["id"], "batch": batch["id"]}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_every_route_demands_its_scope(
    api: httpx.AsyncClient, client: httpx.AsyncClient, app_services: Services
) -> None:
    """A key without the route's scope gets 403 missing_scope; no key gets 401."""
    ids = await acme_objects(api)
    writer = await issue(app_services, "acme", "events:write")
    reader = await issue(app_services, "acme", "usage:read")
    for method, path, body, scope in ROUTES:
        denied = await call(client, writer.key, method, path, body, ids)
        assert denied.status_code == 403, (method, path, denied.text)
        assert denied.json()["error"]["code"] == "missing_scope"
        if scope == "mappings:write":
            refused = await call(client, reader.key, method, path, body, ids)
            assert refused.status_code == 403, (method, path)
        anonymous = await client.request(
            method, path.format(**ids), json=body, headers={"Authorization": ""}
        )
        assert anonymous.status_code == 401, (method, path)


async def test_another_tenant_sees_nothing(
    api: httpx.AsyncClient, client: httpx.AsyncClient, app_services: Services
) -> None:
    """Tenant globex gets 404 for acme's rows, empty lists, its own projection, 403 on tenantId=acme."""
    ids = await acme_objects(api)
    other = (await issue(app_services, "globex", "admin")).key
    for method, path, body, _scope in ROUTES:
        if "{" not in path and method != "GET":
            continue
        response = await call(client, other, method, path, body, ids)
        if "{" in path or path.endswith("/api_calls"):
            assert response.status_code == 404, (method, path, response.text)
    listed = await call(client, other, "GET", "/v1/simulations/scenarios", None, ids)
    assert listed.json()["scenarios"] == []
    runs = await call(client, other, "GET", "/v1/simulations/runs", None, ids)
    assert runs.json()["runs"] == []
    prices = await call(client, other, "GET", "/v1/metric-prices", None, ids)
    assert prices.json()["prices"] == []
    projection = await call(
        client, other, "POST", "/v1/usage/projection", {"customerRef": "c"}, ids
    )
    assert projection.json()["lineItems"] == []
    spoofed = await call(client, other, "POST", "/v1/usage/projection",
                         {"customerRef": "c", "tenantId": "acme"}, ids)  # fmt: skip
    assert spoofed.status_code == 403
    spoofed_get = await call(client, other, "GET", "/v1/simulations/runs?tenantId=acme", None, ids)
    assert spoofed_get.status_code == 403
