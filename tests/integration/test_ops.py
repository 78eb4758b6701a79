"""Health, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import httpx

from stripemeter.api.app import Services

EVENT = {"metric": "api_calls", "customerRef": "cus_1", "quantity": 1, "ts": "2025-01-20T00:00:00Z"}


async def test_liveness_and_readiness_need_no_key(
    client: httpx.AsyncClient, app_services: Services
) -> None:
    """Probes answer without credentials; readiness runs a real database query."""
    live = await client.get("/health/live")
    assert live.json()["status"] == "alive"
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == {"ok": True, "backend": app_services.db.dialect}
    assert ready.json()["checks"]["stripe"]["mode"] == "fake"  # no key configured: clearly the fake


async def test_readiness_fails_when_the_database_is_gone(
    client: httpx.AsyncClient, app_services: Services
) -> None:
    """A database that cannot be reached makes readiness 503, with the failing check named."""
    original = app_services.db.ping

    async def broken() -> None:
        raise ConnectionError("database unreachable")

    app_services.db.ping = broken  # type: ignore[method-assign]
    try:
        response = await client.get("/health/ready")
    finally:
        app_services.db.ping = original  # type: ignore[method-assign]
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False


async def test_metrics_count_events_by_status_and_held_events(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Ingest results, latency and the held-events gauge appear in the Prometheus text."""
    before = await api.get("/metrics")
    assert before.headers["content-type"].startswith("text/plain")
    await api.post(
        "/v1/events/ingest",
        json={"events": [EVENT, EVENT, {**EVENT, "ts": "2025-01-10T00:00:00Z", "quantity": 2}]},
    )
    await app_services.housekeeping.sample()
    text = (await api.get("/metrics")).text
    assert 'stripemeter_ingest_events_total{status="held"}' in text
    assert "stripemeter_ingest_latency_seconds_bucket" in text
    assert "stripemeter_ingest_batch_size_bucket" in text
    assert "stripemeter_held_events_pending 1.0" in text
    assert "acme" not in text  # no tenant labels


async def test_openapi_documents_ingest_with_the_error_envelope(client: httpx.AsyncClient) -> None:
    """The OpenAPI document describes the ingest body and the shared error responses."""
    spec = (await client.get("/openapi.json")).json()
    ingest = spec["paths"]["/v1/events/ingest"]["post"]
    body = ingest["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["events"]["items"]["properties"]["quantity"]["type"] == "number"
    assert {"400", "401", "403", "409", "413"} <= set(ingest["responses"])
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_routes_answer_in_the_envelope(client: httpx.AsyncClient) -> None:
    """Even a 404 for a path that does not exist uses the error envelope."""
    response = await client.get("/v1/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
