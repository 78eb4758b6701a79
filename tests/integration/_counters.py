"""Helpers shared by the review, metric-settings and replay tests: events, keys, stored counters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from stripemeter.api.app import Services
from stripemeter.domain.aggregation import CounterState
from stripemeter.store import counters
from stripemeter.store.counters import CounterKey
from stripemeter.store.tables import audit_log

JAN = datetime(2025, 1, 1, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)


def event(ts: str, quantity: Any = 10, **changes: Any) -> dict[str, Any]:
    """A wire event of api_calls for cus_1 (overridable)."""
    return {
        "metric": "api_calls",
        "customerRef": "cus_1",
        "quantity": quantity,
        "ts": ts,
        **changes,
    }


async def ingest(api: httpx.AsyncClient, *events: dict[str, Any]) -> list[dict[str, Any]]:
    """Ingest a batch and return its per-event results."""
    response = await api.post("/v1/events/ingest", json={"events": list(events)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def hold_one(api: httpx.AsyncClient, quantity: Any = 5, customer: str = "cus_1") -> int:
    """Count an event on Jan 20, then send one from Jan 10 (beyond 48 h): returns the held event's id."""
    await ingest(api, event("2025-01-20T00:00:00Z", 10, customerRef=customer))
    [held] = await ingest(api, event("2025-01-10T00:00:00Z", quantity, customerRef=customer))
    assert held["status"] == "held", held
    assert held["reason"] == "beyond_lateness_window"
    return int(held["eventId"])


async def stored(
    services: Services,
    tenant: str = "acme",
    metric: str = "api_calls",
    customer: str = "cus_1",
    period_start: datetime = JAN,
) -> CounterState | None:
    """The counter as stored, or None."""
    key = CounterKey(tenant, metric, customer, period_start)
    async with services.db.read() as conn:
        return (await counters.load(conn, [key])).get(key)


async def audit_actions(services: Services, tenant: str = "acme") -> list[str]:
    """The tenant's audit actions, oldest first."""
    async with services.db.read() as conn:
        rows = await conn.execute(
            audit_log.select().where(audit_log.c.tenant_id == tenant).order_by(audit_log.c.id)
        )
        return [row.action for row in rows]


def bearer(key: str) -> dict[str, str]:
    """Authorization header for a key."""
    return {"Authorization": f"Bearer {key}"}
