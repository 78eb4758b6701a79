"""Usage reads: GET /v1/usage/current, /v1/usage/history and /v1/usage/customers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from stripemeter.domain.periods import period_for
from stripemeter.domain.times import canonical_time
from stripemeter.store import adjustments, metric_settings
from stripemeter.store.counters import CounterKey
from tests.conftest import issue

JAN = datetime(2025, 1, 1, tzinfo=UTC)


def event(metric: str, ts: str, quantity: Any, customer: str = "cus_1") -> dict[str, Any]:
    """A wire event."""
    return {"metric": metric, "customerRef": customer, "quantity": quantity, "ts": ts}


async def ingest(api: httpx.AsyncClient, *events: dict[str, Any]) -> list[dict[str, Any]]:
    """Ingest events and return their per-event results."""
    response = await api.post("/v1/events/ingest", json={"events": list(events)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def configure(services: Services, metric: str, aggregation: str, unit: str) -> None:
    """Set a metric's aggregation and unit for acme, as PUT /v1/metrics does."""
    async with services.db.write() as conn:
        await metric_settings.upsert(
            conn, "acme", metric, aggregation=aggregation, lateness_window_seconds=48 * 3600,
            unit=unit, description="", now=datetime.now(UTC),
        )  # fmt: skip
    services.catalog.invalidate("acme")


def by_metric(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The metrics of a usage body keyed by name."""
    return {m["metric"]: m for m in body["metrics"]}


async def test_current_usage_reports_each_metric_by_its_aggregation(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """The billing value follows each metric's aggregation, next to sum, max, last and count."""
    await configure(app_services, "seats", "max", "seat")
    await configure(app_services, "gauge", "last", "gb")
    now = datetime.now(UTC).replace(microsecond=0)
    t0, t1 = canonical_time(now - timedelta(seconds=2)), canonical_time(now - timedelta(seconds=1))
    await ingest(
        api,
        event("seats", t0, 9), event("seats", t1, 4),
        event("gauge", t0, 9), event("gauge", t1, 4),
        event("api_calls", t0, "1.5"), event("api_calls", t1, 2),
        event("api_calls", t1, 100, customer="cus_2"),
    )  # fmt: skip
    response = await api.get("/v1/usage/current", params={"customerRef": "cus_1"})
    assert response.status_code == 200, response.text
    body = response.json()
    period = period_for(now - timedelta(seconds=1))
    assert body["customerRef"] == "cus_1"
    assert body["period"] == {
        "start": canonical_time(period.start),
        "end": canonical_time(period.end),
    }
    metrics = by_metric(body)
    assert sorted(metrics) == ["api_calls", "gauge", "seats"]
    assert metrics["seats"]["value"] == 9
    assert metrics["seats"]["unit"] == "seat"
    assert metrics["gauge"]["value"] == 4
    assert metrics["gauge"]["aggregation"] == "last"
    calls = metrics["api_calls"]
    assert calls["aggregation"] == "sum"
    assert calls["unit"] == "unit"
    assert (calls["value"], calls["sum"], calls["max"], calls["last"], calls["count"]) == (
        3.5, 3.5, 2, 2, 2,
    )  # fmt: skip
    assert calls["watermark"] == t1
    assert calls["updatedAt"] is not None


async def test_current_usage_accepts_a_month(api: httpx.AsyncClient) -> None:
    """period=YYYY-MM reads that month's counters instead of the current one."""
    await ingest(
        api,
        event("api_calls", "2025-01-31T23:59:59Z", 5),
        event("api_calls", "2025-02-01T00:00:00Z", 7),
    )
    january = (
        await api.get("/v1/usage/current", params={"customerRef": "cus_1", "period": "2025-01"})
    ).json()
    assert january["period"] == {"start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z"}
    assert by_metric(january)["api_calls"]["value"] == 5
    february = (
        await api.get("/v1/usage/current", params={"customerRef": "cus_1", "period": "2025-02"})
    ).json()
    assert by_metric(february)["api_calls"]["value"] == 7
    empty = (
        await api.get("/v1/usage/current", params={"customerRef": "cus_9", "period": "2025-01"})
    ).json()
    assert empty["metrics"] == []


def aggregates(bucket: dict[str, Any]) -> tuple[Any, ...]:
    """(value, sum, max, last, count) of a bucket or totals."""
    return bucket["value"], bucket["sum"], bucket["max"], bucket["last"], bucket["count"]


async def test_history_buckets_fold_sum_max_and_last_per_bucket(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Each day's sum, max and last come from that day's events alone, late arrivals included."""
    await configure(app_services, "gauge", "last", "gb")
    await ingest(
        api,
        event("gauge", "2025-01-10T01:00:00Z", 10),
        event("gauge", "2025-01-10T05:00:00Z", 3),  # the day's last event is smaller than its max
        event("gauge", "2025-01-12T00:10:00Z", 7),
    )
    # Late but inside the 48 h window: counted in its own day, and not the day's last.
    (late,) = await ingest(api, event("gauge", "2025-01-10T00:30:00Z", 20))
    assert late["status"] == "accepted"
    params = {
        "customerRef": "cus_1", "metric": "gauge", "interval": "day",
        "from": "2025-01-10T00:00:00Z", "to": "2025-01-13T00:00:00Z",
    }  # fmt: skip
    response = await api.get("/v1/usage/history", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["aggregation"], body["unit"], body["interval"]) == ("last", "gb", "day")
    assert body["period"] == {"start": "2025-01-10T00:00:00Z", "end": "2025-01-13T00:00:00Z"}
    assert [b["ts"] for b in body["usage"]] == [
        "2025-01-10T00:00:00Z", "2025-01-11T00:00:00Z", "2025-01-12T00:00:00Z",
    ]  # fmt: skip
    day1, day2, day3 = body["usage"]
    assert aggregates(day1) == (3, 33, 20, 3, 3)
    assert aggregates(day2) == (0, 0, None, None, 0)
    assert aggregates(day3) == (7, 7, 7, 7, 1)
    assert aggregates(body["totals"]) == (7, 40, 20, 7, 4)


async def test_history_by_hour_and_month_uses_the_same_fold(api: httpx.AsyncClient) -> None:
    """Hourly buckets split a day, and a monthly bucket equals the counter of that period."""
    await ingest(
        api,
        event("api_calls", "2025-01-10T01:10:00Z", 4),
        event("api_calls", "2025-01-10T01:50:00Z", 1),
        event("api_calls", "2025-01-10T03:00:00Z", "0.25"),
    )
    hourly = (
        await api.get(
            "/v1/usage/history",
            params={"customerRef": "cus_1", "metric": "api_calls", "interval": "hour",
                    "from": "2025-01-10T01:00:00Z", "to": "2025-01-10T04:00:00Z"},
        )
    ).json()  # fmt: skip
    assert [aggregates(b) for b in hourly["usage"]] == [
        (5, 5, 4, 1, 2), (0, 0, None, None, 0), (0.25, 0.25, 0.25, 0.25, 1),
    ]  # fmt: skip
    monthly = (
        await api.get(
            "/v1/usage/history",
            params={"customerRef": "cus_1", "metric": "api_calls",
                    "from": "2025-01-01", "to": "2025-02-01"},
        )
    ).json()  # fmt: skip
    assert monthly["interval"] == "month"
    (bucket,) = monthly["usage"]
    current = (
        await api.get("/v1/usage/current", params={"customerRef": "cus_1", "period": "2025-01"})
    ).json()
    counter = by_metric(current)["api_calls"]
    assert aggregates(bucket) == (counter["value"], counter["sum"], counter["max"],
                                  counter["last"], counter["count"])  # fmt: skip


async def test_history_accepts_upstream_parameter_names(api: httpx.AsyncClient) -> None:
    """periodStart, periodEnd and step mean from, to and interval."""
    await ingest(api, event("api_calls", "2025-01-10T01:00:00Z", 2))
    base = {"customerRef": "cus_1", "metric": "api_calls"}
    ours = await api.get(
        "/v1/usage/history",
        params={**base, "from": "2025-01-09", "to": "2025-01-11", "interval": "day"},
    )
    theirs = await api.get(
        "/v1/usage/history",
        params={**base, "periodStart": "2025-01-09", "periodEnd": "2025-01-11", "step": "day"},
    )
    assert theirs.status_code == 200, theirs.text
    assert theirs.json() == ours.json()


async def test_history_clips_buckets_to_the_range(api: httpx.AsyncClient) -> None:
    """Buckets are aligned to UTC boundaries and clipped to the range at both ends."""
    await ingest(
        api,
        event("api_calls", "2025-01-10T05:00:00Z", 1),
        event("api_calls", "2025-01-10T13:00:00Z", 2),
        event("api_calls", "2025-01-11T11:00:00Z", 4),
        event("api_calls", "2025-01-11T12:00:00Z", 8),
    )
    body = (
        await api.get(
            "/v1/usage/history",
            params={"customerRef": "cus_1", "metric": "api_calls", "interval": "day",
                    "from": "2025-01-10T12:00:00Z", "to": "2025-01-11T12:00:00Z"},
        )
    ).json()  # fmt: skip
    first, second = body["usage"]
    assert (first["ts"], first["start"], first["end"]) == (
        "2025-01-10T00:00:00Z", "2025-01-10T12:00:00Z", "2025-01-11T00:00:00Z",
    )  # fmt: skip
    assert (second["start"], second["end"]) == ("2025-01-11T00:00:00Z", "2025-01-11T12:00:00Z")
    assert (first["sum"], second["sum"], body["totals"]["sum"]) == (2, 4, 6)
    months = (
        await api.get(
            "/v1/usage/history",
            params={"customerRef": "cus_1", "metric": "api_calls", "interval": "month",
                    "from": "2024-12-15", "to": "2025-03-01"},
        )
    ).json()  # fmt: skip
    assert [(b["ts"], b["start"]) for b in months["usage"]] == [
        ("2024-12-01T00:00:00Z", "2024-12-15T00:00:00Z"),
        ("2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
        ("2025-02-01T00:00:00Z", "2025-02-01T00:00:00Z"),
    ]
    assert [b["sum"] for b in months["usage"]] == [0, 15, 0]


async def test_history_counts_approved_held_events_at_their_event_time(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A held event counts nowhere until approved; then it counts in its own bucket."""
    await ingest(api, event("api_calls", "2025-01-20T00:00:00Z", 1))
    (held,) = await ingest(api, event("api_calls", "2025-01-10T00:00:00Z", 50))
    assert held["status"] == "held"
    params = {"customerRef": "cus_1", "metric": "api_calls", "interval": "day",
              "from": "2025-01-10", "to": "2025-01-11"}  # fmt: skip
    before = (await api.get("/v1/usage/history", params=params)).json()
    assert before["totals"]["count"] == 0
    async with app_services.db.write() as conn:
        await adjustments.insert_adjustment(
            conn, CounterKey("acme", "api_calls", "cus_1", JAN), delta=Decimal(50),
            reason="held_event_approved", status="approved", note=None,
            event_id=held["eventId"], event_ts=datetime(2025, 1, 10, tzinfo=UTC),
            actor="ops", now=datetime.now(UTC),
        )  # fmt: skip
        await adjustments.insert_adjustment(
            conn, CounterKey("acme", "api_calls", "cus_1", JAN), delta=Decimal(-3),
            reason="credit", status="approved", note=None, event_id=None, event_ts=None,
            actor="ops", now=datetime.now(UTC),
        )  # fmt: skip
    after = (await api.get("/v1/usage/history", params=params)).json()
    assert aggregates(after["usage"][0]) == (50, 50, 50, 50, 1)


async def test_history_bounds_the_number_of_buckets(api: httpx.AsyncClient) -> None:
    """More than 1,000 buckets is a precise 400 on interval; exactly 1,000 is fine."""
    base = {"customerRef": "cus_1", "metric": "api_calls", "interval": "hour"}
    start = datetime(2025, 1, 1, tzinfo=UTC)
    fits = {
        **base,
        "from": canonical_time(start),
        "to": canonical_time(start + timedelta(hours=1000)),
    }
    response = await api.get("/v1/usage/history", params=fits)
    assert response.status_code == 200, response.text
    assert len(response.json()["usage"]) == 1000
    too_many = {**fits, "to": canonical_time(start + timedelta(hours=1000, seconds=1))}
    refused = await api.get("/v1/usage/history", params=too_many)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["code"], error["param"]) == ("too_many_buckets", "interval")


async def test_customers_are_paged_by_reference_with_each_metric_value(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Pages of two customers cover every customer of the period once, in order."""
    await configure(app_services, "seats", "max", "seat")
    await ingest(
        api,
        *[event("api_calls", "2025-01-10T00:00:00Z", i + 1, customer=f"cus_{i}") for i in range(5)],
        event("seats", "2025-01-10T00:00:00Z", 3, customer="cus_2"),
        event("seats", "2025-01-10T01:00:00Z", 2, customer="cus_2"),
        event("api_calls", "2025-02-10T00:00:00Z", 1, customer="cus_feb"),
    )
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"period": "2025-01", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await api.get("/v1/usage/customers", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["period"]["start"] == "2025-01-01T00:00:00Z"
        assert len(body["customers"]) <= 2
        seen.extend(body["customers"])
        cursor = body["nextCursor"]
        assert body["hasMore"] is (cursor is not None)
        if cursor is None:
            break
    assert [c["customerRef"] for c in seen] == [f"cus_{i}" for i in range(5)]
    assert seen[2]["metrics"] == [
        {"metric": "api_calls", "aggregation": "sum", "value": 3, "unit": "unit"},
        {"metric": "seats", "aggregation": "max", "value": 3, "unit": "seat"},
    ]


async def test_another_tenant_sees_no_usage(api: httpx.AsyncClient, app_services: Services) -> None:
    """A second tenant's key reads empty usage on every route, for the same customer names."""
    await ingest(api, event("api_calls", "2025-01-10T00:00:00Z", 5))
    other = await issue(app_services, "globex", "usage:read")
    headers = {"Authorization": f"Bearer {other.key}"}
    current = await api.get(
        "/v1/usage/current", params={"customerRef": "cus_1", "period": "2025-01"}, headers=headers
    )
    assert current.json()["metrics"] == []
    history = await api.get(
        "/v1/usage/history",
        params={"customerRef": "cus_1", "metric": "api_calls", "from": "2025-01-01",
                "to": "2025-02-01"},
        headers=headers,
    )  # fmt: skip
    assert history.json()["totals"]["count"] == 0
    customers = await api.get("/v1/usage/customers", params={"period": "2025-01"}, headers=headers)
    assert customers.json()["customers"] == []


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/usage/current", {"customerRef": "cus_1"}),
        ("/v1/usage/history", {"customerRef": "cus_1", "metric": "api_calls"}),
        ("/v1/usage/customers", {}),
    ],
)
async def test_a_foreign_tenant_id_is_forbidden(
    api: httpx.AsyncClient, app_services: Services, path: str, params: dict[str, str]
) -> None:
    """A tenantId naming another tenant is a 403; a key without usage:read is a 403 too."""
    other = await issue(app_services, "globex", "usage:read")
    response = await api.get(
        path,
        params={**params, "tenantId": "acme"},
        headers={"Authorization": f"Bearer {other.key}"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_mismatch"
    assert (await api.get(path, params={**params, "tenantId": "acme"})).status_code == 200
    writer = await issue(app_services, "acme", "events:write")
    denied = await api.get(path, params=params, headers={"Authorization": f"Bearer {writer.key}"})
    assert denied.status_code == 403


BAD_PARAMETERS: list[tuple[str, dict[str, str], str, str]] = [
    ("/v1/usage/current", {}, "customerRef", "missing_parameter"),
    ("/v1/usage/current", {"customerRef": ""}, "customerRef", "invalid_parameter"),
    ("/v1/usage/current", {"customerRef": "c", "period": "2025-13"}, "period", "invalid_period"),
    ("/v1/usage/current", {"customerRef": "c", "month": "2025-01"}, "month", "unknown_parameter"),
    ("/v1/usage/history", {"metric": "m"}, "customerRef", "missing_parameter"),
    ("/v1/usage/history", {"customerRef": "c"}, "metric", "missing_parameter"),
    ("/v1/usage/history", {"customerRef": "c", "metric": "m", "interval": "week"}, "interval",
     "invalid_parameter"),
    ("/v1/usage/history", {"customerRef": "c", "metric": "m", "step": "year"}, "step",
     "invalid_parameter"),
    ("/v1/usage/history", {"customerRef": "c", "metric": "m", "interval": "day", "step": "hour"},
     "step", "conflicting_parameters"),
    ("/v1/usage/history", {"customerRef": "c", "metric": "m", "from": "2025-01-02",
                           "to": "2025-01-01"}, "to", "invalid_range"),
    ("/v1/usage/history", {"customerRef": "c", "metric": "m", "periodEnd": "soon"}, "periodEnd",
     "invalid_time"),
    ("/v1/usage/customers", {"period": "January"}, "period", "invalid_period"),
    ("/v1/usage/customers", {"limit": "0"}, "limit", "invalid_parameter"),
    ("/v1/usage/customers", {"limit": "1001"}, "limit", "invalid_parameter"),
    ("/v1/usage/customers", {"cursor": "%%%"}, "cursor", "invalid_cursor"),
]  # fmt: skip


async def test_bad_parameters_are_precise_400s(api: httpx.AsyncClient) -> None:
    """Each invalid usage parameter is a 400 naming that parameter."""
    for path, params, param, code in BAD_PARAMETERS:
        response = await api.get(path, params=params)
        assert response.status_code == 400, (path, params, response.text)
        error = response.json()["error"]
        assert (error["param"], error["code"]) == (param, code), (path, params)
