"""Alert tests: settings that let receivers on 127.0.0.1 in, and helpers to ingest and evaluate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from stripemeter.config import Settings
from stripemeter.domain.times import canonical_time


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Test settings: private targets allowed (local receivers), fast delivery retries, a slow loop."""
    return Settings(
        database_url=database_url,
        log_format="console",
        log_level="WARNING",
        alerts_allow_private_targets=True,
        alerts_interval_seconds=3600,
        alerts_delivery_interval_seconds=0.05,
        alerts_delivery_backoff_seconds=0.05,
        alerts_delivery_max_attempts=3,
    )


def now_text(at: datetime | None = None) -> str:
    """An RFC 3339 time (default: now)."""
    return canonical_time(at or datetime.now(UTC))


async def ingest(
    api: httpx.AsyncClient,
    metric: str,
    customer: str,
    quantity: Any,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Ingest one event and return its result."""
    body = {"metric": metric, "customerRef": customer, "quantity": quantity, "ts": now_text(at)}
    response = await api.post("/v1/events/ingest", json={"events": [body]})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


async def create_rule(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """Create a rule (log channel by default) and return it."""
    body = {"name": "rule", "channels": [{"type": "log"}]} | fields
    response = await api.post("/v1/alerts", json=body)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


async def evaluate(api: httpx.AsyncClient) -> list[str]:
    """Run one evaluation; the transitions it made."""
    response = await api.post("/v1/alerts/evaluate")
    assert response.status_code == 200, response.text
    return [t["transition"] for t in response.json()["transitions"]]


async def states(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """The tenant's alert states."""
    response = await api.get("/v1/alerts/states", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def history(api: httpx.AsyncClient, **params: Any) -> list[str]:
    """The tenant's transitions, oldest first."""
    response = await api.get("/v1/alerts/events", params=params)
    assert response.status_code == 200, response.text
    return [e["transition"] for e in reversed(response.json()["data"])]


def alerts_of(services: Services) -> Any:
    """The alert service of a running app."""
    return services.alerts
