"""Reading the ledger: GET /v1/events (filters, cursor pages, CSV export) and GET /v1/events/{id}."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from stripemeter.api import read_wire
from stripemeter.api.app import Services
from stripemeter.services import events_read
from stripemeter.store import adjustments
from tests.conftest import issue


def event(ts: str, quantity: Any = 1, **extra: Any) -> dict[str, Any]:
    """A wire event for acme's api_calls metric of cus_1 unless overridden."""
    return {"metric": "api_calls", "customerRef": "cus_1", "quantity": quantity, "ts": ts, **extra}


async def ingest(api: httpx.AsyncClient, *events: dict[str, Any]) -> list[dict[str, Any]]:
    """Ingest events and return their per-event results."""
    response = await api.post("/v1/events/ingest", json={"events": list(events)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def ids(body: dict[str, Any]) -> list[int]:
    """The event ids of a listing page, in order."""
    return [e["id"] for e in body["events"]]


async def review(services: Services, event_id: int, decision: str) -> None:
    """Record a review decision on a held event, as the review workflow does."""
    async with services.db.write() as conn:
        await adjustments.insert_review(
            conn, tenant_id="acme", event_id=event_id, decision=decision, actor="ops@acme",
            note=None, adjustment_id=None, now=datetime(2025, 2, 1, tzinfo=UTC),
        )  # fmt: skip


async def test_list_returns_the_full_event_shape_newest_first(api: httpx.AsyncClient) -> None:
    """Every documented field is present, quantities stay exact and the newest event comes first."""
    first, second = await ingest(
        api,
        event("2025-01-16T14:30:00.123456789Z", "0.1", resourceId="r1", meta={"region": "eu"},
              idempotencyKey="k-1", source="sdk"),
        event("2025-01-16T15:00:00Z", 5),
    )  # fmt: skip
    response = await api.get("/v1/events")
    assert response.status_code == 200, response.text
    body = response.json()
    assert ids(body) == [second["eventId"], first["eventId"]]
    assert body["hasMore"] is False
    assert body["nextCursor"] is None
    assert body["events"][1] == {
        "id": first["eventId"],
        "idempotencyKey": "k-1",
        "tenantId": "acme",
        "metric": "api_calls",
        "customerRef": "cus_1",
        "resourceId": "r1",
        "quantity": 0.1,
        "ts": "2025-01-16T14:30:00.123456789Z",
        "periodStart": "2025-01-01T00:00:00Z",
        "status": "accepted",
        "heldReason": None,
        "review": None,
        "source": "sdk",
        "meta": {"region": "eu"},
        "receivedAt": body["events"][1]["receivedAt"],
    }
    assert '"quantity":0.1' in response.text


async def test_filters_by_metric_customer_and_source(api: httpx.AsyncClient) -> None:
    """metric, customerRef and source each narrow the listing to exactly the matching events."""
    results = await ingest(
        api,
        event("2025-01-16T10:00:00Z"),
        event("2025-01-16T10:00:01Z", metric="storage_gb"),
        event("2025-01-16T10:00:02Z", customerRef="cus_2"),
        event("2025-01-16T10:00:03Z", source="etl"),
    )
    all_ids = [r["eventId"] for r in results]
    by_metric = (await api.get("/v1/events", params={"metric": "storage_gb"})).json()
    assert ids(by_metric) == [all_ids[1]]
    by_customer = (await api.get("/v1/events", params={"customerRef": "cus_2"})).json()
    assert ids(by_customer) == [all_ids[2]]
    by_source = (await api.get("/v1/events", params={"source": "etl"})).json()
    assert ids(by_source) == [all_ids[3]]
    combined = (
        await api.get("/v1/events", params={"metric": "api_calls", "customerRef": "cus_1"})
    ).json()
    assert sorted(ids(combined)) == [all_ids[0], all_ids[3]]


async def test_time_range_is_half_open_on_event_time(api: httpx.AsyncClient) -> None:
    """from is inclusive and to exclusive, and startTime/endTime are the same filters."""
    results = await ingest(
        api,
        event("2025-01-16T09:59:59.999999Z"),
        event("2025-01-16T10:00:00Z"),
        event("2025-01-16T10:30:00+01:00"),  # 09:30Z
        event("2025-01-16T11:00:00Z"),
    )
    window = {"from": "2025-01-16T10:00:00Z", "to": "2025-01-16T11:00:00Z"}
    body = (await api.get("/v1/events", params=window)).json()
    assert ids(body) == [results[1]["eventId"]]
    aliased = {"startTime": window["from"], "endTime": window["to"]}
    assert ids((await api.get("/v1/events", params=aliased)).json()) == ids(body)
    offset = {"from": "2025-01-16T10:00:00+01:00", "to": "2025-01-16T10:00:00Z"}
    assert ids((await api.get("/v1/events", params=offset)).json()) == [
        results[2]["eventId"],
        results[0]["eventId"],
    ]


async def test_status_filter_tells_held_from_reviewed_events(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """held lists only events awaiting review; approved and dismissed ones carry their review."""
    results = await ingest(
        api,
        event("2025-01-20T00:00:00Z"),
        event("2025-01-10T00:00:00Z"),  # beyond the 48 h lateness window: held
        event("2025-01-11T00:00:00Z"),
        event("2025-01-12T00:00:00Z"),
    )
    accepted, approved, dismissed, waiting = (r["eventId"] for r in results)
    assert [r["status"] for r in results] == ["accepted", "held", "held", "held"]
    await review(app_services, approved, "approved")
    await review(app_services, dismissed, "dismissed")

    async def listed(status: str) -> list[dict[str, Any]]:
        response = await api.get("/v1/events", params={"status": status})
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    assert [e["id"] for e in await listed("accepted")] == [accepted]
    held = await listed("held")
    assert [e["id"] for e in held] == [waiting]
    assert held[0]["heldReason"] == "beyond_lateness_window"
    assert held[0]["review"] is None
    approved_rows = await listed("approved")
    assert [e["id"] for e in approved_rows] == [approved]
    assert approved_rows[0]["status"] == "approved"
    assert approved_rows[0]["review"] == {
        "decision": "approved",
        "actor": "ops@acme",
        "decidedAt": "2025-02-01T00:00:00Z",
    }
    assert [e["id"] for e in await listed("dismissed")] == [dismissed]


async def test_cursor_pages_visit_every_event_exactly_once(api: httpx.AsyncClient) -> None:
    """Following nextCursor through pages of 4 yields every matching event once, newest first."""
    results = await ingest(
        api,
        *[event(f"2025-01-16T10:00:{i:02d}Z", i, customerRef=f"cus_{i % 2}") for i in range(23)],
    )
    expected = sorted((r["eventId"] for r in results), reverse=True)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor is not None:
            params["cursor"] = cursor
        body = (await api.get("/v1/events", params=params)).json()
        seen.extend(ids(body))
        pages += 1
        assert body["hasMore"] is (body["nextCursor"] is not None)
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 6
    filtered: list[int] = []
    cursor = None
    while True:
        params = {"limit": 5, "customerRef": "cus_0", **({"cursor": cursor} if cursor else {})}
        body = (await api.get("/v1/events", params=params)).json()
        filtered.extend(ids(body))
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert filtered == [r["eventId"] for r in reversed(results) if r["index"] % 2 == 0]


async def test_default_page_size_is_fifty(api: httpx.AsyncClient) -> None:
    """Without limit a page holds 50 events and says more follow."""
    await ingest(api, *[event(f"2025-01-16T10:{i // 60:02d}:{i % 60:02d}Z") for i in range(51)])
    body = (await api.get("/v1/events")).json()
    assert len(body["events"]) == 50
    assert body["hasMore"] is True


async def test_csv_export_streams_every_match_with_rfc4180_quoting(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """format=csv is an attachment with a header row and one quoted row per event, across chunks."""
    monkeypatch.setattr(events_read, "EXPORT_CHUNK", 3)  # several database reads
    monkeypatch.setattr(read_wire, "CSV_ROWS_PER_CHUNK", 2)  # several response chunks
    results = await ingest(
        api,
        *[event(f"2025-01-16T10:00:{i:02d}Z", i) for i in range(7)],
        event("2025-01-16T11:00:00Z", "2.5", customerRef='cus "quoted", with comma',
              meta={"note": "line\nbreak"}),
        event("2025-01-16T12:00:00Z", metric="other"),
    )  # fmt: skip
    response = await api.get("/v1/events", params={"format": "csv", "metric": "api_calls"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="events-acme-')
    assert disposition.endswith('.csv"')
    assert response.text.endswith("\r\n")
    assert '"cus ""quoted"", with comma"' in response.text
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0] == list(read_wire.CSV_COLUMNS)
    assert [int(row[0]) for row in rows[1:]] == [r["eventId"] for r in reversed(results[:8])]
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["customerRef"] == 'cus "quoted", with comma'
    assert record["quantity"] == "2.5"
    assert record["ts"] == "2025-01-16T11:00:00Z"
    assert record["status"] == "accepted"
    assert record["meta"] == '{"note":"line\\nbreak"}'
    assert record["tenantId"] == "acme"


async def test_get_event_by_id(api: httpx.AsyncClient) -> None:
    """An event is readable by its id; an unknown or absurd id is a 404 in the error envelope."""
    (result,) = await ingest(api, event("2025-01-16T10:00:00Z", 3))
    response = await api.get(f"/v1/events/{result['eventId']}")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == result["eventId"]
    assert response.json()["quantity"] == 3
    for unknown in (result["eventId"] + 1000, 0, 2**70):
        missing = await api.get(f"/v1/events/{unknown}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "event_not_found"


async def test_another_tenant_sees_none_of_these_events(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A second tenant's key lists nothing, exports only a header and gets 404 for acme's ids."""
    (result,) = await ingest(api, event("2025-01-16T10:00:00Z"))
    other = await issue(app_services, "globex", "events:read")
    headers = {"Authorization": f"Bearer {other.key}"}
    listing = await api.get("/v1/events", headers=headers)
    assert listing.json() == {"events": [], "hasMore": False, "nextCursor": None}
    export = await api.get("/v1/events", params={"format": "csv"}, headers=headers)
    assert export.text.count("\r\n") == 1
    by_id = await api.get(f"/v1/events/{result['eventId']}", headers=headers)
    assert by_id.status_code == 404
    assert by_id.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/events", {}),
        ("/v1/events", {"format": "csv"}),
        ("/v1/events/1", {}),
    ],
)
async def test_a_foreign_tenant_id_is_forbidden(
    api: httpx.AsyncClient, app_services: Services, path: str, params: dict[str, str]
) -> None:
    """A tenantId query naming another tenant is refused with 403; the key's own tenant is fine."""
    await ingest(api, event("2025-01-16T10:00:00Z"))
    other = await issue(app_services, "globex", "events:read")
    response = await api.get(
        path,
        params={**params, "tenantId": "acme"},
        headers={"Authorization": f"Bearer {other.key}"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_mismatch"
    own = await api.get(path, params={**params, "tenantId": "acme"})
    assert own.status_code == 200, own.text


async def test_reading_events_needs_the_events_read_scope(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A key with only events:write may not list or read events."""
    writer = await issue(app_services, "acme", "events:write")
    headers = {"Authorization": f"Bearer {writer.key}"}
    assert (await api.get("/v1/events", headers=headers)).status_code == 403
    assert (await api.get("/v1/events/1", headers=headers)).status_code == 403


BAD_PARAMETERS: list[tuple[dict[str, str], str, str]] = [
    ({"limit": "0"}, "limit", "invalid_parameter"),
    ({"limit": "1001"}, "limit", "invalid_parameter"),
    ({"limit": "ten"}, "limit", "invalid_parameter"),
    ({"status": "pending"}, "status", "invalid_parameter"),
    ({"source": "api"}, "source", "invalid_parameter"),
    ({"from": "yesterday"}, "from", "invalid_time"),
    ({"endTime": "2025-01-16T10:00:00"}, "endTime", "invalid_time"),
    ({"from": "2025-02-30"}, "from", "invalid_time"),
    ({"from": "2025-01-16T10:00:00Z", "to": "2025-01-16T10:00:00Z"}, "to", "invalid_range"),
    ({"from": "2025-01-01", "startTime": "2025-01-02"}, "startTime", "conflicting_parameters"),
    ({"cursor": "not-a-cursor"}, "cursor", "invalid_cursor"),
    ({"offset": "10"}, "offset", "unknown_parameter"),
    ({"format": "xml"}, "format", "invalid_parameter"),
    ({"format": "csv", "limit": "10"}, "limit", "invalid_parameter"),
    ({"format": "csv", "cursor": "x"}, "cursor", "invalid_parameter"),
    ({"metric": "m" * 101}, "metric", "invalid_parameter"),
]


async def test_bad_parameters_are_precise_400s(api: httpx.AsyncClient) -> None:
    """Each invalid listing parameter is a 400 naming that parameter."""
    for params, param, code in BAD_PARAMETERS:
        response = await api.get("/v1/events", params=params)
        assert response.status_code == 400, (params, response.text)
        error = response.json()["error"]
        assert (error["param"], error["code"]) == (param, code), params
    bad_id = await api.get("/v1/events/1", params={"expand": "review"})
    assert bad_id.status_code == 400
    assert bad_id.json()["error"]["param"] == "expand"


async def test_an_unencoded_plus_in_an_offset_gets_a_hint(api: httpx.AsyncClient) -> None:
    """A '+' sent raw in the query turns into a space, and the 400 says how to send it."""
    response = await api.get("/v1/events?from=2025-01-16T10:00:00+01:00")
    assert response.status_code == 400
    assert "%2B" in response.json()["error"]["message"]


async def test_a_cursor_from_another_listing_is_refused(api: httpx.AsyncClient) -> None:
    """A usage/customers cursor is not an events cursor."""
    from stripemeter.services.read_params import encode_cursor

    response = await api.get("/v1/events", params={"cursor": encode_cursor("usage-customers", "x")})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "cursor"
