"""End-to-end gaps: the v2 meter event stream driver, and stale pending pushes (past 24 h)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from tests.stripe_sync.conftest import FakeStripe, flush, ingest

DAY = 86400


async def _setup(
    api: httpx.AsyncClient, fake: FakeStripe, customers: tuple[str, ...]
) -> tuple[str, dict[str, str]]:
    meter = fake.meter("api_calls")
    response = await api.post(
        "/v1/mappings",
        json={"metric": "api_calls", "aggregation": "sum", "meterEventName": "api_calls"},
    )
    assert response.status_code == 201, response.text
    ids = {}
    for ref in customers:
        ids[ref] = fake.customer()
        created = await api.post(
            "/v1/customers", json={"customerRef": ref, "stripeCustomerId": ids[ref]}
        )
        assert created.status_code == 201, created.text
    return meter, ids


def _stripe_total(fake: FakeStripe, meter: str, customer: str) -> Decimal:
    """Stripe's summary over a window around the fake's clock (which may be days ahead)."""
    now = fake.control.now()
    page = fake.call(
        "GET",
        f"/v1/billing/meters/{meter}/event_summaries",
        customer=customer,
        start_time=(now - 40 * DAY) // 60 * 60,
        end_time=(now + 3 * DAY) // 60 * 60,
    )
    return sum((Decimal(str(s["aggregated_value"])) for s in page["data"]), Decimal(0))


async def test_meter_stream_driver_renews_an_expired_session_mid_run(
    api: httpx.AsyncClient, fake: FakeStripe, app_services: Services
) -> None:
    """High-volume mode: deltas go through the v2 session + stream; an expired token is renewed."""
    pusher = app_services.stripe_sync.pusher
    pusher.default_meter_driver = "meter_stream"  # STRIPEMETER_STRIPE_METER_DRIVER=meter_stream
    meter, ids = await _setup(api, fake, ("c1", "c2", "c3"))
    expected = {"c1": Decimal("10.5"), "c2": Decimal(7), "c3": Decimal("0.25")}
    await ingest(
        api,
        *(
            {"metric": "api_calls", "customerRef": ref, "quantity": str(q)}
            for ref, q in expected.items()
        ),
    )
    first = await flush(api)
    assert first["results"] == {"delivered": 3}
    assert len(fake.control.requests("/v2/billing/meter_event_session")) == 1
    streams = fake.control.requests("/v2/billing/meter_event_stream")
    assert [r["status"] for r in streams] == [200]  # one batch for the three customers
    assert fake.accepted_events() == []  # nothing went through v1
    # The session token (15 minutes) expires while the worker still holds it.
    fake.control.advance_clock(16 * 60)
    await ingest(
        api,
        {"metric": "api_calls", "customerRef": "c1", "quantity": 3},
        {"metric": "api_calls", "customerRef": "c2", "quantity": -2, "source": "correction"},
    )
    expected["c1"] += 3
    expected["c2"] -= 2
    second = await flush(api)
    assert second["results"] == {"delivered": 2}
    sessions = fake.control.requests("/v2/billing/meter_event_session")
    assert [r["status"] for r in sessions] == [200, 200]  # renewed once
    streams = fake.control.requests("/v2/billing/meter_event_stream")
    assert [r["status"] for r in streams] == [200, 401, 200]
    errors = fake.control.http.get("/_control/stream_errors").json()["errors"]
    assert errors == []
    for ref, total in expected.items():
        assert _stripe_total(fake, meter, ids[ref]) == total
    rows = (await api.get("/v1/pushes")).json()["data"]
    assert {r["customerRef"]: Decimal(str(r["pushedTotal"])) for r in rows} == expected
    assert {r["status"] for r in rows} == {"ok"}
    assert (await flush(api))["results"].get("delivered", 0) == 0


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize(("step", "stripe_has_it"), [("after_call", True), ("before_call", False)])
async def test_a_pending_push_older_than_a_day_is_verified_before_any_resend(
    api: httpx.AsyncClient,
    fake: FakeStripe,
    app_services: Services,
    step: str,
    stripe_has_it: bool,
) -> None:
    """Past Stripe's 24 h dedupe window a pending push is checked against event_summaries:
    confirmed when Stripe has it (no double count), re-sent when it does not."""
    meter, ids = await _setup(api, fake, ("c1",))
    await ingest(api, {"metric": "api_calls", "customerRef": "c1", "quantity": "4.5"})
    pusher = app_services.stripe_sync.pusher

    def crash(at: str) -> None:
        if at == step:
            raise _Crash(at)

    pusher.hook = crash
    with pytest.raises(_Crash):
        await pusher.flush("acme")
    pusher.hook = None
    rows = (await api.get("/v1/pushes")).json()["data"]
    assert [r["status"] for r in rows] == ["pending"]
    assert _stripe_total(fake, meter, ids["c1"]) == (Decimal("4.5") if stripe_has_it else 0)
    # A day and an hour later (both clocks): Stripe no longer deduplicates the identifier.
    later = datetime.now(UTC) + timedelta(hours=25)
    pusher.clock = lambda: later
    fake.control.advance_clock(25 * 3600)
    result: dict[str, Any] = await flush(api)
    if stripe_has_it:
        assert result["results"] == {"verified_delivered": 1}
    else:
        assert result["results"] == {"verified_missing": 1, "delivered": 1}
    summaries = fake.control.requests(f"/v1/billing/meters/{meter}/event_summaries")
    assert len(summaries) >= 1  # Stripe's totals were read before anything was sent
    assert _stripe_total(fake, meter, ids["c1"]) == Decimal("4.5")
    assert len(fake.accepted_events()) == 1
    rows = (await api.get("/v1/pushes")).json()["data"]
    assert [(r["status"], Decimal(str(r["pushedTotal"]))) for r in rows] == [("ok", Decimal("4.5"))]
    assert (await flush(api))["results"].get("delivered", 0) == 0
