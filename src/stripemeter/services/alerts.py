"""Alerts, wired: rules, evaluation, delivery, hard caps, limits, and the operator's actions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping

from stripemeter.config import Settings
from stripemeter.domain.alerts import ACTIVE, AlertStatus, Decision, acknowledge, snooze
from stripemeter.domain.errors import InvalidInput, NotFound
from stripemeter.domain.events import MAX_CUSTOMER_REF_LENGTH, MAX_METRIC_LENGTH
from stripemeter.domain.quantities import QuantityError, parse_quantity
from stripemeter.services.alert_delivery import AlertDeliverer, DeliveryOptions, SmtpConfig
from stripemeter.services.alert_evaluator import (
    AlertEvaluator,
    EvaluationSummary,
    Reading,
    Touched,
    state_of,
)
from stripemeter.services.alert_rules import AlertRule, AlertRules
from stripemeter.services.catalog import MetricCatalog
from stripemeter.services.hard_caps import CapSnapshot, HardCaps
from stripemeter.services.pricing import PricingServices
from stripemeter.services.projection import ProjectionService
from stripemeter.services.read_params import check_length
from stripemeter.store import alerts as store
from stripemeter.store import dialect
from stripemeter.store.database import Database

MAX_SNOOZE_SECONDS = 90 * 86_400


def _utcnow() -> datetime:
    return datetime.now(UTC)


def state_to_wire(row: RowMapping, now: datetime) -> dict[str, Any]:
    """A state row in wire names."""
    snoozed = row["snoozed_until"]
    return {
        "id": row["id"],
        "object": "alert_state",
        "ruleId": row["rule_id"],
        "customerRef": row["customer_ref"] or None,
        "metric": row["metric"] or None,
        "status": row["status"],
        "value": row["value"],
        "threshold": row["threshold"],
        "level": row["level"],
        "snoozedUntil": snoozed if snoozed is not None and snoozed > now else None,
        "triggeredAt": row["triggered_at"],
        "acknowledgedAt": row["acknowledged_at"],
        "acknowledgedBy": row["acknowledged_by"],
        "resolvedAt": row["resolved_at"],
        "lastNotifiedAt": row["notified_at"],
        "evaluatedAt": row["evaluated_at"],
        "updatedAt": row["updated_at"],
    }


def event_to_wire(row: RowMapping) -> dict[str, Any]:
    """A history row in wire names."""
    return {
        "id": row["id"],
        "object": "alert_event",
        "ruleId": row["rule_id"],
        "ruleName": row["rule_name"],
        "ruleType": row["rule_type"],
        "stateId": row["state_id"],
        "customerRef": row["customer_ref"] or None,
        "metric": row["metric"] or None,
        "transition": row["kind"],
        "fromStatus": row["from_status"],
        "toStatus": row["to_status"],
        "value": row["value"],
        "threshold": row["threshold"],
        "level": row["level"],
        "actor": row["actor"],
        "note": row["note"],
        "createdAt": row["created_at"],
    }


def delivery_to_wire(row: RowMapping) -> dict[str, Any]:
    """A delivery row in wire names (the channel's secret is never shown)."""
    return {
        "id": row["id"],
        "object": "alert_delivery",
        "eventId": row["event_id"],
        "ruleId": row["rule_id"],
        "channel": row["channel_type"],
        "target": row["target"],
        "status": row["status"],
        "attempts": row["attempts"],
        "nextAttemptAt": row["next_attempt_at"] if row["status"] == "pending" else None,
        "lastError": row["last_error"],
        "responseCode": row["response_code"],
        "createdAt": row["created_at"],
        "deliveredAt": row["delivered_at"],
    }


def limit_to_wire(row: RowMapping) -> dict[str, Any]:
    """A customer limit in wire names."""
    return {
        "object": "customer_limit",
        "customerRef": row["customer_ref"],
        "metric": row["metric"],
        "limit": row["limit_value"],
        "updatedAt": row["updated_at"],
    }


@dataclass
class AlertHooks:
    """What ingest calls: the cap check before its transaction, the touch after it commits."""

    caps: HardCaps
    evaluator: AlertEvaluator

    async def cap_snapshot(self, tenant_ids: Iterable[str]) -> CapSnapshot:
        """The hard caps of these tenants (cached; no query while fresh)."""
        return await self.caps.snapshot(tenant_ids)

    def committed(self, candidates: Sequence[Touched]) -> None:
        """These events are committed: evaluate their thresholds soon. Never blocks."""
        self.evaluator.touched(candidates)


class AlertService:
    """The alerts of every tenant: what the routes and the app lifespan use."""

    def __init__(
        self,
        db: Database,
        catalog: MetricCatalog,
        projection: ProjectionService | None,
        *,
        interval: float,
        delivery: DeliveryOptions,
        smtp: SmtpConfig,
        enabled: bool = True,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        self.enabled = enabled
        self.clock = clock
        self.deliverer = AlertDeliverer(db, options=delivery, smtp=smtp)
        self.evaluator = AlertEvaluator(
            db, catalog, projection, wake_deliveries=self.deliverer.wake, interval=interval
        )
        self.caps = HardCaps(db, catalog)
        self.rules = AlertRules(
            db, allow_private=delivery.allow_private, on_change=self._rules_changed
        )
        self.hooks = AlertHooks(self.caps, self.evaluator)

    def _rules_changed(self, tenant_id: str) -> None:
        self.caps.invalidate(tenant_id)
        self.evaluator.rules_changed(tenant_id)
        self.evaluator.wake()

    def start(self) -> None:
        """Start evaluation and delivery (unless alerts are switched off)."""
        if self.enabled:
            self.deliverer.start()
            self.evaluator.start()

    async def stop(self) -> None:
        """Stop evaluation and delivery."""
        await self.evaluator.stop()
        await self.deliverer.stop()

    async def evaluate(self, tenant_id: str) -> EvaluationSummary:
        """Evaluate a tenant's rules now."""
        summary = await self.evaluator.evaluate_tenant(tenant_id, trigger="manual")
        if summary.notifications:
            self.deliverer.wake()
        return summary

    # -- states -------------------------------------------------------------------------------

    async def list_states(
        self,
        tenant_id: str,
        *,
        status: str | None,
        rule_id: str | None,
        customer_ref: str | None,
        metric: str | None,
        cursor: int | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of states, newest first, and the next cursor."""
        async with self._db.read() as conn:
            rows = await store.list_states(
                conn,
                tenant_id,
                status=status,
                rule_id=rule_id,
                customer_ref=customer_ref,
                metric=metric,
                after_id=cursor,
                limit=limit + 1,
            )
        now = self.clock()
        page = rows[:limit]
        return [state_to_wire(r, now) for r in page], page[-1]["id"] if len(rows) > limit else None

    async def get_state(self, tenant_id: str, state_id: int) -> dict[str, Any]:
        """One state, or NotFound."""
        async with self._db.read() as conn:
            row = await store.get_state(conn, tenant_id, state_id)
        if row is None:
            raise NotFound(f"no alert state {state_id}", code="alert_state_not_found")
        return state_to_wire(row, self.clock())

    async def acknowledge(
        self, tenant_id: str, state_id: int, actor: str, note: str | None
    ) -> dict[str, Any]:
        """Mark a triggered state acknowledged: no re-notification until it escalates or resolves."""
        return await self._act(tenant_id, state_id, actor, note, lambda s: acknowledge(s))

    async def snooze(
        self,
        tenant_id: str,
        state_id: int,
        actor: str,
        until: datetime | None,
        note: str | None,
    ) -> dict[str, Any]:
        """Silence a state's notifications until ``until`` (None lifts the snooze)."""
        now = self.clock()
        if until is not None and (until - now).total_seconds() > MAX_SNOOZE_SECONDS:
            raise InvalidInput(
                f"a snooze lasts at most {MAX_SNOOZE_SECONDS // 86_400} days",
                code="invalid_parameter",
                param="until",
            )
        return await self._act(tenant_id, state_id, actor, note, lambda s: snooze(s, until, now))

    async def _act(
        self,
        tenant_id: str,
        state_id: int,
        actor: str,
        note: str | None,
        action: Callable[[Any], Decision],
    ) -> dict[str, Any]:
        now = self.clock()
        async with self._db.write() as conn:
            await dialect.lock_names(conn, [f"alerts|{tenant_id}"])
            row = await store.get_state(conn, tenant_id, state_id)
            if row is None:
                raise NotFound(f"no alert state {state_id}", code="alert_state_not_found")
            rule_row = await store.get_rule(conn, tenant_id, row["rule_id"])
            if rule_row is None:
                raise NotFound(f"no alert state {state_id}", code="alert_state_not_found")
            decision = action(state_of(row))
            if decision.changed:
                rule = AlertRule.from_row(rule_row)
                reading = Reading(
                    row["customer_ref"], row["metric"], row["value"] or Decimal(0), rule.thresholds
                )
                await self.evaluator.record(
                    conn, rule, row, decision, reading, row["threshold"], now, actor, note=note
                )
            row = await store.get_state(conn, tenant_id, state_id)
        assert row is not None
        return state_to_wire(row, now)

    # -- history and deliveries ---------------------------------------------------------------

    async def list_events(
        self, tenant_id: str, *, cursor: int | None, limit: int, **filters: Any
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of transitions, newest first, and the next cursor."""
        async with self._db.read() as conn:
            rows = await store.list_events(
                conn, tenant_id, after_id=cursor, limit=limit + 1, **filters
            )
        page = rows[:limit]
        return [event_to_wire(r) for r in page], page[-1]["id"] if len(rows) > limit else None

    async def list_deliveries(
        self,
        tenant_id: str,
        *,
        status: str | None,
        event_id: int | None,
        cursor: int | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of deliveries, newest first, and the next cursor."""
        async with self._db.read() as conn:
            rows = await store.list_deliveries(
                conn, tenant_id, status=status, event_id=event_id, after_id=cursor, limit=limit + 1
            )
        page = rows[:limit]
        return [delivery_to_wire(r) for r in page], page[-1]["id"] if len(rows) > limit else None

    async def retry_delivery(self, tenant_id: str, delivery_id: int) -> dict[str, Any]:
        """Send a failed delivery again."""
        async with self._db.write() as conn:
            row = await store.get_delivery(conn, tenant_id, delivery_id)
            if row is None:
                raise NotFound(f"no alert delivery {delivery_id}", code="alert_delivery_not_found")
            if not await store.retry_delivery(conn, tenant_id, delivery_id, self.clock()):
                raise InvalidInput(
                    f"only a failed delivery can be retried (this one is {row['status']})",
                    code="delivery_not_failed",
                )
            row = await store.get_delivery(conn, tenant_id, delivery_id)
        assert row is not None
        self.deliverer.wake()
        return delivery_to_wire(row)

    # -- limits -------------------------------------------------------------------------------

    async def put_limit(self, tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Set ``{customerRef, metric, limit}``."""
        customer, metric = _limit_key(body.get("customerRef"), body.get("metric"))
        try:
            value = parse_quantity(body.get("limit"))
        except QuantityError as exc:
            raise InvalidInput(f"limit {exc}", code="invalid_parameter", param="limit") from None
        if value <= 0:
            raise InvalidInput(
                "limit must be greater than 0", code="invalid_parameter", param="limit"
            )
        now = self.clock()
        async with self._db.write() as conn:
            await store.put_limit(conn, tenant_id, customer, metric, value, now)
            rows = await store.list_limits(conn, tenant_id, customer_ref=customer, metric=metric)
        self._rules_changed(tenant_id)
        return limit_to_wire(rows[0])

    async def list_limits(
        self, tenant_id: str, customer_ref: str | None, metric: str | None
    ) -> list[dict[str, Any]]:
        """The tenant's limits (optionally of one customer or metric)."""
        async with self._db.read() as conn:
            rows = await store.list_limits(
                conn, tenant_id, customer_ref=customer_ref, metric=metric
            )
        return [limit_to_wire(r) for r in rows]

    async def delete_limit(self, tenant_id: str, customer_ref: object, metric: object) -> None:
        """Remove a limit."""
        customer, metric_name = _limit_key(customer_ref, metric)
        async with self._db.write() as conn:
            if not await store.delete_limit(conn, tenant_id, customer, metric_name):
                raise NotFound("no such limit", code="limit_not_found")
        self._rules_changed(tenant_id)

    async def entitlement(
        self, tenant_id: str, customer_ref: object, metric: object
    ) -> dict[str, Any]:
        """Whether a customer may use more of a metric now."""
        customer, metric_name = _limit_key(customer_ref, metric)
        return await self.caps.entitlement(tenant_id, customer, metric_name, self.clock())


def _limit_key(customer_ref: object, metric: object) -> tuple[str, str]:
    found = []
    for value, param, maximum in (
        (customer_ref, "customerRef", MAX_CUSTOMER_REF_LENGTH),
        (metric, "metric", MAX_METRIC_LENGTH),
    ):
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{param} is required", code="missing_parameter", param=param)
        checked = check_length(value, param, maximum)
        assert checked is not None
        found.append(checked)
    return found[0], found[1]


__all__ = ["ACTIVE", "AlertHooks", "AlertService", "AlertStatus"]


def alerts_from_settings(
    settings: Settings, db: Database, catalog: MetricCatalog, pricing: PricingServices
) -> AlertService:
    """The alert service for these settings (API processes and workers build it alike)."""
    password = settings.smtp_password
    return AlertService(
        db,
        catalog,
        pricing.projection,
        interval=settings.alerts_interval_seconds,
        enabled=settings.alerts_enabled,
        delivery=DeliveryOptions(
            max_attempts=settings.alerts_delivery_max_attempts,
            backoff_base=settings.alerts_delivery_backoff_seconds,
            timeout=settings.alerts_delivery_timeout_seconds,
            allow_private=settings.alerts_allow_private_targets,
            interval=settings.alerts_delivery_interval_seconds,
        ),
        smtp=SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            sender=settings.smtp_from,
            starttls=settings.smtp_starttls,
            use_ssl=settings.smtp_ssl,
            timeout=settings.smtp_timeout_seconds,
        ),
    )
