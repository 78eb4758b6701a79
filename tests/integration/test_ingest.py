"""Ingest: per-event results, duplicates, conflicts, atomic batches, request idempotency, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from stripemeter.api.app import Services
from stripemeter.domain.periods import calendar_month
from stripemeter.store.tables import counters, events

TS = "2025-01-16T14:30:00Z"


def event(**changes: Any) -> dict[str, Any]:
    return {"metric": "api_calls", "customerRef": "cus_1", "quantity": 10, "ts": TS, **changes}


async def ledger_size(services: Services) -> int:
    async with services.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(events))).scalar_one())


async def counter_sum(
    services: Services, customer: str = "cus_1", metric: str = "api_calls"
) -> Any:
    start = calendar_month(datetime(2025, 1, 16, tzinfo=UTC)).start
    async with services.db.read() as conn:
        return (
            (
                await conn.execute(
                    select(counters).where(
                        counters.c.customer_ref == customer,
                        counters.c.metric == metric,
                        counters.c.period_start == start,
                    )
                )
            )
            .mappings()
            .first()
        )


async def test_results_come_back_per_event_in_input_order(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Valid events are stored even when their neighbours are rejected; each result carries its index."""
    body = {"events": [event(), event(quantity=-1), event(quantity=5), event(ts="yesterday")]}
    response = await api.post("/v1/events/ingest", json=body)
    assert response.status_code == 200
    data = response.json()
    assert [r["status"] for r in data["results"]] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
    ]
    assert [r["index"] for r in data["results"]] == [0, 1, 2, 3]
    assert data["results"][1]["error"] == {
        "field": "quantity",
        "code": "negative_quantity",
        "message": data["results"][1]["error"]["message"],
    }
    assert (data["accepted"], data["rejected"]) == (2, 2)
    assert data["errors"][0]["index"] == 1
    row = await counter_sum(app_services)
    assert (row["sum"], row["count"], row["max"]) == (15, 2, 10)


async def test_a_batch_of_only_rejected_events_is_a_400_with_every_reason(
    api: httpx.AsyncClient,
) -> None:
    """When nothing could be stored the status says so, in the envelope, with per-event details."""
    response = await api.post("/v1/events/ingest", json={"events": [event(quantity="x")]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_quantity"
    assert error["param"] == "events[0].quantity"
    assert error["details"][0]["index"] == 0


async def test_a_reused_key_with_another_payload_is_a_conflict_and_not_counted(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """The first payload under a key wins; a different one is reported, never silently dropped."""
    first = await api.post("/v1/events/ingest", json={"events": [event(idempotencyKey="k1")]})
    assert first.json()["accepted"] == 1
    second = await api.post(
        "/v1/events/ingest", json={"events": [event(idempotencyKey="k1", quantity=99)]}
    )
    result = second.json()["results"][0]
    assert result["status"] == "conflict"
    assert result["reason"] == "idempotency_key_reused"
    assert result["eventId"] == first.json()["results"][0]["eventId"]
    assert (await counter_sum(app_services))["sum"] == 10


async def test_repeats_inside_one_batch_are_duplicates_or_conflicts(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """The first occurrence in a batch is stored; later copies are reported against it."""
    body = {
        "events": [
            event(idempotencyKey="a"),
            event(idempotencyKey="a"),
            event(idempotencyKey="a", quantity=3),
        ]
    }
    data = (await api.post("/v1/events/ingest", json=body)).json()
    assert [r["status"] for r in data["results"]] == ["accepted", "duplicate", "conflict"]
    assert len({r["eventId"] for r in data["results"]}) == 1
    assert await ledger_size(app_services) == 1


async def test_keys_are_per_tenant(
    api: httpx.AsyncClient, app_services: Services, client: httpx.AsyncClient
) -> None:
    """Two tenants may use the same client key without touching each other's events."""
    from tests.conftest import issue

    other = await issue(app_services, "globex", "events:write")
    await api.post("/v1/events/ingest", json={"events": [event(idempotencyKey="shared")]})
    response = await client.post(
        "/v1/events/ingest",
        json={"events": [event(idempotencyKey="shared", quantity=7)]},
        headers={"Authorization": f"Bearer {other.key}"},
    )
    assert response.json()["results"][0]["status"] == "accepted"


async def test_atomic_batches_store_nothing_when_one_event_is_invalid(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """?atomic=true turns one rejection into a 400 for the batch, and nothing is stored."""
    response = await api.post(
        "/v1/events/ingest?atomic=true", json={"events": [event(), event(quantity=-1)]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batch_rejected"
    assert response.json()["error"]["details"] == [
        {
            "index": 1,
            "field": "quantity",
            "code": "negative_quantity",
            "message": response.json()["error"]["details"][0]["message"],
        }
    ]
    assert await ledger_size(app_services) == 0


async def test_atomic_batches_store_nothing_on_a_conflict(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A conflicting key in an atomic batch rolls back the whole batch."""
    await api.post("/v1/events/ingest", json={"events": [event(idempotencyKey="c")]})
    response = await api.post(
        "/v1/events/ingest?atomic=true",
        json={"events": [event(idempotencyKey="fresh"), event(idempotencyKey="c", quantity=2)]},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert await ledger_size(app_services) == 1


async def test_the_idempotency_key_header_replays_the_stored_response(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """The same header and body gets the first response again; nothing is counted twice."""
    body = {"events": [event(), event(quantity=2)]}
    headers = {"Idempotency-Key": "req-1"}
    first = await api.post("/v1/events/ingest", json=body, headers=headers)
    second = await api.post("/v1/events/ingest", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert (await counter_sum(app_services))["sum"] == 12


async def test_the_idempotency_key_header_with_another_body_is_409(api: httpx.AsyncClient) -> None:
    """Reusing a request key for a different request is refused."""
    await api.post(
        "/v1/events/ingest", json={"events": [event()]}, headers={"Idempotency-Key": "r"}
    )
    response = await api.post(
        "/v1/events/ingest", json={"events": [event(quantity=3)]}, headers={"Idempotency-Key": "r"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"


async def test_late_events_within_the_window_count_and_beyond_it_are_held(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """The watermark follows the greatest event time; older than 48 h behind it is held, not counted."""
    body = {
        "events": [
            event(ts="2025-01-20T00:00:00Z", quantity=1),
            event(ts="2025-01-18T00:00:00Z", quantity=2),  # exactly 48 h late: counted
            event(ts="2025-01-17T23:59:59Z", quantity=4),  # beyond: held
        ]
    }
    data = (await api.post("/v1/events/ingest", json=body)).json()
    assert [r["status"] for r in data["results"]] == ["accepted", "accepted", "held"]
    assert data["results"][2]["reason"] == "beyond_lateness_window"
    row = await counter_sum(app_services)
    assert (row["sum"], row["count"], row["last"]) == (3, 2, 1)
    assert row["watermark"] == datetime(2025, 1, 20, tzinfo=UTC)
    resend = (await api.post("/v1/events/ingest", json={"events": [body["events"][2]]})).json()
    assert resend["results"][0]["status"] == "duplicate"  # a held event is stored: nothing is lost


async def test_events_land_in_the_period_of_their_time(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """An event exactly at a month's start belongs to that month, not the one before."""
    await api.post(
        "/v1/events/ingest", json={"events": [event(ts="2025-02-01T00:00:00Z", quantity=3)]}
    )
    assert await counter_sum(app_services) is None
    async with app_services.db.read() as conn:
        starts = [r[0] for r in await conn.execute(select(counters.c.period_start))]
    assert starts == [datetime(2025, 2, 1, tzinfo=UTC)]


async def test_decimals_stay_exact_through_storage_and_sums(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """0.1 + 0.2 is 0.3 here, on both databases."""
    body = {
        "events": [
            event(quantity=0.1, idempotencyKey="a"),
            event(quantity="0.2", idempotencyKey="b"),
        ]
    }
    await api.post("/v1/events/ingest", json=body)
    row = await counter_sum(app_services)
    assert str(row["sum"]) == "0.3"


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        (b"not json", "invalid_json", 400),
        (b"[]", "invalid_body", 400),
        (b'{"events": []}', "empty_batch", 400),
        (b'{"events": [], "extra": 1}', "unknown_field", 400),
    ],
)
async def test_malformed_bodies_get_precise_errors(
    api: httpx.AsyncClient, body: bytes, code: str, status: int
) -> None:
    """A body that is not a batch is refused as a whole with a code saying why."""
    response = await api.post(
        "/v1/events/ingest", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_batches_over_the_limit_are_refused(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """More events than the batch limit is a 400 naming the limit, and nothing is stored."""
    limit = app_services.settings.max_batch_events
    response = await api.post(
        "/v1/events/ingest",
        json={"events": [event(idempotencyKey=str(i)) for i in range(limit + 1)]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batch_too_large"
    assert await ledger_size(app_services) == 0


async def test_bodies_over_the_size_limit_are_413(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """The body limit is enforced before parsing."""
    big = b'{"events": [' + b" " * app_services.settings.max_body_bytes + b"]}"
    response = await api.post(
        "/v1/events/ingest", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_a_thousand_events_in_one_request(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A full batch is stored and counted in one go."""
    base = datetime(2025, 1, 10, tzinfo=UTC)
    body = {
        "events": [
            event(ts=(base + timedelta(seconds=i)).isoformat(), quantity=1) for i in range(1000)
        ]
    }
    data = (await api.post("/v1/events/ingest", json=body)).json()
    assert data["accepted"] == 1000
    row = await counter_sum(app_services)
    assert (row["sum"], row["count"]) == (1000, 1000)


async def test_a_resent_thousand_event_batch_counts_only_its_new_events(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Large groups travel by COPY, which stops at a stored key: the retry still sorts them out."""
    base = datetime(2025, 1, 10, tzinfo=UTC)
    first = [
        event(ts=(base + timedelta(seconds=i)).isoformat(), quantity=1, idempotencyKey=f"k{i}")
        for i in range(1000)
    ]
    stored = (await api.post("/v1/events/ingest", json={"events": first})).json()
    again = [*first[500:], *(dict(e, idempotencyKey=f"n{i}") for i, e in enumerate(first[:300]))]
    data = (await api.post("/v1/events/ingest", json={"events": again})).json()
    assert (data["duplicates"], data["accepted"]) == (500, 300)
    ids = {r["idempotencyKey"]: r["eventId"] for r in stored["results"]}
    assert all(ids[r["idempotencyKey"]] == r["eventId"] for r in data["results"][:500])
    assert await ledger_size(app_services) == 1300
    row = await counter_sum(app_services)
    assert (row["sum"], row["count"]) == (1300, 1300)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # the pool of bare connections
async def test_ingest_survives_its_pooled_connections_dying(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A database restart kills idle pooled connections: the next group runs again on a new one."""
    assert (await api.post("/v1/events", json=event(idempotencyKey="a"))).status_code == 200
    async with app_services.db.read() as conn:
        killed = await conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert killed.scalar_one() >= 1
    response = await api.post("/v1/events", json=event(idempotencyKey="b"))
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    row = await counter_sum(app_services)
    assert (row["sum"], row["count"]) == (20, 2)


async def test_the_single_event_route_has_the_same_semantics(api: httpx.AsyncClient) -> None:
    """POST /v1/events takes one event and answers like a batch of one."""
    first = await api.post("/v1/events", json=event())
    second = await api.post("/v1/events", json=event())
    assert first.json()["results"][0]["status"] == "accepted"
    assert second.json()["results"][0]["status"] == "duplicate"
    bad = await api.post("/v1/events", json=event(metric=""))
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "events[0].metric"


async def test_every_response_carries_a_request_id(api: httpx.AsyncClient) -> None:
    """A request id is generated, or taken from X-Request-Id, and echoed in the body."""
    response = await api.post(
        "/v1/events/ingest", json={"events": [event()]}, headers={"X-Request-Id": "abc-123"}
    )
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["requestId"] == "abc-123"
    generated = await api.post("/v1/events/ingest", json={"events": [event(quantity=2)]})
    assert generated.headers["x-request-id"].startswith("req_")


async def test_events_for_an_invoiced_period_are_held_not_counted(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Once a customer's period is closed (invoice finalized), its events wait for review."""
    from stripemeter.store import billing

    january = calendar_month(datetime(2025, 1, 16, tzinfo=UTC))
    await api.post("/v1/events/ingest", json={"events": [event(quantity=10)]})
    async with app_services.db.write() as conn:
        await billing.close_period(conn, "acme", "cus_1", january, "in_1", datetime.now(UTC))
    body = {
        "events": [event(quantity=5, idempotencyKey="late"), event(quantity=7, customerRef="cus_2")]
    }
    data = (await api.post("/v1/events/ingest", json=body)).json()
    assert [(r["status"], r.get("reason")) for r in data["results"]] == [
        ("held", "period_closed"),
        ("accepted", None),
    ]
    assert (await counter_sum(app_services))["sum"] == 10
