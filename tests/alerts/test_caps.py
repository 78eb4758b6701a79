"""Hard caps and entitlements: the check ingest calls, the entitlement route and the SDK."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest

from stripemeter.api.app import Services
from stripemeter.client import AsyncStripeMeterClient
from stripemeter.domain.aggregation import EMPTY, Contribution, fold
from stripemeter.domain.periods import period_for
from stripemeter.services.hard_caps import NO_CAPS
from stripemeter.store.counters import CounterKey
from tests.alerts.conftest import create_rule, ingest

D = Decimal


def event(quantity: int) -> SimpleNamespace:
    """An event as the cap check reads it."""
    return SimpleNamespace(
        quantity=D(quantity), at=datetime.now(UTC), idempotency_key=f"k{quantity}"
    )


def key(customer: str = "cus_1", metric: str = "api_calls") -> CounterKey:
    """The current period's counter key."""
    return CounterKey("acme", metric, customer, period_for(datetime.now(UTC)).start)


async def test_the_cap_check_refuses_only_what_would_exceed(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Cap 100 with 90 counted: 10 more fit, 11 do not; other metrics and tenants are free."""
    await create_rule(
        api, type="usage_threshold", metric="api_calls", thresholds=[80, 100], hardCap=True
    )
    caps = await app_services.alerts.hooks.cap_snapshot(["acme", "globex"])
    state = fold(EMPTY, Contribution(D(90), datetime.now(UTC), "a"))
    assert not caps.refuses(key(), state, event(10))
    assert caps.refuses(key(), state, event(11))
    assert not caps.refuses(key(metric="storage"), state, event(1000))
    other = CounterKey("globex", "api_calls", "cus_1", key().period_start)
    assert not caps.refuses(other, state, event(1000))
    assert not NO_CAPS.refuses(key(), state, event(10**9))


async def test_percent_of_limit_caps_follow_each_customers_limit(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A 100 %-of-limit cap is each customer's own limit; customers without a limit are uncapped."""
    await api.put("/v1/limits", json={"customerRef": "cus_1", "metric": "api_calls", "limit": 50})
    await create_rule(
        api, type="usage_threshold", metric="api_calls", thresholds=[100], percentOfLimit=True,
        hardCap=True,
    )  # fmt: skip
    caps = await app_services.alerts.hooks.cap_snapshot(["acme"])
    assert caps.refuses(key(), EMPTY, event(51))
    assert not caps.refuses(key(), EMPTY, event(50))
    assert not caps.refuses(key("cus_2"), EMPTY, event(10_000))


async def test_entitlement_reports_value_cap_and_remaining(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Below the cap: allowed with what remains; at or above it: not allowed, with the alert."""
    await create_rule(
        api, type="usage_threshold", metric="api_calls", thresholds=[100], hardCap=True
    )
    await ingest(api, "api_calls", "cus_1", 90)
    params = {"customerRef": "cus_1", "metric": "api_calls"}
    body = (await api.get("/v1/entitlements", params=params)).json()
    assert (body["allowed"], body["value"], body["hardCap"], body["remaining"]) == (
        True,
        90,
        100,
        10,
    )
    await ingest(api, "api_calls", "cus_1", 10)
    await api.post("/v1/alerts/evaluate")
    body = (await api.get("/v1/entitlements", params=params)).json()
    assert (body["allowed"], body["remaining"]) == (False, 0)
    assert [a["status"] for a in body["alerts"]] == ["triggered"]
    free = (
        await api.get("/v1/entitlements", params={"customerRef": "cus_1", "metric": "seats"})
    ).json()
    assert (free["allowed"], free["hardCap"]) == (True, None)
    missing = await api.get("/v1/entitlements", params={"customerRef": "cus_1"})
    assert missing.status_code == 400


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_sdk_checks_entitlements(api: httpx.AsyncClient, app_services: Services) -> None:
    """``check_entitlement`` is truthy while allowed and carries the numbers."""
    await create_rule(api, type="usage_threshold", metric="api_calls", thresholds=[5], hardCap=True)
    await ingest(api, "api_calls", "cus_1", 3)
    transport = httpx.ASGITransport(app=app_services.app)  # type: ignore[attr-defined]
    async with AsyncStripeMeterClient(
        api_key=api.headers["Authorization"].split()[1],
        api_url="http://stripemeter.test",
        transport=transport,
    ) as sdk:
        allowed = await sdk.check_entitlement("cus_1", "api_calls")
        assert allowed
        assert (allowed.value, allowed.hard_cap, allowed.remaining) == (D(3), D(5), D(2))
        await ingest(api, "api_calls", "cus_1", 2)
        refused = await sdk.check_entitlement("cus_1", "api_calls")
        assert not refused
        assert refused.allowed is False


async def test_ingest_holds_events_over_a_hard_cap(api: httpx.AsyncClient) -> None:
    """Events that would pass the cap are stored as held with reason over_cap, never dropped."""
    await create_rule(
        api, type="usage_threshold", metric="api_calls", thresholds=[100], hardCap=True
    )
    assert (await ingest(api, "api_calls", "cus_1", 90))["status"] == "accepted"
    over = await ingest(api, "api_calls", "cus_1", 20)
    assert (over["status"], over["reason"]) == ("held", "over_cap")
    assert (await ingest(api, "api_calls", "cus_1", 10))["status"] == "accepted"
    held = (await api.get("/v1/events/held")).json()["events"]
    assert [h["reason"] for h in held] == ["over_cap"]
