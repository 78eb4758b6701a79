"""Alert tests: settings that let receivers on 127.0.0.1 in, and helpers to ingest and evaluate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from stripemeter.config import Settings
from stripemeter.domain.times import canonical_time

REPEAT = 3  # evaluations after the first that must change nothing
_RUNNING: dict[str, Services] = {}
_SEEN = {"transitions": 0}


@pytest.fixture(autouse=True)
def _track_running_app(request: pytest.FixtureRequest) -> None:
    """Remember the test's running app (if any) and start counting its transitions afresh."""
    _RUNNING.clear()
    _SEEN["transitions"] = 0
    if "app_services" in request.fixturenames:
        _RUNNING["app"] = request.getfixturevalue("app_services")


async def settled() -> None:
    """Wait until the ingest hook has evaluated everything ingested so far."""
    services = _RUNNING.get("app")
    if services is not None:
        await services.alerts.evaluator.settled()


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
    await settled()
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


async def settle(api: httpx.AsyncClient) -> list[str]:
    """Evaluate, then again a few times; the transitions recorded since the last ``settle``.

    Counts what any path recorded (this evaluation, the ingest hook, the background loop), and
    checks that evaluating again records nothing more.
    """
    await settled()
    await evaluate(api)
    after = await history(api)
    for _ in range(REPEAT):
        assert await evaluate(api) == []
    assert await history(api) == after
    new = after[_SEEN["transitions"] :]
    _SEEN["transitions"] = len(after)
    return new
