"""Metric settings as ingest needs them: cached per tenant for a few seconds, defaults for the rest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from stripemeter.domain.aggregation import Aggregation
from stripemeter.services.ttl_cache import TtlCache
from stripemeter.store import metric_settings, tenants
from stripemeter.store.database import Database

CATALOG_TTL = 5.0  # seconds a process may act on settings changed by another process


@dataclass(frozen=True, slots=True)
class MetricConfig:
    """How one metric is counted and billed."""

    aggregation: Aggregation
    lateness_window: timedelta
    unit: str = "unit"
    description: str = ""
    configured: bool = False


@dataclass(frozen=True, slots=True)
class TenantMetrics:
    """A tenant's configured metrics and whether unknown ones are refused."""

    strict: bool
    default_window: timedelta
    metrics: dict[str, MetricConfig] = field(default_factory=dict)

    def get(self, metric: str) -> MetricConfig:
        """The metric's settings, or the defaults for a metric nobody configured."""
        config = self.metrics.get(metric)
        if config is not None:
            return config
        return MetricConfig(Aggregation.SUM, self.default_window)


class MetricCatalog:
    """Reads metric settings through a short per-process cache."""

    def __init__(
        self,
        db: Database,
        default_window: timedelta,
        *,
        ttl: float = CATALOG_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self.default_window = default_window
        self._cache: TtlCache[str, TenantMetrics] = TtlCache(ttl, clock=clock)

    async def for_tenant(self, tenant_id: str) -> TenantMetrics:
        """The tenant's metric settings, at most ``ttl`` seconds old."""
        return await self._cache.get(tenant_id, lambda: self._load(tenant_id))

    async def _load(self, tenant_id: str) -> TenantMetrics:
        async with self._db.read() as conn:
            tenant = await tenants.get_tenant(conn, tenant_id)
            rows = await metric_settings.list_for_tenant(conn, tenant_id)
        return TenantMetrics(
            strict=bool(tenant and tenant["strict_metrics"]),
            default_window=self.default_window,
            metrics={
                row["metric"]: MetricConfig(
                    aggregation=Aggregation(row["aggregation"]),
                    lateness_window=timedelta(seconds=row["lateness_window_seconds"]),
                    unit=row["unit"],
                    description=row["description"],
                    configured=True,
                )
                for row in rows
            },
        )

    def invalidate(self, tenant_id: str) -> None:
        """Forget a tenant's cached settings after this process changed them."""
        self._cache.invalidate(tenant_id)
