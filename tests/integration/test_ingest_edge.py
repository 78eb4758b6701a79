"""The ingest edge answers exactly as the routes it serves ahead of the router.

Every case runs twice in one app: once through the edge (as tenant ``edge``) and once through the
router with the edge switched off (as tenant ``routed``); status, headers that matter and bodies
must be equal, event ids and derived keys aside (they differ per tenant).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import structlog.testing

from stripemeter.api.app import Services
from stripemeter.config import Settings
from tests.conftest import issue

EVENT = {
    "metric": "api_calls",
    "customerRef": "cus_1",
    "quantity": "2.5",
    "ts": "2026-11-20T10:00:00Z",
}
LIMIT = 50  # max_batch_events in this test's settings

Case = tuple[str, dict[str, str], bytes]  # path, headers, body


def _cases(key: str, read_only: str, other_tenant: str) -> dict[str, Case]:
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    good = {**EVENT, "quantity": "1"}

    def batch(*events: object, **extra: object) -> bytes:
        return json.dumps({**extra, "events": list(events)}).encode()

    def one(**extra: object) -> bytes:
        return json.dumps({**good, **extra}).encode()

    return {
        "single event": ("/v1/events", auth, one(idempotencyKey="s1")),
        "batch": ("/v1/events/ingest", auth, batch(good, good)),
        "partly rejected": ("/v1/events/ingest", auth, batch(good, {"metric": "m"})),
        "all rejected": ("/v1/events/ingest", auth, batch({"metric": ""})),
        "invalid JSON": ("/v1/events/ingest", auth, b'{"events": ['),
        "wrong shape": ("/v1/events/ingest", auth, b'{"event": []}'),
        "unknown top-level field": ("/v1/events/ingest", auth, batch(good, x=1)),
        "empty batch": ("/v1/events/ingest", auth, batch()),
        "batch too large": ("/v1/events/ingest", auth, batch(*[good] * (LIMIT + 1))),
        "body tenant mismatch": ("/v1/events/ingest", auth, batch(good, tenantId=other_tenant)),
        "event tenant mismatch": (
            "/v1/events/ingest",
            auth,
            batch({**good, "tenantId": other_tenant}),
        ),
        "no key": ("/v1/events", {"Content-Type": "application/json"}, one()),
        "not bearer": ("/v1/events", {**auth, "Authorization": f"Basic {key}"}, one()),
        "unknown key": ("/v1/events", {**auth, "Authorization": "Bearer sm_nope"}, one()),
        "x-api-key": ("/v1/events", {"x-api-key": key}, one()),
        "missing scope": ("/v1/events", {**auth, "Authorization": f"Bearer {read_only}"}, one()),
        "body over the limit": ("/v1/events/ingest", auth, b" " * 70_000),
        "idempotency key too long": ("/v1/events", {**auth, "Idempotency-Key": "k" * 256}, one()),
    }


def _normalised(response: httpx.Response) -> tuple[int, str | None, str | None, str | None, Any]:
    body = re.sub(r'"eventId":\d+', '"eventId":0', response.text)
    body = re.sub(r"evt_[0-9a-f]{32}", "evt_derived", body)  # derived keys hash the tenant too
    body = body.replace("edge", "TENANT").replace("routed", "TENANT")
    return (
        response.status_code,
        response.headers.get("content-type"),
        response.headers.get("www-authenticate"),
        response.headers.get("idempotent-replayed"),
        body,
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small limits, so the limit cases are cheap to send."""
    return settings.model_copy(update={"max_batch_events": LIMIT, "max_body_bytes": 65_536})


@pytest.fixture
async def both(app_services: Services, client: httpx.AsyncClient) -> Callable[..., Any]:
    app = app_services.app  # type: ignore[attr-defined]
    assert app.ingest_edge is not None, "the edge is on by default"
    edge = app.ingest_edge
    keys = {
        "edge": (await issue(app_services, "edge", "events:write")).key,
        "routed": (await issue(app_services, "routed", "events:write")).key,
    }
    readers = {
        "edge": (await issue(app_services, "edge", "events:read")).key,
        "routed": (await issue(app_services, "routed", "events:read")).key,
    }

    async def send(name: str, tenant: str, *, with_edge: bool, **extra: str) -> httpx.Response:
        other = "routed" if tenant == "edge" else "edge"
        path, headers, body = _cases(keys[tenant], readers[tenant], other)[name]
        app.ingest_edge = edge if with_edge else None
        try:
            return await client.post(
                path, content=body, headers={**headers, "X-Request-Id": "req-1", **extra}
            )
        finally:
            app.ingest_edge = edge

    return send


CASES = list(_cases("k", "r", "t"))


@pytest.mark.parametrize("name", CASES)
async def test_the_edge_answers_like_the_router(both: Callable[..., Any], name: str) -> None:
    through_edge = await both(name, "edge", with_edge=True)
    routed = await both(name, "routed", with_edge=False)
    assert _normalised(through_edge) == _normalised(routed)
    assert through_edge.headers["x-request-id"] == routed.headers["x-request-id"] == "req-1"


async def test_idempotent_requests_replay_alike(both: Callable[..., Any]) -> None:
    for with_edge, tenant in ((True, "edge"), (False, "routed")):
        first = await both("batch", tenant, with_edge=with_edge, **{"Idempotency-Key": "r1"})
        again = await both("batch", tenant, with_edge=with_edge, **{"Idempotency-Key": "r1"})
        other = await both("single event", tenant, with_edge=with_edge, **{"Idempotency-Key": "r1"})
        assert first.status_code == again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.text == first.text
        assert other.status_code == 409
        assert other.json()["error"]["type"] == "idempotency_error"


async def test_the_edge_serves_only_plain_ingest_posts(
    app_services: Services, client: httpx.AsyncClient
) -> None:
    """A query string (atomic, tenantId) goes through the router, which knows those parameters."""
    key = (await issue(app_services, "acme", "events:write")).key
    body = {"events": [{**EVENT, "quantity": "-1"}, EVENT]}
    response = await client.post(
        "/v1/events/ingest?atomic=true", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batch_rejected"


@pytest.mark.parametrize("name", ["single event", "missing scope", "invalid JSON"])
async def test_the_edge_logs_like_the_router(both: Callable[..., Any], name: str) -> None:
    """One request line each, with the same fields (the tenant and key once the key is known)."""
    lines = []
    for with_edge, tenant in ((True, "edge"), (False, "routed")):
        with structlog.testing.capture_logs() as captured:
            await both(name, tenant, with_edge=with_edge)
        [line] = [c for c in captured if c["event"] == "request"]
        assert line["request_id"] == "req-1"
        assert line.pop("tenant", tenant) == tenant
        line.pop("key_id", None)
        line.pop("duration_ms")
        lines.append(line)
    assert lines[0] == lines[1]
