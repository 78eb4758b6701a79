"""Alert evaluation: measure what each rule watches, decide, persist transitions, owe notifications.

One evaluation of a tenant reads the values first (read transactions, no lock held), then opens one
short write transaction under the tenant's advisory lock, re-reads the states and applies the pure
decisions of ``domain.alerts``. Two processes evaluating the same tenant therefore serialise on the
lock, and the second finds the first one's states: a crossing fires once, whoever sees it.

Two things drive it: the background loop (every rule of every tenant, each ``interval``) and the
ingest hook (``touched``), a non-blocking put of the committed events onto a queue that a side task
turns into an evaluation of just the usage and spend thresholds of the customers and metrics touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import structlog
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.alerts import (
    ACTIVE,
    AlertState,
    AlertStatus,
    Decision,
    RuleType,
    Transition,
    decide,
    effective_thresholds,
)
from stripemeter.domain.periods import Period
from stripemeter.domain.quantities import canonical
from stripemeter.observability import metrics
from stripemeter.services.alert_rules import (
    DEFAULT_SPIKE_BASELINE,
    DEFAULT_SPIKE_WINDOW,
    AlertRule,
)
from stripemeter.services.catalog import MetricCatalog
from stripemeter.services.projection import ProjectionQuery, ProjectionService
from stripemeter.store import alert_inputs, dialect
from stripemeter.store import alerts as store
from stripemeter.store.counters import state_from_row
from stripemeter.store.database import Database

log = structlog.get_logger("stripemeter.alerts")

EVALUATION_INTERVAL = 30.0  # seconds between full evaluations
TOUCH_QUEUE_SIZE = 10_000  # committed groups waiting for an immediate evaluation
RULE_TENANTS_TTL = 5.0  # seconds the set of tenants with rules is trusted
STOP_GRACE = 5.0  # seconds stop() waits for an evaluation in progress
STARTUP_DELAY = 5.0  # seconds before the first full evaluation (unless woken sooner)
IMMEDIATE_TYPES = frozenset({RuleType.USAGE_THRESHOLD, RuleType.SPEND_THRESHOLD})
ZERO = Decimal(0)
SYSTEM = "system"  # the actor of evaluations in the history

Subject = tuple[str, str]  # (customer ref or "", metric or "")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Event(Protocol):
    @property
    def metric(self) -> str: ...
    @property
    def customer_ref(self) -> str: ...


class Touched(Protocol):
    """What the ingest hook reads from each recorded candidate."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def event(self) -> _Event: ...


@dataclass(frozen=True, slots=True)
class Reading:
    """A rule's value for one subject, and the absolute thresholds it is judged against."""

    customer_ref: str
    metric: str
    value: Decimal
    thresholds: tuple[Decimal, ...]


@dataclass(slots=True)
class Readings:
    """Values measured now, and subjects that cannot be judged now (left as they are)."""

    values: list[Reading] = field(default_factory=list)
    unknown: set[Subject] = field(default_factory=set)


@dataclass(slots=True)
class EvaluationSummary:
    """What one evaluation did."""

    rules: int = 0
    readings: int = 0
    transitions: list[tuple[str, str]] = field(default_factory=list)  # (rule type, transition)
    notifications: int = 0

    def merge(self, other: EvaluationSummary) -> None:
        """Add another summary's counts."""
        self.rules += other.rules
        self.readings += other.readings
        self.transitions += other.transitions
        self.notifications += other.notifications


def state_of(row: RowMapping | None) -> AlertState:
    """The decision-relevant part of a stored state."""
    if row is None:
        return AlertState()
    return AlertState(
        status=AlertStatus(row["status"]),
        level=row["level"],
        snoozed_until=row["snoozed_until"],
        notified_at=row["notified_at"],
        notify_pending=bool(row["notify_pending"]),
    )


def _threshold(thresholds: tuple[Decimal, ...], *levels: int | None) -> Decimal | None:
    for level in levels:
        if level is not None:
            return thresholds[min(level, len(thresholds) - 1)]
    return None


def notification(
    rule: AlertRule,
    event_id: int,
    state_id: int,
    kind: Transition,
    status: AlertStatus,
    reading: Reading,
    threshold: Decimal | None,
    level: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The JSON document every channel receives (decimals as exact strings)."""
    return {
        "id": f"aev_{event_id}",
        "object": "alert_event",
        "type": f"alert.{kind.value}",
        "transition": kind.value,
        "createdAt": now.isoformat().replace("+00:00", "Z"),
        "alert": {
            "ruleId": rule.id,
            "ruleName": rule.name,
            "ruleType": rule.type.value,
            "stateId": state_id,
            "customerRef": reading.customer_ref or None,
            "metric": reading.metric or None,
            "status": status.value,
            "value": canonical(reading.value),
            "threshold": canonical(threshold) if threshold is not None else None,
            "level": level,
            "thresholds": [canonical(t) for t in reading.thresholds],
            "percentOfLimit": rule.percent_of_limit,
        },
    }


def _target(channel: dict[str, Any]) -> str:
    if channel["type"] == "email":
        return ", ".join(channel["to"])[:500]
    if channel["type"] == "log":
        return "log"
    return str(channel["url"]).split("?", 1)[0][:500]


class AlertEvaluator:
    """Evaluates rules into states, history and owed deliveries."""

    def __init__(
        self,
        db: Database,
        catalog: MetricCatalog,
        projection: ProjectionService | None,
        *,
        wake_deliveries: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = _utcnow,
        interval: float = EVALUATION_INTERVAL,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._projection = projection
        self._wake_deliveries = wake_deliveries
        self.clock = clock
        self.interval = interval
        self._queue: asyncio.Queue[Sequence[Touched]] = asyncio.Queue(TOUCH_QUEUE_SIZE)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._draining = False
        self._rule_tenants: tuple[float, set[str]] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop and the ingest-hook consumer on the running event loop."""
        self._stopping = False
        self._tasks = [asyncio.create_task(self._loop()), asyncio.create_task(self._drain())]

    async def stop(self) -> None:
        """Let work in progress finish (up to ``STOP_GRACE`` seconds), then stop both tasks.

        Cancelling in the middle of a database call can leave a connection unreturned, so only
        tasks that are idle, or still busy after the grace period, are cancelled.
        """
        if not self._tasks:
            return
        self._stopping = True
        self._wake.set()
        drain_task = self._tasks[1]
        if not self._draining:
            drain_task.cancel()
        _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE)
        for task in pending:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @property
    def running(self) -> bool:
        """Whether the background tasks run."""
        return bool(self._tasks)

    def touched(self, candidates: Sequence[Touched]) -> None:
        """Ingest hook: these events were committed. Never blocks, never raises.

        The whole group goes on the queue as it is (O(1)); the consumer works out which counters
        they touched. When the queue is full the next full evaluation catches up instead.
        """
        if not self._tasks:
            return
        try:
            self._queue.put_nowait(candidates)
        except asyncio.QueueFull:
            self._wake.set()

    def rules_changed(self, tenant_id: str) -> None:
        """A tenant's rules changed in this process: consider it for immediate evaluation."""
        if self._rule_tenants is not None:
            self._rule_tenants[1].add(tenant_id)

    def wake(self) -> None:
        """Run a full evaluation now."""
        self._wake.set()

    async def _loop(self) -> None:
        # The first round waits a moment: a process starting up has better things to do first.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), min(self.interval, STARTUP_DELAY))
        self._wake.clear()
        while not self._stopping:
            try:
                await self.evaluate_all()
            except Exception as exc:  # a failed round must not stop the loop
                log.warning("alert_evaluation_failed", error=repr(exc))
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def _drain(self) -> None:
        while not self._stopping:
            batch = [await self._queue.get()]
            self._draining = True
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.evaluate_touched(batch)
            except Exception as exc:  # keep consuming; the loop will catch up
                log.warning("alert_immediate_evaluation_failed", error=repr(exc))
            finally:
                self._draining = False
                for _ in batch:
                    self._queue.task_done()

    async def settled(self) -> None:
        """Wait until every event handed to ``touched`` so far has been evaluated."""
        await self._queue.join()

    async def _tenants_with_rules(self) -> set[str]:
        cached = self._rule_tenants
        if cached is not None and time.monotonic() - cached[0] < RULE_TENANTS_TTL:
            return cached[1]
        async with self._db.read() as conn:
            tenants = set(await store.tenants_with_rules(conn))
        self._rule_tenants = (time.monotonic(), tenants)
        return tenants

    # -- evaluation ---------------------------------------------------------------------------

    async def evaluate_all(self) -> EvaluationSummary:
        """Evaluate every enabled rule of every tenant."""
        self._rule_tenants = None
        summary = EvaluationSummary()
        for tenant_id in sorted(await self._tenants_with_rules()):
            try:
                summary.merge(await self.evaluate_tenant(tenant_id, trigger="loop"))
            except Exception as exc:  # one tenant's failure must not starve the others
                log.warning("alert_tenant_evaluation_failed", tenant=tenant_id, error=repr(exc))
        return summary

    async def evaluate_touched(self, batch: Iterable[Sequence[Touched]]) -> EvaluationSummary:
        """Evaluate usage and spend thresholds of the (customer, metric)s these events touched."""
        with_rules = await self._tenants_with_rules()
        if not with_rules:
            return EvaluationSummary()  # nothing to judge: skip the walk over every event
        by_tenant: dict[str, set[Subject]] = {}
        for group in batch:
            for item in group:
                if item.tenant_id in with_rules:
                    by_tenant.setdefault(item.tenant_id, set()).add(
                        (item.event.customer_ref, item.event.metric)
                    )
        summary = EvaluationSummary()
        for tenant_id, subjects in sorted(by_tenant.items()):
            summary.merge(
                await self.evaluate_tenant(
                    tenant_id, only=subjects, types=IMMEDIATE_TYPES, trigger="ingest"
                )
            )
        return summary

    async def evaluate_tenant(
        self,
        tenant_id: str,
        *,
        only: set[Subject] | None = None,
        types: frozenset[RuleType] | None = None,
        trigger: str = "manual",
    ) -> EvaluationSummary:
        """Evaluate a tenant's enabled rules (of ``types``; for the ``only`` subjects when given)."""
        now = self.clock()
        summary = EvaluationSummary()
        async with self._db.read() as conn:
            rows = await store.list_rules(conn, tenant_id, enabled_only=True)
        rules = [AlertRule.from_row(r) for r in rows]
        if types is not None:
            rules = [r for r in rules if r.type in types]
        if not rules:
            return summary
        measured: list[tuple[AlertRule, Readings]] = []
        for rule in rules:
            try:
                readings = await self.readings(rule, now, only)
            except Exception as exc:  # a rule that cannot be measured keeps its states as they are
                log.warning("alert_rule_unmeasurable", rule=rule.id, error=repr(exc))
                metrics.alert_evaluations.labels(rule.type.value, "error").inc()
                continue
            measured.append((rule, readings))
            summary.readings += len(readings.values)
            metrics.alert_evaluations.labels(rule.type.value, trigger).inc()
        summary.rules = len(measured)
        async with self._db.write() as conn:
            await dialect.lock_names(conn, [f"alerts|{tenant_id}"])
            states = await store.states_of_rules(conn, tenant_id, [r.id for r, _ in measured])
            for rule, readings in measured:
                seen: set[tuple[str, str, str]] = set()
                for reading in readings.values:
                    key = (rule.id, reading.customer_ref, reading.metric)
                    seen.add(key)
                    await self._apply(conn, rule, states.get(key), reading, now, summary)
                if only is not None:
                    continue
                # A subject with no reading now (a new period, a removed price or limit, nothing
                # in the window) counts as zero, so what fired on it resolves.
                for key, row in states.items():
                    subject = (key[1], key[2])
                    if key[0] != rule.id or key in seen or subject in readings.unknown:
                        continue
                    if row["status"] in ACTIVE:
                        zero = Reading(key[1], key[2], ZERO, rule.thresholds)
                        await self._apply(conn, rule, row, zero, now, summary)
        for rule_type, kind in summary.transitions:
            metrics.alert_transitions.labels(rule_type, kind).inc()
        if summary.notifications:
            self._wake_deliveries()
        return summary

    async def _apply(
        self,
        conn: AsyncConnection,
        rule: AlertRule,
        row: RowMapping | None,
        reading: Reading,
        now: datetime,
        summary: EvaluationSummary,
    ) -> None:
        if row is not None and row["evaluated_at"] >= now:
            # Another evaluation measured at or after our instant and wrote first: our readings
            # are older than what the state already reflects, so applying them would flap.
            return
        before = state_of(row)
        decision = decide(before, reading.value, rule.policy(reading.thresholds), now)
        after = decision.state
        threshold = _threshold(reading.thresholds, after.level, before.level)
        if not decision.changed:
            if row is not None and row["status"] in ACTIVE and row["value"] != reading.value:
                await store.update_state(
                    conn,
                    row["id"],
                    {"value": reading.value, "threshold": threshold, "evaluated_at": now},
                )
            return
        await self.record(conn, rule, row, decision, reading, threshold, now, SYSTEM, summary)

    async def record(
        self,
        conn: AsyncConnection,
        rule: AlertRule,
        row: RowMapping | None,
        decision: Decision,
        reading: Reading,
        threshold: Decimal | None,
        now: datetime,
        actor: str,
        summary: EvaluationSummary | None = None,
        note: str | None = None,
    ) -> int:
        """Persist a decision: the state, one history row, and a delivery per channel if owed."""
        assert decision.transition is not None
        kind = decision.transition
        after = decision.state
        before_status = row["status"] if row is not None else AlertStatus.OK.value
        values: dict[str, Any] = {
            "status": after.status.value,
            "level": after.level,
            "snoozed_until": after.snoozed_until,
            "notified_at": after.notified_at,
            "notify_pending": after.notify_pending,
            "value": reading.value,
            "threshold": threshold,
            "updated_at": now,
        }
        if actor == SYSTEM:  # when the value was measured; operators' actions measure nothing
            values["evaluated_at"] = now
        if kind is Transition.TRIGGERED:
            values |= {"triggered_at": now, "resolved_at": None}
        if kind in (Transition.TRIGGERED, Transition.ESCALATED, Transition.RESOLVED):
            values |= {"acknowledged_at": None, "acknowledged_by": None}
        if kind is Transition.RESOLVED:
            values["resolved_at"] = now
        if kind is Transition.ACKNOWLEDGED:
            values |= {"acknowledged_at": now, "acknowledged_by": actor}
        if row is None:
            state_id = await store.insert_state(
                conn,
                {"evaluated_at": now}
                | values
                | {
                    "tenant_id": rule.tenant_id,
                    "rule_id": rule.id,
                    "customer_ref": reading.customer_ref,
                    "metric": reading.metric,
                },
            )
        else:
            state_id = int(row["id"])
            await store.update_state(conn, state_id, values)
        event_id = await store.insert_event(
            conn,
            {
                "tenant_id": rule.tenant_id,
                "rule_id": rule.id,
                "state_id": state_id,
                "rule_name": rule.name,
                "rule_type": rule.type.value,
                "customer_ref": reading.customer_ref,
                "metric": reading.metric,
                "kind": kind.value,
                "from_status": before_status,
                "to_status": after.status.value,
                "value": reading.value,
                "threshold": threshold,
                "level": after.level,
                "actor": actor,
                "note": note,
                "created_at": now,
            },
        )
        log.info(
            "alert_transition",
            tenant=rule.tenant_id,
            rule=rule.id,
            state=state_id,
            transition=kind.value,
            status=after.status.value,
            customer=reading.customer_ref or None,
            metric=reading.metric or None,
            value=canonical(reading.value),
            threshold=canonical(threshold) if threshold is not None else None,
            notify=decision.notify,
        )
        if summary is not None:
            summary.transitions.append((rule.type.value, kind.value))
        if decision.notify and rule.channels:
            payload = notification(
                rule, event_id, state_id, kind, after.status, reading, threshold, after.level, now
            )
            await store.insert_deliveries(
                conn,
                [
                    {
                        "tenant_id": rule.tenant_id,
                        "event_id": event_id,
                        "rule_id": rule.id,
                        "channel_type": channel["type"],
                        "target": _target(channel),
                        "channel": channel,
                        "payload": payload,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for channel in rule.channels
                ],
            )
            if summary is not None:
                summary.notifications += len(rule.channels)
        return event_id

    # -- measuring ----------------------------------------------------------------------------

    async def readings(self, rule: AlertRule, now: datetime, only: set[Subject] | None) -> Readings:
        """The rule's current value for every subject it covers (only ``only`` when given)."""
        if rule.type is RuleType.USAGE_THRESHOLD:
            return await self._usage(rule, now, only)
        if rule.type is RuleType.SPEND_THRESHOLD:
            return await self._spend(rule, now, only)
        if rule.type is RuleType.SPIKE:
            return await self._spike(rule, now)
        if rule.type is RuleType.DRIFT:
            return await self._drift(rule)
        subject = (rule.customer_ref or "", rule.metric or "")
        async with self._db.read() as conn:
            if rule.type is RuleType.HELD_EVENTS:
                value = Decimal(
                    await alert_inputs.pending_held(
                        conn, rule.tenant_id, customer_ref=rule.customer_ref, metric=rule.metric
                    )
                )
            else:
                oldest = await alert_inputs.oldest_unpushed(
                    conn, rule.tenant_id, customer_ref=rule.customer_ref, metric=rule.metric
                )
                seconds = (now - oldest).total_seconds() if oldest is not None else 0.0
                value = Decimal(int(max(0.0, seconds)))
        return Readings([Reading(*subject, value, rule.thresholds)])

    async def _usage(self, rule: AlertRule, now: datetime, only: set[Subject] | None) -> Readings:
        settings = await self._catalog.for_tenant(rule.tenant_id)
        customers = {c for c, _ in only} if only is not None else None
        async with self._db.read() as conn:
            rows = await alert_inputs.counters_in_period(
                conn,
                rule.tenant_id,
                now,
                metric=rule.metric,
                customer_ref=rule.customer_ref,
                customers=customers,
            )
            limits = (
                {
                    (r["customer_ref"], r["metric"]): r["limit_value"]
                    for r in await store.list_limits(
                        conn, rule.tenant_id, customer_ref=rule.customer_ref, metric=rule.metric
                    )
                }
                if rule.percent_of_limit
                else {}
            )
        found = Readings()
        for row in rows:
            subject = (row["customer_ref"], row["metric"])
            if only is not None and subject not in only:
                continue
            thresholds = effective_thresholds(
                rule.thresholds, percent_of_limit=rule.percent_of_limit, limit=limits.get(subject)
            )
            if thresholds is None:
                continue
            value = state_from_row(row).value(settings.get(row["metric"]).aggregation)
            found.values.append(Reading(*subject, value, thresholds))
        return found

    async def _spend(self, rule: AlertRule, now: datetime, only: set[Subject] | None) -> Readings:
        if self._projection is None:
            raise RuntimeError("spend thresholds need the projection service")
        customers = {c for c, _ in only} if only is not None else None
        async with self._db.read() as conn:
            rows = await alert_inputs.counters_in_period(
                conn,
                rule.tenant_id,
                now,
                metric=None,
                customer_ref=rule.customer_ref,
                customers=customers,
            )
        # Each customer's current period (its billing cycle's, or the calendar month).
        periods = {r["customer_ref"]: Period(r["period_start"], r["period_end"]) for r in rows}
        found = Readings()
        for customer in sorted(periods):
            document = await self._projection.project(
                rule.tenant_id, ProjectionQuery(customer, periods[customer])
            )
            if document["currency"] is None:
                continue
            if rule.metric is None:
                value = document["projected"]["total"]
            else:
                line = next((x for x in document["lineItems"] if x["metric"] == rule.metric), None)
                if line is None or line["projected"]["total"] is None:
                    continue
                value = line["projected"]["total"]
            found.values.append(Reading(customer, rule.metric or "", value, rule.thresholds))
        return found

    async def _spike(self, rule: AlertRule, now: datetime) -> Readings:
        assert rule.metric is not None
        window = int(rule.params.get("windowSeconds", DEFAULT_SPIKE_WINDOW))
        baseline = int(rule.params.get("baselineSeconds", DEFAULT_SPIKE_BASELINE))
        split = now - timedelta(seconds=window)
        since = split - timedelta(seconds=baseline)
        counting = (await self._catalog.for_tenant(rule.tenant_id)).get(
            rule.metric
        ).aggregation is Aggregation.COUNT
        recent: dict[str, Decimal] = {}
        before: dict[str, Decimal] = {}
        async with self._db.read() as conn:
            async for customer, quantity, at in alert_inputs.accepted_quantities(
                conn, rule.tenant_id, rule.metric, since, now, customer_ref=rule.customer_ref
            ):
                bucket = recent if at >= split else before
                bucket[customer] = bucket.get(customer, ZERO) + (1 if counting else quantity)
        found = Readings()
        for customer in sorted(set(recent) | set(before)):
            current = recent.get(customer, ZERO)
            base = before.get(customer, ZERO)
            if base <= 0:
                if current > 0:
                    found.unknown.add((customer, rule.metric))  # no baseline to compare with
                continue
            ratio = (current / window) / (base / baseline)
            found.values.append(
                Reading(customer, rule.metric, ratio.quantize(Decimal("0.0001")), rule.thresholds)
            )
        return found

    async def _drift(self, rule: AlertRule) -> Readings:
        measure = "drift_pct" if rule.params.get("measure") == "pct" else "drift_abs"
        async with self._db.read() as conn:
            rows = await alert_inputs.open_drift_reports(
                conn, rule.tenant_id, customer_ref=rule.customer_ref, metric=rule.metric
            )
        worst: dict[Subject, Decimal] = {}
        for row in rows:
            subject = (row["customer_ref"], row["metric"])
            amount = row[measure]
            size = abs(amount) if row["status"] == "drift" and amount is not None else ZERO
            worst[subject] = max(worst.get(subject, ZERO), size)
        return Readings([Reading(*s, v, rule.thresholds) for s, v in sorted(worst.items())])
