"""The reconciler: compares our totals, the write log and Stripe's own totals, and repairs drift.

One run, per tenant: for every (mapping, target, customer, period) that the write log or the
counters know in the lookback window, read the local total (ledger + approved adjustments, the
counter's billing value), the confirmed pushed total and Stripe's total (meter event summaries, or
legacy usage record summaries), classify with ``domain.drift``, re-read Stripe once for the
differences nothing explains yet, then upsert one current report row per key with a history entry
and an open suggestion for each drift. Runs of one scope never overlap: an advisory lock per
(tenant, customer) on PostgreSQL, an in-process lock on SQLite (one process there).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.drift import (
    DEFAULT_EPSILON,
    Observation,
    RepairKind,
    ReportStatus,
    Verdict,
    classify,
    suggest_repair,
)
from stripemeter.domain.errors import Conflict, InvalidInput, NotFound
from stripemeter.domain.periods import Period
from stripemeter.domain.pushes import stamp_floor_after
from stripemeter.observability import metrics
from stripemeter.services import sync_store
from stripemeter.services.background import PeriodicLoop
from stripemeter.services.pusher import Pusher
from stripemeter.services.stripe_accounts import StripeAccounts
from stripemeter.store import audit, billing, dialect, period_ledger
from stripemeter.store import reconciliation as store
from stripemeter.store.database import Database
from stripemeter.store.tables import counters, reconciliation_reports
from stripemeter.stripe.errors import StripeCallError

log = structlog.get_logger("stripemeter.reconciler")

RECONCILE_INTERVAL = 3600.0  # seconds between scheduled runs
LOOKBACK = timedelta(days=40)  # periods that ended this long ago are still checked
RECHECK_DELAY = 5.0  # seconds to let Stripe's summaries catch up before calling it drift
LOCK_WAIT = 120.0  # seconds a waiting run waits for another process's run of the same scope
LOCK_POLL = 0.2  # seconds between attempts
ADDITIVE = (Aggregation.SUM, Aggregation.COUNT)


def utcnow() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


@dataclass
class RunResult:
    """What one run did."""

    run_id: str
    status: str  # completed | skipped | failed
    counts: dict[str, int] = field(default_factory=dict)
    reports: list[store.Report] = field(default_factory=list)


@dataclass
class _Key:
    """One thing to check, with what the write log says about it."""

    key: store.ReportKey
    mapping: sync_store.PriceMapping | None
    row: dict[str, Any] | None  # the push_log row, if any


@dataclass
class _Checked:
    item: _Key
    observation: Observation
    verdict: Verdict
    stripe_customer: str | None
    closed: bool
    epsilon: Decimal


TrueUpHook = Callable[[store.Report, store.Suggestion, str], Awaitable[dict[str, Any]]]


class Reconciler:
    """Runs reconciliations and applies their suggestions; safe in many processes at once."""

    def __init__(
        self,
        db: Database,
        accounts: StripeAccounts,
        pusher: Pusher,
        *,
        epsilon: Decimal = DEFAULT_EPSILON,
        gate_policy: str = "hold",
        allow_self_approval: bool = False,
        interval: float = RECONCILE_INTERVAL,
        recheck_delay: float = RECHECK_DELAY,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.pusher = pusher
        self.defaults = store.Settings(epsilon, gate_policy, allow_self_approval)
        self.interval = interval
        self.recheck_delay = recheck_delay
        self.clock = clock
        self.sleep = sleep
        self.true_up: TrueUpHook | None = None  # set by the billing gate (closed periods)
        self._local_locks: dict[str, asyncio.Lock] = {}
        self._loop = PeriodicLoop(
            "stripemeter-reconciler",
            lambda: self.run_all(trigger="schedule"),
            interval=lambda: self.interval,
            on_failure=lambda: log.exception("reconcile_run_failed"),
        )
        self.last_run: datetime | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run on a schedule in the background (a first run right away)."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the schedule."""
        await self._loop.stop()

    @property
    def running(self) -> bool:
        """Whether the schedule is alive."""
        return self._loop.running

    # --- settings ----------------------------------------------------------------------------

    async def settings_for(self, tenant_id: str) -> dict[str, store.Settings]:
        """Effective settings per mapping id ('' for the tenant's own)."""
        async with self.db.read() as conn:
            return await store.load_settings(conn, tenant_id, self.defaults)

    async def update_settings(
        self, tenant_id: str, mapping_id: str, values: dict[str, Any], *, actor: str
    ) -> dict[str, store.Settings]:
        """Change a tenant's (mapping_id '') or a mapping's settings; audited."""
        now = self.clock()
        async with self.db.write() as conn:
            if mapping_id:
                found = await sync_store.get_mapping(conn, tenant_id, mapping_id)
                if found is None:
                    raise NotFound(f"no mapping {mapping_id}", code="mapping_not_found")
            await store.put_settings(conn, tenant_id, mapping_id, values, now)
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="reconciliation.settings_changed",
                target_type="mapping" if mapping_id else "tenant",
                target_id=mapping_id or tenant_id,
                details={k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()},
                request_id=None,
                now=now,
            )
        return await self.settings_for(tenant_id)

    # --- runs --------------------------------------------------------------------------------

    async def run_all(self, *, trigger: str = "schedule") -> list[RunResult]:
        """Reconcile every tenant that has an active mapping or counters in the window."""
        async with self.db.read() as conn:
            mapped = {m.tenant_id for m in await sync_store.list_mappings(conn, None, active=True)}
        results = []
        for tenant_id in sorted(mapped):
            results.append(await self.run(tenant_id, trigger=trigger))
        self.last_run = self.clock()
        await self._sample_gauges()
        return results

    async def run(
        self,
        tenant_id: str,
        *,
        customer_ref: str | None = None,
        period: Period | None = None,
        trigger: str = "manual",
        wait: bool = False,
    ) -> RunResult:
        """One reconciliation of a tenant (or one customer; or one period).

        A run of the same scope in progress (here or in another process) makes this one skip,
        or, with ``wait`` (webhooks and repairs, which need a fresh answer), wait for it.
        """
        run_id = f"rr_{secrets.token_hex(8)}"
        name = f"reconcile|{tenant_id}|{customer_ref or '*'}"
        local = self._local_locks.setdefault(name, asyncio.Lock())
        if local.locked() and not wait:
            metrics.reconciliation_runs.labels(trigger, "skipped").inc()
            return RunResult(run_id, "skipped")
        async with local, self.db.read() as lock_conn:
            # A transaction-scoped advisory lock held by this open transaction for the whole run.
            deadline = time.monotonic() + LOCK_WAIT
            while not await dialect.try_lock_name(lock_conn, name):
                if not wait or time.monotonic() > deadline:
                    metrics.reconciliation_runs.labels(trigger, "skipped").inc()
                    return RunResult(run_id, "skipped")
                await asyncio.sleep(LOCK_POLL)
            started = time.perf_counter()
            async with self.db.write() as conn:
                await store.start_run(
                    conn,
                    run_id,
                    tenant_id=tenant_id,
                    trigger=trigger,
                    customer_ref=customer_ref,
                    now=self.clock(),
                )
            try:
                result = await self._run(run_id, tenant_id, customer_ref, period)
            except Exception as exc:
                async with self.db.write() as conn:
                    await store.finish_run(
                        conn, run_id, status="failed", counts={}, error=repr(exc), now=self.clock()
                    )
                metrics.reconciliation_runs.labels(trigger, "failed").inc()
                raise
            async with self.db.write() as conn:
                await store.finish_run(
                    conn,
                    run_id,
                    status="completed",
                    counts=result.counts,
                    error=None,
                    now=self.clock(),
                )
            metrics.reconciliation_runs.labels(trigger, "completed").inc()
            metrics.reconciliation_duration.observe(time.perf_counter() - started)
            log.info(
                "reconciled",
                run=run_id,
                tenant=tenant_id,
                customer=customer_ref,
                trigger=trigger,
                **result.counts,
            )
            return result

    async def _run(
        self, run_id: str, tenant_id: str, customer_ref: str | None, period: Period | None
    ) -> RunResult:
        settings = await self.settings_for(tenant_id)
        keys = await self._keys(tenant_id, customer_ref, period)
        checked = [await self._check(item, settings) for item in keys]
        lagging = [i for i, c in enumerate(checked) if c.verdict.needs_recheck]
        if lagging:
            await self.sleep(self.recheck_delay)
            for index in lagging:
                checked[index] = await self._check(checked[index].item, settings, rechecked=True)
        result = RunResult(run_id, "completed")
        now = self.clock()
        async with self.db.write() as conn:
            for item in checked:
                report_id = await self._write(conn, run_id, item, now)
                metrics.reconciliation_results.labels(item.verdict.status.value).inc()
                result.counts[item.verdict.status.value] = (
                    result.counts.get(item.verdict.status.value, 0) + 1
                )
                report = await store.get_report(conn, tenant_id, report_id)
                assert report is not None
                result.reports.append(report)
        return result

    async def _keys(
        self, tenant_id: str, customer_ref: str | None, period: Period | None
    ) -> list[_Key]:
        """Everything to check: write-log rows, then counters no row covers yet."""
        now = self.clock()
        horizon = now - LOOKBACK
        async with self.db.read() as conn:
            mappings = await sync_store.list_mappings(conn, tenant_id, active=True)
            by_id = {m.id: m for m in mappings}
            rows = await store.push_rows(
                conn,
                tenant_id,
                mapping_ids=list(by_id),
                customer_ref=customer_ref,
                ends_after=horizon if period is None else datetime.min.replace(tzinfo=UTC),
                period_start=period.start if period is not None else None,
            )
            query = select(
                counters.c.metric,
                counters.c.customer_ref,
                counters.c.period_start,
                counters.c.period_end,
            ).where(counters.c.tenant_id == tenant_id)
            if customer_ref is not None:
                query = query.where(counters.c.customer_ref == customer_ref)
            if period is not None:
                query = query.where(
                    counters.c.period_start < period.end, counters.c.period_end > period.start
                )
            else:
                query = query.where(counters.c.period_end > horizon)
            counted = list((await conn.execute(query)).all())
        found: dict[tuple[str, str, str, str, datetime], _Key] = {}
        for raw in rows:
            mapping = by_id[raw["mapping_id"]]
            if raw["target"] == "shadow" and self.accounts.for_target("shadow") is None:
                continue
            row_period = Period(raw["period_start"], raw["period_end"])
            key = store.ReportKey(
                tenant_id,
                mapping.metric,
                mapping.id,
                raw["target"],
                raw["customer_ref"],
                row_period,
            )
            found[
                (mapping.metric, mapping.id, raw["target"], raw["customer_ref"], row_period.start)
            ] = _Key(key, mapping, dict(raw))
        by_metric: dict[str, list[sync_store.PriceMapping]] = {}
        for mapping in mappings:
            by_metric.setdefault(mapping.metric, []).append(mapping)
        for metric, customer, start, end in counted:
            counter_period = Period(start, end)
            candidates = by_metric.get(metric)
            if not candidates:
                key = store.ReportKey(tenant_id, metric, "", "live", customer, counter_period)
                found.setdefault((metric, "", "live", customer, start), _Key(key, None, None))
                continue
            for mapping in candidates:
                covered = any(
                    k[1] == mapping.id
                    and k[3] == customer
                    and item.key.period.start < end
                    and item.key.period.end > start
                    for k, item in found.items()
                    if k[0] == metric
                )
                if not covered:
                    key = store.ReportKey(
                        tenant_id, metric, mapping.id, "live", customer, counter_period
                    )
                    found[(metric, mapping.id, "live", customer, start)] = _Key(key, mapping, None)
        return list(found.values())

    async def _check(
        self, item: _Key, settings: dict[str, store.Settings], *, rechecked: bool = False
    ) -> _Checked:
        key = item.key
        mapping = item.mapping
        epsilon = settings.get(key.mapping_id, settings[store.TENANT_SCOPE]).epsilon
        async with self.db.read() as conn:
            row = item.row
            if mapping is not None and row is not None:
                fresh = await sync_store.get_log_row(conn, int(row["id"]))
                row = None if fresh is None else {**row, **_row_state(fresh)}
            aggregation = Aggregation(mapping.aggregation) if mapping else Aggregation.SUM
            local = await local_total(conn, key, aggregation)
            customer = await sync_store.get_customer(conn, key.tenant_id, key.customer_ref)
            closed = await billing.is_closed(conn, key.tenant_id, key.customer_ref, key.period)
            trued_up = await billing.trued_up_quantity(
                conn, key.tenant_id, key.metric, key.customer_ref, key.period.start
            )
        stripe_customer = None
        if customer is not None:
            stripe_customer = (
                customer.shadow_stripe_customer_id if key.target == "shadow" else None
            ) or customer.stripe_customer_id
        if mapping is None or customer is None:
            seen = Observation(local, None, None, mapped=False)
            return _Checked(item, seen, classify(seen, epsilon), stripe_customer, closed, epsilon)
        item = _Key(key, mapping, row)
        pushed = row["pushed_total"] if row else None
        in_flight = bool(row and (row["pending_to"] is not None or row["dirty"])) or row is None
        parked = bool(row and row["status"] == "parked")
        if closed:
            in_flight = bool(row and row["pending_to"] is not None)  # no pushes after the invoice
        stripe_total: Decimal | None = None
        error: str | None = None
        try:
            stripe_total = await self.stripe_total(
                mapping, key.target, key.customer_ref, key.period
            )
            if stripe_total is None:
                error = "Stripe total unavailable (no meter id or subscription item)"
        except StripeCallError as exc:
            error = f"Stripe: {exc.reason}"
        seen = Observation(
            local,
            pushed,
            stripe_total,
            in_flight=in_flight,
            parked=parked,
            trued_up=trued_up,
            stripe_error=error,
            closed=closed,
        )
        verdict = classify(seen, epsilon, rechecked=rechecked)
        return _Checked(item, seen, verdict, stripe_customer, closed, epsilon)

    async def stripe_total(
        self, mapping: sync_store.PriceMapping, target: str, customer_ref: str, period: Period
    ) -> Decimal | None:
        """Stripe's own total for a customer's period of a mapping (None when unreadable)."""
        account = self.accounts.for_target(target)
        if account is None:
            return None
        async with self.db.read() as conn:
            customer = await sync_store.get_customer(conn, mapping.tenant_id, customer_ref)
        if customer is None:
            return None
        stripe_customer = (
            customer.shadow_stripe_customer_id if target == "shadow" else None
        ) or customer.stripe_customer_id
        destination = await self.pusher.destination_for(mapping, target, customer_ref)
        if destination is None:
            return None
        driver = self.pusher.driver_for(mapping, target)
        return await driver.period_total(account, destination, stripe_customer, period)

    async def _write(self, conn: Any, run_id: str, item: _Checked, now: datetime) -> int:
        seen, verdict = item.observation, item.verdict
        values = {
            "stripe_customer_id": item.stripe_customer,
            "local_total": seen.local,
            "pushed_total": seen.pushed,
            "stripe_total": seen.stripe,
            "trued_up": seen.trued_up,
            "drift_abs": verdict.drift.absolute if verdict.drift else None,
            "drift_pct": verdict.drift.relative if verdict.drift else None,
            "epsilon": item.epsilon,
            "status": verdict.status.value,
            "detail": verdict.detail,
            "closed": item.closed,
            "run_id": run_id,
            "checked_at": now,
        }
        report_id = await store.upsert_report(conn, item.item.key, values, now)
        mapping = item.item.mapping
        if verdict.status is ReportStatus.DRIFT and seen.stripe is not None and mapping:
            repair = suggest_repair(
                seen.local,
                seen.stripe,
                seen.trued_up,
                additive=Aggregation(mapping.aggregation) in ADDITIVE
                and mapping.driver != "legacy",
                closed=item.closed,
            )
            if repair is not None:
                await store.put_suggestion(
                    conn,
                    item.item.key.tenant_id,
                    report_id,
                    kind=repair.kind.value,
                    delta=repair.delta,
                    description=repair.description,
                    now=now,
                )
        elif verdict.status is ReportStatus.OK:
            await store.resolve_suggestion(conn, report_id, now)
        return report_id

    # --- repairs -----------------------------------------------------------------------------

    async def apply_suggestion(
        self, tenant_id: str, suggestion_id: int, *, actor: str, request_id: str | None = None
    ) -> dict[str, Any]:
        """Execute a suggestion through the pusher (or a true-up), then re-verify; audited."""
        async with self.db.read() as conn:
            suggestion = await store.get_suggestion(conn, tenant_id, suggestion_id)
            report = (
                await store.get_report(conn, tenant_id, suggestion.report_id)
                if suggestion
                else None
            )
        if suggestion is None or report is None:
            raise NotFound(f"no suggestion {suggestion_id}", code="suggestion_not_found")
        if suggestion.status != "open":
            raise Conflict(
                f"suggestion {suggestion_id} is {suggestion.status}, not open",
                code="suggestion_not_open",
            )
        now = self.clock()
        async with self.db.write() as conn:
            claimed = await store.mark_suggestion(
                conn,
                suggestion_id,
                expect="open",
                status="applying",
                result=None,
                actor=actor,
                now=now,
            )
        if not claimed:
            raise Conflict(f"suggestion {suggestion_id} is being applied", code="suggestion_busy")
        try:
            outcome = await self.repair(report, suggestion, actor)
        except Exception as exc:
            async with self.db.write() as conn:
                await store.mark_suggestion(
                    conn,
                    suggestion_id,
                    expect="applying",
                    status="open",
                    result={"error": repr(exc)},
                    actor=actor,
                    now=self.clock(),
                )
            raise
        verified = await self.run(
            tenant_id,
            customer_ref=report.key.customer_ref,
            period=report.key.period,
            trigger="repair",
            wait=True,
        )
        after = next((r for r in verified.reports if r.id == report.id), None)
        result = {
            **outcome,
            "verifiedStatus": after.status if after else None,
            "verifiedRun": verified.run_id,
        }
        async with self.db.write() as conn:
            await store.mark_suggestion(
                conn,
                suggestion_id,
                expect="applying",
                status="applied",
                result=result,
                actor=actor,
                now=self.clock(),
            )
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="reconciliation.suggestion_applied",
                target_type="reconciliation_report",
                target_id=str(report.id),
                details={
                    "suggestionId": suggestion_id,
                    "kind": suggestion.kind,
                    "delta": str(suggestion.delta),
                    "metric": report.key.metric,
                    "customerRef": report.key.customer_ref,
                    "period": report.key.period.label,
                    "result": _plain(result),
                },
                request_id=request_id,
                now=self.clock(),
            )
        return result

    async def repair(
        self, report: store.Report, suggestion: store.Suggestion, actor: str
    ) -> dict[str, Any]:
        """Bring Stripe to our total: rebase the write log and push, or true up a closed period."""
        key = report.key
        if suggestion.kind == RepairKind.TRUE_UP.value:
            if self.true_up is None:
                raise InvalidInput("true-ups are not available", code="true_up_unavailable")
            return await self.true_up(report, suggestion, actor)
        if report.stripe_total is None:
            raise Conflict(
                "Stripe's total is unknown; run a reconciliation", code="no_stripe_total"
            )
        now = self.clock()
        floor = None
        if suggestion.kind == RepairKind.RESEND.value:
            floor = await self._after_latest_event(key, report.stripe_total, now)
        async with self.db.write() as conn:
            rebased = await store.rebase_push_row(
                conn,
                mapping_id=key.mapping_id,
                target=key.target,
                customer_ref=key.customer_ref,
                period_start=key.period.start,
                stripe_total=report.stripe_total,
                now=now,
                stamp_floor=floor,
            )
        if not rebased:
            raise Conflict(
                "a push is in flight for this row; retry after it settles", code="push_in_flight"
            )
        summary = await self.pusher.flush(key.tenant_id, key.customer_ref)
        return {"action": suggestion.kind, "pushes": summary.results}

    async def _after_latest_event(
        self, key: store.ReportKey, stripe_total: Decimal, now: datetime
    ) -> datetime | None:
        """For a ``last`` meter: a stamp floor past the period's latest event in Stripe.

        ``last`` bills the value with the greatest timestamp, so a resend stamped before another
        writer's event (one put in the period's final hour, past our reserve) would lose again.
        When Stripe's events cannot be located (a zero last value looks like no event at all)
        the floor is the latest instant Stripe accepts now. None when the driver has no
        timestamps to beat or Stripe cannot be read (the push would fail as well).
        """
        async with self.db.read() as conn:
            mapping = await sync_store.get_mapping(conn, key.tenant_id, key.mapping_id)
            customer = await sync_store.get_customer(conn, key.tenant_id, key.customer_ref)
        account = self.accounts.for_target(key.target)
        if mapping is None or customer is None or account is None:
            return None
        driver = self.pusher.driver_for(mapping, key.target)
        if driver.fixed_stamps or not driver.monotonic_stamps(mapping.aggregation_kind):
            return None
        destination = await self.pusher.destination_for(mapping, key.target, key.customer_ref)
        if destination is None:
            return None
        stripe_customer = (
            customer.shadow_stripe_customer_id if key.target == "shadow" else None
        ) or customer.stripe_customer_id
        try:
            minute = await driver.latest_event_minute(
                account, destination, stripe_customer, key.period, stripe_total
            )
        except StripeCallError as exc:
            log.warning("latest_event_lookup_failed", mapping=mapping.id, error=exc.reason)
            return None
        return stamp_floor_after(minute, key.period, now)

    async def _sample_gauges(self) -> None:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    reconciliation_reports.c.drift_pct,
                ).where(reconciliation_reports.c.status == "drift")
            )
            values = [r[0] for r in rows if r[0] is not None]
        metrics.reconciliation_open_drift.set(len(values))
        metrics.reconciliation_max_drift_pct.set(float(max(values, default=Decimal(0))))


def _row_state(row: sync_store.LogRow) -> dict[str, Any]:
    return {
        "pushed_total": row.pushed_total,
        "pending_to": row.pending.to_total if row.pending else None,
        "dirty": row.dirty,
        "status": row.status,
    }


async def local_total(conn: Any, key: store.ReportKey, aggregation: Aggregation) -> Decimal:
    """The counter's billing value when the period is a counter's (the customer's cycle, which is
    the one Stripe invoices), else the same fold over the ledger."""
    return await period_ledger.billing_value(
        conn, key.tenant_id, key.metric, key.customer_ref, key.period, aggregation
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
