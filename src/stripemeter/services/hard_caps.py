"""Hard caps: usage_threshold rules with ``hardCap`` make ingest hold events that would exceed them.

Ingest asks ``HardCaps.snapshot`` for the tenants of a transaction before it opens it (a cached
read, no query on the hot path while the cache is fresh), then ``CapSnapshot.refuses`` for each
event with the counter state it has locked: an event that would take the metric's billing value
above the cap is stored as ``held`` with reason ``over_cap`` (reviewable, never dropped).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from stripemeter.domain.aggregation import Aggregation, Contribution, CounterState, fold
from stripemeter.domain.alerts import effective_thresholds
from stripemeter.domain.periods import Period, period_for
from stripemeter.services.alert_rules import AlertRule
from stripemeter.services.catalog import MetricCatalog
from stripemeter.store import alert_inputs, alerts, cycles
from stripemeter.store.counters import CounterKey, state_from_row
from stripemeter.store.database import Database

OVER_CAP = "over_cap"  # the held reason of an event refused by a hard cap
CAPS_TTL = 5.0  # seconds another process may act on caps changed elsewhere
ANY_CUSTOMER = "*"


class EventLike(Protocol):
    """What a cap check reads from an event."""

    @property
    def quantity(self) -> Decimal: ...
    @property
    def at(self) -> datetime: ...
    @property
    def idempotency_key(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Cap:
    """The most a (metric, customer) may reach in a period, under the metric's aggregation."""

    limit: Decimal
    aggregation: Aggregation
    rule_id: str


@dataclass(frozen=True, slots=True)
class TenantCaps:
    """One tenant's caps by (metric, customer); customer ``*`` is every customer without its own."""

    caps: dict[tuple[str, str], Cap] = field(default_factory=dict)

    def cap_for(self, metric: str, customer_ref: str) -> Cap | None:
        """The cap that applies to a customer's metric."""
        return self.caps.get((metric, customer_ref)) or self.caps.get((metric, ANY_CUSTOMER))


@dataclass(frozen=True, slots=True)
class CapSnapshot:
    """The caps of the tenants in one ingest transaction."""

    tenants: dict[str, TenantCaps] = field(default_factory=dict)

    def refuses(self, key: CounterKey, state: CounterState, event: EventLike) -> bool:
        """Whether counting ``event`` on top of ``state`` would exceed the key's cap."""
        if not self.tenants:
            return False
        caps = self.tenants.get(key.tenant_id)
        if caps is None:
            return False
        cap = caps.cap_for(key.metric, key.customer_ref)
        if cap is None:
            return False
        after = fold(state, Contribution(event.quantity, event.at, event.idempotency_key))
        return after.value(cap.aggregation) > cap.limit


NO_CAPS = CapSnapshot()


class IngestAlertHooks(Protocol):
    """What the ingest service calls (``services.alerts.AlertHooks`` implements it)."""

    async def cap_snapshot(self, tenant_ids: Iterable[str]) -> CapSnapshot:
        """The hard caps of these tenants, read before the ingest transaction."""
        ...

    def committed(self, candidates: Sequence[Any]) -> None:
        """These events were committed; never blocks."""
        ...


def _tighter(found: dict[tuple[str, str], Cap], key: tuple[str, str], cap: Cap) -> None:
    current = found.get(key)
    if current is None or cap.limit < current.limit:
        found[key] = cap


class HardCaps:
    """Builds and caches each tenant's caps from its hard-cap rules and customer limits."""

    def __init__(
        self,
        db: Database,
        catalog: MetricCatalog,
        *,
        ttl: float = CAPS_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, TenantCaps]] = {}

    async def snapshot(self, tenant_ids: Iterable[str]) -> CapSnapshot:
        """The caps of these tenants (tenants without caps are left out)."""
        found: dict[str, TenantCaps] = {}
        for tenant_id in tenant_ids:
            caps = await self.for_tenant(tenant_id)
            if caps.caps:
                found[tenant_id] = caps
        return CapSnapshot(found) if found else NO_CAPS

    async def for_tenant(self, tenant_id: str) -> TenantCaps:
        """A tenant's caps, at most ``ttl`` seconds old."""
        cached = self._cache.get(tenant_id)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1]
        async with self._db.read() as conn:
            rules = [AlertRule.from_row(r) for r in await alerts.hard_cap_rules(conn, tenant_id)]
            limits = await alerts.list_limits(conn, tenant_id) if rules else []
        settings = await self._catalog.for_tenant(tenant_id)
        found: dict[tuple[str, str], Cap] = {}
        for rule in rules:
            assert rule.metric is not None
            aggregation = settings.get(rule.metric).aggregation
            if not rule.percent_of_limit:
                key = (rule.metric, rule.customer_ref or ANY_CUSTOMER)
                _tighter(found, key, Cap(rule.thresholds[-1], aggregation, rule.id))
                continue
            for row in limits:
                if row["metric"] != rule.metric:
                    continue
                if rule.customer_ref is not None and row["customer_ref"] != rule.customer_ref:
                    continue
                levels = effective_thresholds(
                    rule.thresholds, percent_of_limit=True, limit=row["limit_value"]
                )
                assert levels is not None
                _tighter(
                    found, (rule.metric, row["customer_ref"]), Cap(levels[-1], aggregation, rule.id)
                )
        caps = TenantCaps(found)
        self._cache[tenant_id] = (self._clock(), caps)
        return caps

    def invalidate(self, tenant_id: str) -> None:
        """Forget a tenant's cached caps after this process changed its rules or limits."""
        self._cache.pop(tenant_id, None)

    async def entitlement(
        self, tenant_id: str, customer_ref: str, metric: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """Whether a customer may use more of a metric now, with the numbers behind the answer."""
        now = now or datetime.now(UTC)
        self.invalidate(tenant_id)
        caps = await self.for_tenant(tenant_id)
        aggregation = (await self._catalog.for_tenant(tenant_id)).get(metric).aggregation
        async with self._db.read() as conn:
            rows = await alert_inputs.counters_in_period(
                conn, tenant_id, now, metric=metric, customer_ref=customer_ref
            )
            # The customer's current period: its counter's, else its cycle's (or calendar month).
            period = (
                Period(rows[0]["period_start"], rows[0]["period_end"])
                if rows
                else period_for(now, await cycles.cycle_of(conn, tenant_id, customer_ref))
            )
            limits = await alerts.list_limits(
                conn, tenant_id, customer_ref=customer_ref, metric=metric
            )
            firing = await alerts.active_states_for(conn, tenant_id, customer_ref, metric)
        value = state_from_row(rows[0]).value(aggregation) if rows else Decimal(0)
        cap = caps.cap_for(metric, customer_ref)
        limit = limits[0]["limit_value"] if limits else None
        return {
            "object": "entitlement",
            "customerRef": customer_ref,
            "metric": metric,
            "aggregation": aggregation.value,
            "periodStart": period.start,
            "periodEnd": period.end,
            "value": value,
            "limit": limit,
            "hardCap": cap.limit if cap else None,
            "remaining": max(Decimal(0), cap.limit - value) if cap else None,
            "allowed": cap is None or value < cap.limit,
            "alerts": [
                {
                    "stateId": s["id"],
                    "ruleId": s["rule_id"],
                    "status": s["status"],
                    "value": s["value"],
                    "threshold": s["threshold"],
                }
                for s in firing
            ],
        }
