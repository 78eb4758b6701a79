"""Held events: listed with their reason, approved exactly once as an adjustment, or dismissed."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
from sqlalchemy import select

from stripemeter.api.app import Services
from stripemeter.store.tables import adjustments
from tests.conftest import issue
from tests.integration._counters import audit_actions, bearer, event, hold_one, ingest, stored


async def test_a_late_event_beyond_the_window_is_held_and_not_counted(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """An event older than watermark minus 48 h is stored as held, listed with its reason, not counted."""
    event_id = await hold_one(api, quantity=5)
    state = await stored(app_services)
    assert state is not None
    assert (state.sum, state.count) == (Decimal(10), 1)
    response = await api.get("/v1/events/held")
    assert response.status_code == 200, response.text
    [held] = response.json()["events"]
    assert held["id"] == event_id
    assert held["reason"] == "beyond_lateness_window"
    assert held["quantity"] == 5
    assert held["ts"] == "2025-01-10T00:00:00Z"
    assert held["review"] is None


async def test_approving_counts_the_event_exactly_once_and_is_audited(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Approval folds the event into its counter once, records an adjustment and an audit entry."""
    event_id = await hold_one(api, quantity=5)
    response = await api.post(f"/v1/events/held/{event_id}/approve", json={"note": "late ETL"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "approved"
    assert body["counter"]["sum"] == 15
    assert body["counter"]["count"] == 2
    state = await stored(app_services)
    assert state is not None
    assert (state.sum, state.count, state.max) == (Decimal(15), 2, Decimal(10))
    # Re-sending the approved event is a duplicate, never a second count.
    [again] = await ingest(api, event("2025-01-10T00:00:00Z", 5))
    assert again["status"] == "duplicate"
    state = await stored(app_services)
    assert state is not None
    assert state.sum == Decimal(15)
    async with app_services.db.read() as conn:
        [adjustment] = (await conn.execute(select(adjustments))).mappings().all()
    assert adjustment["event_id"] == event_id
    assert adjustment["status"] == "approved"
    assert adjustment["delta"] == Decimal(5)
    assert "held_event.approved" in await audit_actions(app_services)
    entries = (await api.get("/v1/audit")).json()["entries"]
    approved = next(e for e in entries if e["action"] == "held_event.approved")
    assert approved["targetId"] == str(event_id)
    assert approved["details"]["note"] == "late ETL"
    assert (await api.get("/v1/events/held")).json()["events"] == []
    listed = (await api.get("/v1/events/held", params={"status": "approved"})).json()["events"]
    assert [e["id"] for e in listed] == [event_id]
    assert listed[0]["review"]["decision"] == "approved"


async def test_a_second_decision_is_409(api: httpx.AsyncClient, app_services: Services) -> None:
    """Approving twice, or dismissing after approval, is 409 already_reviewed and counts nothing more."""
    event_id = await hold_one(api)
    assert (await api.post(f"/v1/events/held/{event_id}/approve")).status_code == 200
    for action in ("approve", "dismiss"):
        response = await api.post(f"/v1/events/held/{event_id}/{action}")
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "already_reviewed"
    state = await stored(app_services)
    assert state is not None
    assert (state.sum, state.count) == (Decimal(15), 2)


async def test_dismissing_leaves_counters_unchanged(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A dismissed event stays in the ledger, uncounted, with a review and an audit entry."""
    event_id = await hold_one(api)
    before = await stored(app_services)
    response = await api.post(f"/v1/events/held/{event_id}/dismiss", json={"note": "test data"})
    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "dismissed"
    assert await stored(app_services) == before
    assert "held_event.dismissed" in await audit_actions(app_services)
    async with app_services.db.read() as conn:
        assert (await conn.execute(select(adjustments))).first() is None
    again = await api.post(f"/v1/events/held/{event_id}/approve")
    assert again.status_code == 409
    dismissed = await api.get("/v1/events/held", params={"status": "dismissed"})
    assert [e["id"] for e in dismissed.json()["events"]] == [event_id]


async def test_only_held_events_can_be_reviewed(api: httpx.AsyncClient) -> None:
    """An accepted event is 409 event_not_held; an id that does not exist is 404."""
    [accepted] = await ingest(api, event("2025-01-20T00:00:00Z"))
    response = await api.post(f"/v1/events/held/{accepted['eventId']}/approve")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "event_not_held"
    assert (await api.post("/v1/events/held/999999/dismiss")).status_code == 404


async def test_the_queue_is_cursor_paginated(api: httpx.AsyncClient) -> None:
    """Pages of held events follow nextCursor, newest first, without repeats."""
    await ingest(api, event("2025-01-20T00:00:00Z"))
    held = await ingest(api, *(event(f"2025-01-0{day}T00:00:00Z") for day in (1, 2, 3)))
    ids = sorted((r["eventId"] for r in held), reverse=True)
    first = (await api.get("/v1/events/held", params={"limit": 2})).json()
    assert [e["id"] for e in first["events"]] == ids[:2]
    assert first["hasMore"] is True
    second = (
        await api.get("/v1/events/held", params={"limit": 2, "cursor": first["nextCursor"]})
    ).json()
    assert [e["id"] for e in second["events"]] == ids[2:]
    assert second["hasMore"] is False
    assert second["nextCursor"] is None
    bad = await api.get("/v1/events/held", params={"cursor": "nonsense"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_cursor"


async def test_another_tenants_held_event_is_invisible(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Another tenant's key cannot list, approve or dismiss acme's held event (404, counters unchanged)."""
    event_id = await hold_one(api)
    other = await issue(app_services, "globex")
    headers = bearer(other.key)
    assert (await api.get("/v1/events/held", headers=headers)).json()["events"] == []
    for action in ("approve", "dismiss"):
        response = await api.post(f"/v1/events/held/{event_id}/{action}", headers=headers)
        assert response.status_code == 404, response.text
    state = await stored(app_services)
    assert state is not None
    assert state.sum == Decimal(10)
    foreign = await api.post(f"/v1/events/held/{event_id}/approve", json={"tenantId": "globex"})
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "tenant_mismatch"
    pending = (await api.get("/v1/events/held")).json()["events"]
    assert [e["id"] for e in pending] == [event_id]


async def test_review_routes_check_scopes(api: httpx.AsyncClient, app_services: Services) -> None:
    """Listing needs events:read and deciding needs adjustments:approve (403 missing_scope otherwise)."""
    event_id = await hold_one(api)
    writer = await issue(app_services, "acme", "events:write")
    reader = await issue(app_services, "acme", "events:read")
    approver = await issue(app_services, "acme", "adjustments:approve")
    denied = await api.get("/v1/events/held", headers=bearer(writer.key))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "missing_scope"
    assert (await api.get("/v1/events/held", headers=bearer(reader.key))).status_code == 200
    for action in ("approve", "dismiss"):
        response = await api.post(
            f"/v1/events/held/{event_id}/{action}", headers=bearer(reader.key)
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "missing_scope"
    ok = await api.post(f"/v1/events/held/{event_id}/approve", headers=bearer(approver.key))
    assert ok.status_code == 200, ok.text
    assert ok.json()["actor"] == f"key:{approver.id}"


async def test_concurrent_approvals_count_the_event_once(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Two approvals racing for one event: one wins, the other is 409, the counter moves once."""
    event_id = await hold_one(api, quantity=5)
    responses = await asyncio.gather(
        *(
            api.post(f"/v1/events/held/{event_id}/{action}")
            for action in ("approve", "approve", "dismiss")
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409, 409], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()["decision"]
    state = await stored(app_services)
    assert state is not None
    assert state.sum == (Decimal(15) if winner == "approved" else Decimal(10))


async def test_malformed_review_input_is_400(api: httpx.AsyncClient) -> None:
    """Ids beyond 64 bits, notes with NUL and control characters in filters are 400s."""
    event_id = await hold_one(api)
    assert (await api.post(f"/v1/events/held/{2**64}/approve")).status_code == 400
    nul = await api.post(f"/v1/events/held/{event_id}/approve", json={"note": "a\u0000b"})
    assert nul.status_code == 400
    assert nul.json()["error"]["param"] == "note"
    assert (await api.get("/v1/events/held", params={"metric": "a\u0001"})).status_code == 400
    assert (await api.get("/v1/events/held", params={"sort": "id"})).status_code == 400
