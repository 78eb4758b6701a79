"""Metric settings and the tenant's strict mode: read, change (audited), and refresh the catalog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import RowMapping

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.errors import InvalidInput, NotFound
from stripemeter.domain.events import MAX_METRIC_LENGTH
from stripemeter.services.catalog import MetricCatalog
from stripemeter.store import audit, metric_settings, tenants
from stripemeter.store.database import Database

MAX_LATENESS_WINDOW_SECONDS = (
    366 * 24 * 3600
)  # a year: beyond it a late event is a true-up, not a fold
MAX_UNIT_LENGTH = 40
MAX_DESCRIPTION_LENGTH = 2000
DEFAULT_UNIT = "unit"


@dataclass(frozen=True, slots=True)
class MetricView:
    """One metric's settings as callers see them; ``configured`` is false for defaults."""

    metric: str
    aggregation: Aggregation
    lateness_window_seconds: int
    unit: str
    description: str
    configured: bool
    updated_at: datetime | None = None

    def to_wire(self) -> dict[str, Any]:
        """The camelCase JSON shape of the API."""
        return {
            "metric": self.metric,
            "aggregation": self.aggregation.value,
            "latenessWindowSeconds": self.lateness_window_seconds,
            "unit": self.unit,
            "description": self.description,
            "configured": self.configured,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class MetricChange:
    """A validated replacement of one metric's settings (PUT semantics: omitted fields take defaults)."""

    aggregation: Aggregation
    lateness_window_seconds: int | None = None
    unit: str | None = None
    description: str | None = None


def validate_metric_name(metric: str) -> str:
    """Metric names follow the same rule as on events: 1-100 printable characters."""
    if not metric.strip() or len(metric) > MAX_METRIC_LENGTH:
        raise InvalidInput(
            f"metric must be 1-{MAX_METRIC_LENGTH} characters",
            code="invalid_metric",
            param="metric",
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in metric):
        raise InvalidInput(
            "metric must not contain control characters", code="invalid_metric", param="metric"
        )
    return metric


def parse_change(body: object) -> MetricChange:
    """Validate a PUT body ``{aggregation, latenessWindowSeconds?, unit?, description?}``."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_body")
    allowed = {"aggregation", "latenessWindowSeconds", "unit", "description", "metric", "tenantId"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", code="unknown_field", param=unknown[0])
    raw_aggregation = body.get("aggregation")
    if raw_aggregation is None:
        raise InvalidInput("aggregation is required", code="required", param="aggregation")
    try:
        aggregation = Aggregation(raw_aggregation)
    except ValueError:
        choices = "|".join(a.value for a in Aggregation)
        raise InvalidInput(
            f"aggregation must be one of {choices}", code="invalid_aggregation", param="aggregation"
        ) from None
    window = body.get("latenessWindowSeconds")
    if window is not None and (
        isinstance(window, bool)
        or not isinstance(window, int)
        or not 0 <= window <= MAX_LATENESS_WINDOW_SECONDS
    ):
        raise InvalidInput(
            f"latenessWindowSeconds must be a whole number from 0 to {MAX_LATENESS_WINDOW_SECONDS}",
            code="invalid_lateness_window",
            param="latenessWindowSeconds",
        )
    unit = _optional_text(body, "unit", MAX_UNIT_LENGTH, multiline=False)
    if unit is not None and not unit.strip():
        raise InvalidInput("unit must not be blank", code="invalid_unit", param="unit")
    description = _optional_text(body, "description", MAX_DESCRIPTION_LENGTH, multiline=True)
    return MetricChange(aggregation, window, unit, description)


def _optional_text(body: dict[str, Any], name: str, limit: int, *, multiline: bool) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(
            f"{name} must be a string of at most {limit} characters",
            code=f"invalid_{name}",
            param=name,
        )
    allowed = "\n\r\t" if multiline else ""
    if any((ord(ch) < 32 or ord(ch) == 127) and ch not in allowed for ch in value):
        raise InvalidInput(
            f"{name} must not contain control characters", code=f"invalid_{name}", param=name
        )
    return value


class MetricSettingsService:
    """Reads and changes per-metric settings and strict mode for one process."""

    def __init__(
        self,
        db: Database,
        catalog: MetricCatalog,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._clock = clock

    @property
    def default_window(self) -> timedelta:
        """The lateness window of metrics that set none."""
        return self._catalog.default_window

    def defaults(self, metric: str) -> MetricView:
        """The settings an unconfigured metric is counted with."""
        return MetricView(
            metric=metric,
            aggregation=Aggregation.SUM,
            lateness_window_seconds=int(self.default_window.total_seconds()),
            unit=DEFAULT_UNIT,
            description="",
            configured=False,
        )

    async def list(self, tenant_id: str) -> list[MetricView]:
        """Every configured metric of the tenant, by name (read fresh, not from the cache)."""
        async with self._db.read() as conn:
            rows = await metric_settings.list_for_tenant(conn, tenant_id)
        return [_view(row) for row in rows]

    async def get(self, tenant_id: str, metric: str) -> MetricView:
        """One metric's settings, or the defaults flagged ``configured: false``."""
        validate_metric_name(metric)
        for view in await self.list(tenant_id):
            if view.metric == metric:
                return view
        return self.defaults(metric)

    async def put(
        self,
        tenant_id: str,
        metric: str,
        change: MetricChange,
        *,
        actor: str,
        request_id: str | None = None,
    ) -> MetricView:
        """Replace one metric's settings, audit the change, and refresh this process's catalog."""
        validate_metric_name(metric)
        now = self._clock()
        window = (
            change.lateness_window_seconds
            if change.lateness_window_seconds is not None
            else int(self.default_window.total_seconds())
        )
        unit = change.unit if change.unit is not None else DEFAULT_UNIT
        description = change.description if change.description is not None else ""
        async with self._db.write() as conn:
            before = {
                row["metric"]: _view(row)
                for row in await metric_settings.list_for_tenant(conn, tenant_id)
            }.get(metric)
            await metric_settings.upsert(
                conn,
                tenant_id,
                metric,
                aggregation=change.aggregation.value,
                lateness_window_seconds=window,
                unit=unit,
                description=description,
                now=now,
            )
            after = MetricView(metric, change.aggregation, window, unit, description, True, now)
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="metric.created" if before is None else "metric.updated",
                target_type="metric",
                target_id=metric,
                details={
                    "before": None if before is None else _audited(before),
                    "after": _audited(after),
                },
                request_id=request_id,
                now=now,
            )
        self._catalog.invalidate(tenant_id)
        return after

    async def strict_mode(self, tenant_id: str) -> bool:
        """Whether the tenant refuses events for metrics it has not configured."""
        async with self._db.read() as conn:
            row = await tenants.get_tenant(conn, tenant_id)
        if row is None:
            raise NotFound(f"no tenant {tenant_id!r}")
        return bool(row["strict_metrics"])

    async def set_strict_mode(
        self, tenant_id: str, strict: bool, *, actor: str, request_id: str | None = None
    ) -> bool:
        """Turn strict mode on or off (audited; a no-op change is still recorded)."""
        now = self._clock()
        async with self._db.write() as conn:
            row = await tenants.get_tenant(conn, tenant_id)
            if row is None:
                raise NotFound(f"no tenant {tenant_id!r}")
            await tenants.set_strict(conn, tenant_id, strict)
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="tenant.settings_updated",
                target_type="tenant",
                target_id=tenant_id,
                details={
                    "before": {"strictMetrics": bool(row["strict_metrics"])},
                    "after": {"strictMetrics": strict},
                },
                request_id=request_id,
                now=now,
            )
        self._catalog.invalidate(tenant_id)
        return strict


def _view(row: RowMapping) -> MetricView:
    return MetricView(
        metric=row["metric"],
        aggregation=Aggregation(row["aggregation"]),
        lateness_window_seconds=int(row["lateness_window_seconds"]),
        unit=row["unit"],
        description=row["description"],
        configured=True,
        updated_at=row["updated_at"],
    )


def _audited(view: MetricView) -> dict[str, Any]:
    return {
        "aggregation": view.aggregation.value,
        "latenessWindowSeconds": view.lateness_window_seconds,
        "unit": view.unit,
        "description": view.description,
    }
