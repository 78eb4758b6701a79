"""Fixtures for the Stripe sync: the fake Stripe over real HTTP, settings pointing at it, helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from stripemeter.config import Settings
from tests.fake_stripe.conftest import ControlClient, fake_url, receiver

__all__ = ["fake_url", "receiver"]

LIVE_KEY = "sk_live_sync_tests"
TEST_KEY = "sk_test_sync_tests"


class FakeStripe:
    """Drives the fake over HTTP with a live or test key, reading numbers as exact decimals."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.control = ControlClient(base)

    def call(self, method: str, path: str, *, live: Any = True, **params: Any) -> Any:
        key = LIVE_KEY if live else TEST_KEY
        headers = {"Authorization": f"Bearer {key}"}
        if method == "GET":
            response = httpx.get(self.base + path, params=params, headers=headers, timeout=10)
        else:
            response = httpx.post(self.base + path, data=_form(params), headers=headers, timeout=10)
        response.raise_for_status()
        return json.loads(response.text, parse_float=Decimal)

    def meter(self, event_name: str, formula: str = "sum", *, live: bool = True) -> str:
        meter = self.call(
            "POST",
            "/v1/billing/meters",
            live=live,
            display_name=event_name,
            event_name=event_name,
            **{"default_aggregation[formula]": formula},
        )
        return str(meter["id"])

    def customer(self, *, live: bool = True, **metadata: str) -> str:
        params = {f"metadata[{k}]": v for k, v in metadata.items()}
        return str(self.call("POST", "/v1/customers", live=live, **params)["id"])

    def meter_total(self, meter_id: str, customer: str, *, live: bool = True) -> Decimal:
        now = int(time.time())
        start = (now - 40 * 86400) // 60 * 60
        end = (now + 3600) // 60 * 60
        page = self.call(
            "GET",
            f"/v1/billing/meters/{meter_id}/event_summaries",
            live=live,
            customer=customer,
            start_time=start,
            end_time=end,
        )
        return sum((Decimal(str(s["aggregated_value"])) for s in page["data"]), Decimal(0))

    def accepted_events(self) -> list[dict[str, Any]]:
        """Meter event requests that Stripe accepted (status 200)."""
        return [r for r in self.control.requests("/v1/billing/meter_events") if r["status"] == 200]


def _form(params: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in params.items()}


@pytest.fixture
def fake(fake_url: str) -> Iterator[FakeStripe]:
    """A fresh fake account whose clock follows wall time (our pusher stamps with wall time)."""
    stripe_fake = FakeStripe(fake_url)
    stripe_fake.control.reset()
    stripe_fake.control.http.post(
        "/_control/clock", json={"set": int(time.time()), "freeze": False}
    ).raise_for_status()
    yield stripe_fake
    stripe_fake.control.http.close()


def sync_settings(database_url: str, fake_url: str, **overrides: Any) -> Settings:
    """Settings whose Stripe is the fake (live and test keys), background loop off."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "log_format": "console",
        "log_level": "WARNING",
        "stripe_api_base": fake_url,
        "stripe_secret_key": SecretStr(LIVE_KEY),
        "stripe_test_secret_key": SecretStr(TEST_KEY),
        "push_enabled": False,
        "stripe_live_rate": 100_000.0,
        "stripe_test_rate": 100_000.0,
        "stripe_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, fake_url: str, fake: FakeStripe) -> Settings:
    """The app under test talks to the fake Stripe."""
    return sync_settings(database_url, fake_url)


def recent(minutes: int = 5) -> str:
    """An event time a few minutes ago, RFC 3339."""
    at = datetime.now(UTC) - timedelta(minutes=minutes)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def ingest(api: httpx.AsyncClient, *events: dict[str, Any]) -> dict[str, Any]:
    """Send events (ts defaults to a few minutes ago); fail unless all are accepted."""
    batch = [{"ts": recent()} | e for e in events]
    response = await api.post("/v1/events/ingest", json={"events": batch})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def flush(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """POST /v1/pushes/flush and return its summary."""
    response = await api.post("/v1/pushes/flush", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def local_total(api: httpx.AsyncClient, customer: str, metric: str) -> Decimal:
    """The pushed total the write log confirms for a customer's live row of a metric's mapping."""
    rows = (await api.get("/v1/pushes", params={"customerRef": customer})).json()["data"]
    return sum((Decimal(str(r["pushedTotal"])) for r in rows if r["target"] == "live"), Decimal(0))
