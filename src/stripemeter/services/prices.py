"""Where a metric's price comes from: a ``PriceSource`` answers with a price or says why it has none.

Two sources, asked in this order by ``PriceSources``:

1. ``StripePrices``: the Stripe price of the metric's active (non-shadow) price mapping, read with the
   official ``stripe`` client (``prices.retrieve`` with ``expand[]=tiers``), cached per process for
   ``STRIPE_PRICE_TTL`` seconds and dropped at once when Stripe says the price changed
   (``price_updated``, called by the webhook route on ``price.updated``). That is what Stripe bills.
2. ``ConfiguredPrices``: a price stored on the metric (``/v1/metric-prices``), in Stripe's Price shape,
   for metrics that have no Stripe price yet or are priced outside Stripe.

A metric neither source prices is reported as unpriced with the reasons: never a placeholder price.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import stripe
from sqlalchemy import select

from stripemeter.domain.pricing import ChargeLimits, Price, PricingError, price_from_stripe
from stripemeter.store import metric_prices
from stripemeter.store.database import Database
from stripemeter.store.tables import price_mappings

STRIPE_PRICE_TTL = 300.0  # seconds another process may keep a price Stripe has since changed
DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True, slots=True)
class PriceLookup:
    """A metric's price and where it came from, or None with a machine code and a sentence."""

    metric: str
    price: Price | None
    source: str | None = None  # "stripe" | "configured"
    price_id: str | None = None
    limits: ChargeLimits = field(default_factory=ChargeLimits)
    reason: str | None = None  # no_price | stripe_unavailable | invalid_price | …
    message: str | None = None

    @property
    def priced(self) -> bool:
        """Whether a price was found."""
        return self.price is not None


def unpriced(metric: str, reason: str, message: str) -> PriceLookup:
    """A lookup that found no price."""
    return PriceLookup(metric, None, reason=reason, message=message)


class PriceSource(Protocol):
    """Answers "what does this metric cost?" for one tenant."""

    async def price_for(self, tenant_id: str, metric: str) -> PriceLookup:
        """The metric's price, or None with the reason."""
        ...

    async def priced_metrics(self, tenant_id: str) -> set[str]:
        """Metrics this source has a price (or a pointer to one) for."""
        ...


class ConfiguredPrices:
    """Prices stored on the metric in ``metric_prices``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def price_for(self, tenant_id: str, metric: str) -> PriceLookup:
        """The configured price, or ``no_price``."""
        async with self._db.read() as conn:
            row = await metric_prices.get(conn, tenant_id, metric)
        if row is None:
            return unpriced(metric, "no_price", f"no price is configured for {metric!r}")
        try:
            price = price_from_stripe(row["price"])
            limits = ChargeLimits(row["minimum_amount"], row["maximum_amount"])
        except PricingError as exc:
            return unpriced(
                metric, "invalid_price", f"the configured price is invalid: {exc.message}"
            )
        return PriceLookup(metric, price, source="configured", limits=limits)

    async def priced_metrics(self, tenant_id: str) -> set[str]:
        """Metrics with a configured price."""
        async with self._db.read() as conn:
            return {row["metric"] for row in await metric_prices.list_for_tenant(conn, tenant_id)}


@dataclass(frozen=True, slots=True)
class _Mapped:
    price_id: str
    account: str


class StripePrices:
    """The Stripe price of the metric's active price mapping, cached, refreshed on ``price.updated``."""

    def __init__(
        self,
        db: Database,
        client: stripe.StripeClient,
        *,
        ttl: float = STRIPE_PRICE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Mapping[str, Any]]] = {}

    async def _mapping(self, tenant_id: str, metric: str) -> _Mapped | None:
        query = (
            select(price_mappings.c.price_id, price_mappings.c.stripe_account)
            .where(
                price_mappings.c.tenant_id == tenant_id,
                price_mappings.c.metric == metric,
                price_mappings.c.active.is_(True),
                price_mappings.c.price_id.is_not(None),
            )
            .order_by(price_mappings.c.created_at, price_mappings.c.id)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _Mapped(row.price_id, row.stripe_account or DEFAULT_ACCOUNT)

    async def price_for(self, tenant_id: str, metric: str) -> PriceLookup:
        """The mapped Stripe price, ``no_price`` without a mapping, or why Stripe's could not be read."""
        mapped = await self._mapping(tenant_id, metric)
        if mapped is None:
            return unpriced(metric, "no_price", f"{metric!r} has no price mapping with a priceId")
        try:
            obj = await self._retrieve(mapped)
        except stripe.InvalidRequestError as exc:
            return unpriced(
                metric,
                "stripe_price_not_found",
                f"Stripe refused {mapped.price_id}: {exc.user_message}",
            )
        except stripe.StripeError as exc:
            return unpriced(
                metric,
                "stripe_unavailable",
                f"could not read {mapped.price_id} from Stripe: {type(exc).__name__}",
            )
        try:
            price = price_from_stripe(obj)
        except PricingError as exc:
            return unpriced(metric, exc.code, f"Stripe price {mapped.price_id}: {exc.message}")
        return PriceLookup(metric, price, source="stripe", price_id=mapped.price_id)

    async def priced_metrics(self, tenant_id: str) -> set[str]:
        """Metrics with an active mapping that names a Stripe price."""
        query = select(price_mappings.c.metric).where(
            price_mappings.c.tenant_id == tenant_id,
            price_mappings.c.active.is_(True),
            price_mappings.c.price_id.is_not(None),
        )
        async with self._db.read() as conn:
            return {row.metric for row in await conn.execute(query)}

    async def _retrieve(self, mapped: _Mapped) -> Mapping[str, Any]:
        key = (mapped.account, mapped.price_id)
        cached = self._cache.get(key)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        options: dict[str, Any] = {}
        if mapped.account != DEFAULT_ACCOUNT:
            options["stripe_account"] = mapped.account
        # The synchronous client in a thread: it owns its connection pool for the process's life,
        # where an async client would have to be closed by whoever stops the event loop.
        price = await asyncio.to_thread(
            self._client.v1.prices.retrieve,
            mapped.price_id,
            {"expand": ["tiers"]},
            options,  # type: ignore[arg-type]
        )
        obj: Mapping[str, Any] = price.to_dict()
        self._cache[key] = (self._clock(), obj)
        return obj

    def price_updated(self, price_id: str, account: str | None = None) -> None:
        """Forget a cached price; the webhook route calls this on ``price.updated``/``price.deleted``."""
        for key in list(self._cache):
            if key[1] == price_id and account in (None, key[0]):
                del self._cache[key]


class PriceSources:
    """Asks each source in turn; the first price wins, else every source's reason is reported."""

    def __init__(self, sources: Sequence[PriceSource]) -> None:
        self.sources = tuple(sources)

    async def price_for(self, tenant_id: str, metric: str) -> PriceLookup:
        """The first source's price, or an unpriced lookup naming why each source had none."""
        misses: list[PriceLookup] = []
        for source in self.sources:
            found = await source.price_for(tenant_id, metric)
            if found.priced:
                return found
            misses.append(found)
        # A concrete failure (Stripe down, an invalid price) says more than "no price".
        specific = [m for m in misses if m.reason != "no_price"]
        first = (specific or misses or [unpriced(metric, "no_price", "no price source")])[0]
        message = "; ".join(m.message or "" for m in misses) or first.message or ""
        return unpriced(metric, first.reason or "no_price", message)

    async def priced_metrics(self, tenant_id: str) -> set[str]:
        """Metrics any source has a price for."""
        found: set[str] = set()
        for source in self.sources:
            found |= await source.priced_metrics(tenant_id)
        return found


def stripe_client(
    api_key: str, api_base: str | None, meter_events_base: str | None = None
) -> stripe.StripeClient:
    """The official client, pointed at ``api_base`` (the fake Stripe) when one is given."""
    bases: dict[str, str] = {}
    if api_base:
        bases = {"api": api_base, "meter_events": meter_events_base or api_base}
    return stripe.StripeClient(
        api_key,
        base_addresses=bases,  # type: ignore[arg-type]
        max_network_retries=2,
    )
