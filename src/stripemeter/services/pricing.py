"""The pricing services of one process: price sources, configured prices, projection, simulations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from stripemeter.config import Settings
from stripemeter.domain.errors import InvalidInput, NotFound
from stripemeter.domain.events import MAX_METRIC_LENGTH, EventLimits
from stripemeter.domain.pricing import PricingError, currency, price_from_stripe, to_major_units
from stripemeter.services.catalog import MetricCatalog
from stripemeter.services.invoice_views import jsonable
from stripemeter.services.prices import (
    ConfiguredPrices,
    PriceLookup,
    PriceSources,
    StripePrices,
    stripe_client,
    unpriced,
)
from stripemeter.services.projection import ProjectionService
from stripemeter.services.read_params import check_length
from stripemeter.services.scenarios import invalid, read_limits
from stripemeter.services.simulations import ScenarioRunner, SimulationService
from stripemeter.store import metric_prices
from stripemeter.store.database import Database

FAKE_API_KEY = "sk_test_stripemeter_fake"  # the fake Stripe accepts any test-mode key


class NoStripe:
    """The Stripe source when no Stripe (real or fake) is reachable: mapped prices are unknown."""

    async def price_for(self, tenant_id: str, metric: str) -> PriceLookup:
        """Always unpriced, saying why."""
        return unpriced(metric, "stripe_not_configured", "no Stripe API is configured")

    async def priced_metrics(self, tenant_id: str) -> set[str]:
        """None."""
        return set()

    def price_updated(self, price_id: str, account: str | None = None) -> None:
        """Nothing is cached."""


def client_for(settings: Settings) -> stripe.StripeClient | None:
    """The Stripe client the settings point at: Stripe, a given base URL, or the local fake."""
    key = settings.stripe_secret_key.get_secret_value() if settings.stripe_secret_key else None
    base = settings.stripe_api_base
    if base is None and settings.uses_fake_stripe and settings.fake_stripe_port:
        base = f"http://127.0.0.1:{settings.fake_stripe_port}"
    if key is None and base is None:
        return None
    return stripe_client(key or FAKE_API_KEY, base, settings.stripe_meter_events_base)


class MetricPriceService:
    """Prices configured on metrics (``/v1/metric-prices``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, tenant_id: str, metric: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a metric's price: ``{price: <Stripe Price>, limits?: {minimum, maximum}}``."""
        _metric(metric)
        unknown = sorted(set(body) - {"price", "limits", "tenantId"})
        if unknown:
            raise InvalidInput(
                f"unknown field {unknown[0]!r}", code="unknown_field", param=unknown[0]
            )
        raw = body.get("price")
        if not isinstance(raw, dict):
            raise InvalidInput("price must be a Stripe Price object", code="invalid_price",
                               param="price")  # fmt: skip
        try:
            price = price_from_stripe(raw)
        except PricingError as exc:
            param = f"price.{exc.param}" if exc.param else "price"
            raise InvalidInput(exc.message, code=exc.code, param=param) from None
        limits = read_limits(body.get("limits"), price.currency, "limits")
        stored = jsonable({**raw, "currency": price.currency.code})
        async with self._db.write() as conn:
            await metric_prices.upsert(
                conn, tenant_id, metric, currency=price.currency.code, price=stored,
                minimum_amount=limits.minimum, maximum_amount=limits.maximum,
                now=datetime.now(UTC),
            )  # fmt: skip
        return await self.get(tenant_id, metric)

    async def get(self, tenant_id: str, metric: str) -> dict[str, Any]:
        """One metric's configured price."""
        async with self._db.read() as conn:
            row = await metric_prices.get(conn, tenant_id, _metric(metric))
        if row is None:
            raise NotFound(f"no price is configured for {metric!r}", code="price_not_found")
        return price_view(row)

    async def list(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every configured price of the tenant."""
        async with self._db.read() as conn:
            return [price_view(row) for row in await metric_prices.list_for_tenant(conn, tenant_id)]

    async def delete(self, tenant_id: str, metric: str) -> None:
        """Remove a metric's configured price."""
        async with self._db.write() as conn:
            if not await metric_prices.remove(conn, tenant_id, _metric(metric)):
                raise NotFound(f"no price is configured for {metric!r}", code="price_not_found")


def price_view(row: Any) -> dict[str, Any]:
    """A configured price as the API shows it; limits in major units, as they were given."""
    cur = currency(row["currency"])
    low, high = row["minimum_amount"], row["maximum_amount"]
    return {
        "metric": row["metric"],
        "currency": row["currency"],
        "price": row["price"],
        "limits": {
            "minimum": None if low is None else to_major_units(low, cur),
            "maximum": None if high is None else to_major_units(high, cur),
        },
        "updatedAt": row["updated_at"],
    }


def _metric(metric: str) -> str:
    checked = check_length(metric, "metric", MAX_METRIC_LENGTH)
    if checked is None:
        raise invalid("metric is required", "metric")
    return checked


@dataclass
class PricingServices:
    """Everything pricing: the price sources, configured prices, projection and simulations."""

    stripe: StripePrices | NoStripe
    configured: ConfiguredPrices
    prices: PriceSources
    metric_prices: MetricPriceService
    projection: ProjectionService
    simulations: SimulationService

    @classmethod
    def build(cls, settings: Settings, db: Database, catalog: MetricCatalog) -> PricingServices:
        """Wire the pricing services for these settings."""
        client = client_for(settings)
        stripe_prices: StripePrices | NoStripe = (
            StripePrices(db, client) if client is not None else NoStripe()
        )
        configured = ConfiguredPrices(db)
        sources = PriceSources([stripe_prices, configured])
        limits = EventLimits(
            max_future=timedelta(seconds=settings.max_future_seconds),
            max_meta_bytes=settings.max_meta_bytes,
        )
        runner = ScenarioRunner(db, default_window=settings.lateness_window, limits=limits)
        return cls(
            stripe=stripe_prices,
            configured=configured,
            prices=sources,
            metric_prices=MetricPriceService(db),
            projection=ProjectionService(db, catalog, sources),
            simulations=SimulationService(db, runner),
        )

    def price_updated(self, price_id: str, account: str | None = None) -> None:
        """Call site for the ``price.updated`` webhook: drop the cached Stripe price."""
        self.stripe.price_updated(price_id, account)
