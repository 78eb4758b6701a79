"""Replay: recompute counters from the ledger plus approved adjustments, report differences, repair.

The recomputation folds exactly what ingest and approvals fold (``domain.aggregation.fold``), so a
counter that ingest kept correctly always equals its replay. Periods are recomputed whole: a period
that overlaps ``[since, until)`` is checked entirely, never a window of it. Periods are each
customer's current ones (its billing cycle's, or calendar months): a counter kept under another
cycle is ``orphaned`` and the counters of the current periods ``missing``, which is also how a
change of cycle re-keys a customer's counters (``ReplayService.rekey``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import EMPTY, Contribution, CounterState, fold_all
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.periods import BillingCycle, Period, period_for, periods_overlapping
from stripemeter.domain.times import TimeError, parse_event_time
from stripemeter.store import audit, counters, cycles, period_ledger
from stripemeter.store.counters import CounterKey
from stripemeter.store.database import Database

REPLAY_CHUNK = 200  # counters per transaction: bounds how long ingest of those counters waits
MAX_REPORTED_DIFFERENCES = 1000  # totals stay exact; the list of differences is cut here
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 1, tzinfo=UTC)
_LAST_INSTANT = datetime(9999, 1, 1, tzinfo=UTC)  # its period's end is still a valid datetime
_ONE_TICK = timedelta(microseconds=1)
_DURATION = re.compile(
    r"^-P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


@dataclass(frozen=True, slots=True)
class ReplayScope:
    """Which counters of a tenant to check: all when every field is None."""

    metrics: tuple[str, ...] | None = None
    customer_ref: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name, value in (("since", self.since), ("until", self.until)):
            if value is not None and not _EARLIEST <= value < _LAST_INSTANT:
                raise InvalidInput(
                    f"{name} must lie between 1970 and the year 9999",
                    code="invalid_time",
                    param=name,
                )
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidInput("since must be before until", code="invalid_range", param="since")
        texts = [*(self.metrics or ()), self.customer_ref or ""]
        if any(ord(ch) < 32 or ord(ch) == 127 for text in texts for ch in text):
            raise InvalidInput(
                "metrics and customerRef must not contain control characters",
                code="invalid_scope",
                param="customerRef" if self.customer_ref else "metrics",
            )

    def period_bounds(
        self, cycles_in_use: Iterable[BillingCycle | None] = (None,)
    ) -> tuple[datetime, datetime]:
        """(first, last) start a period overlapping ``[since, until)`` can have under these cycles."""
        kinds = list(cycles_in_use) or [None]
        low = (
            min(period_for(self.since, cycle).start for cycle in kinds)
            if self.since is not None
            else _EARLIEST
        )
        high = self.until - _ONE_TICK if self.until is not None else _LATEST
        return low, high

    def covers(self, key: CounterKey, period: Period) -> bool:
        """Whether a counter key (of this period) is in this scope."""
        return (
            (not self.metrics or key.metric in self.metrics)
            and (self.customer_ref is None or key.customer_ref == self.customer_ref)
            and (self.since is None or period.end > self.since)
            and (self.until is None or period.start < self.until)
        )


@dataclass(frozen=True, slots=True)
class CounterDifference:
    """One counter whose stored state is not its recomputation.

    ``kind`` is ``changed``, ``missing`` (no stored row though the ledger counts something) or
    ``orphaned`` (a stored row with nothing behind it, removed on apply).
    """

    key: CounterKey
    period: Period
    stored: CounterState | None
    recomputed: CounterState | None

    @property
    def kind(self) -> str:
        """``changed``, ``missing`` or ``orphaned``."""
        if self.stored is None:
            return "missing"
        if self.recomputed is None:
            return "orphaned"
        return "changed"


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    """How far a replay is: counters done out of the total found in scope."""

    done: int
    total: int
    different: int


ProgressCallback = Callable[[ReplayProgress], None]


@dataclass(slots=True)
class MetricSummary:
    """Per-metric totals of a replay."""

    counters_checked: int = 0
    counters_different: int = 0
    events_found: int = 0
    sum_delta: Decimal = Decimal(0)
    affected_customers: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ReplayReport:
    """What a replay found and, on apply, repaired."""

    tenant_id: str
    scope: ReplayScope
    apply: bool
    counters_checked: int = 0
    counters_different: int = 0
    counters_repaired: int = 0
    events_scanned: int = 0
    adjustments_scanned: int = 0
    differences: list[CounterDifference] = field(default_factory=list)
    differences_truncated: bool = False
    by_metric: dict[str, MetricSummary] = field(default_factory=dict)


def recompute(contributions: Iterable[Contribution]) -> CounterState:
    """A counter's state from everything that counts in it (the same fold ingest uses)."""
    return fold_all(EMPTY, list(contributions))


def event_contribution(quantity: Decimal, at: datetime, idempotency_key: str) -> Contribution:
    """An accepted event as ingest folded it."""
    return Contribution(quantity, at, idempotency_key)


def adjustment_contribution(row: RowMapping) -> Contribution:
    """An approved adjustment: one carrying an event folds like that event; a pure one adds to the sum."""
    return period_ledger.adjustment_contribution(row)


def resolve_instant(value: str | None, now: datetime, param: str) -> datetime | None:
    """An RFC 3339 time, ``now``, or a negative ISO 8601 duration such as ``-PT24H`` (before ``now``)."""
    if value is None:
        return None
    text = value.strip()
    if text.lower() == "now":
        return now
    match = _DURATION.match(text.upper())
    if match is not None and any(match.groupdict().values()):
        parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
        try:
            return now - timedelta(**parts)
        except OverflowError:
            raise InvalidInput(
                f"{param} reaches too far back", code="invalid_time", param=param
            ) from None
    try:
        return parse_event_time(text).at
    except TimeError as exc:
        raise InvalidInput(
            f"{param} {exc}, 'now', or a duration before now such as -PT24H",
            code="invalid_time",
            param=param,
        ) from None


class ReplayService:
    """Checks and repairs a tenant's counters against the ledger."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        chunk_size: int = REPLAY_CHUNK,
        max_differences: int = MAX_REPORTED_DIFFERENCES,
    ) -> None:
        self._db = db
        self._clock = clock
        self._chunk = chunk_size
        self._max_differences = max_differences

    async def run(
        self,
        tenant_id: str,
        scope: ReplayScope,
        *,
        apply: bool,
        actor: str,
        request_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ReplayReport:
        """Recompute every counter in scope; on ``apply`` write back each one that differs."""
        report = ReplayReport(tenant_id, scope, apply)
        async with self._db.read() as conn:
            keys = await self._keys_in_scope(conn, tenant_id, scope)
        if progress is not None:
            progress(ReplayProgress(0, len(keys), 0))
        for start in range(0, len(keys), self._chunk):
            chunk = keys[start : start + self._chunk]
            transaction = self._db.write() if apply else self._db.read()
            async with transaction as conn:
                # Locked before reading, as ingest does, so no concurrent write lands in between;
                # the cycles are read under their lock (one may have changed since the scan).
                periods = await cycles.resolve(conn, {(tenant_id, k.customer_ref) for k in chunk})
                await counters.lock(conn, chunk)
                found = await self._check(conn, tenant_id, chunk, report, periods)
                if apply and found:
                    await self._repair(conn, tenant_id, found, actor, request_id)
                    report.counters_repaired += len(found)
            if progress is not None:
                done = min(start + self._chunk, len(keys))
                progress(ReplayProgress(done, len(keys), report.counters_different))
        return report

    async def rekey(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        customer_ref: str,
        *,
        actor: str,
        details: dict[str, Any],
        request_id: str | None = None,
    ) -> ReplayReport:
        """Recompute every counter of one customer under its current cycle, in the caller's transaction.

        The caller holds the customer's cycle lock exclusively and has just stored the new cycle:
        counters of the old periods come out ``orphaned`` (removed), those of the new ``missing``
        (written), and one audit entry records the change.
        """
        scope = ReplayScope(customer_ref=customer_ref)
        report = ReplayReport(tenant_id, scope, apply=True)
        keys = await self._keys_in_scope(conn, tenant_id, scope)
        periods = cycles.Periods(await cycles.load(conn, [(tenant_id, customer_ref)]))
        await counters.lock(conn, keys)
        found = await self._check(conn, tenant_id, keys, report, periods)
        if found:
            await self._repair(conn, tenant_id, found, actor, request_id, audited=False)
            report.counters_repaired += len(found)
        await audit.record(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action="billing_cycle.changed",
            target_type="customer",
            target_id=customer_ref,
            details={
                **details,
                "countersRekeyed": len(found),
                "counters": [_plain(difference_to_wire(d)) for d in found[:100]],
            },
            request_id=request_id,
            now=self._clock(),
        )
        return report

    async def _keys_in_scope(
        self, conn: AsyncConnection, tenant_id: str, scope: ReplayScope
    ) -> list[CounterKey]:
        known = await cycles.for_tenant(conn, tenant_id, scope.customer_ref)
        metrics = list(scope.metrics) if scope.metrics else None
        found = set(
            await counters.in_scope(
                conn,
                tenant_id,
                metrics=metrics,
                customer_ref=scope.customer_ref,
                period_starts=scope.period_bounds([None, *known.values()]),
            )
        )
        # Each group of events filed under one period at ingest spans at most one interval; the
        # current periods between its first and last event are the keys those events count in.
        spans = await period_ledger.event_spans(
            conn,
            tenant_id,
            metrics=metrics,
            customer_ref=scope.customer_ref,
            since=scope.since,
            until=scope.until,
        )
        for metric, customer, first, last in spans:
            for period in periods_overlapping(first, last + _ONE_TICK, known.get(customer)):
                found.add(CounterKey(tenant_id, metric, customer, period.start))
        booked = await period_ledger.adjustment_instants(
            conn, tenant_id, metrics=metrics, customer_ref=scope.customer_ref
        )
        for metric, customer, at in booked:
            period = period_for(at, known.get(customer))
            key = CounterKey(tenant_id, metric, customer, period.start)
            if scope.covers(key, period):
                found.add(key)
        return sorted(found)

    async def _check(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        keys: Sequence[CounterKey],
        report: ReplayReport,
        periods: cycles.Periods,
    ) -> list[CounterDifference]:
        stored = await counters.load(conn, keys)
        different: list[CounterDifference] = []
        for key in keys:
            period = periods.period(tenant_id, key.customer_ref, key.period_start)
            counted: list[tuple[Decimal, datetime, str]] = []
            adjusted: list[RowMapping] = []
            if period.start == key.period_start:
                counted = await period_ledger.counted_events(
                    conn, tenant_id, key.metric, key.customer_ref, period
                )
                adjusted = await period_ledger.approved_adjustments(
                    conn, tenant_id, key.metric, key.customer_ref, period
                )
            else:
                # Not a period of the customer's current cycle: nothing counts under this key.
                period = Period(key.period_start, period.end)
            items = [event_contribution(q, at, k) for q, at, k in counted]
            items.extend(adjustment_contribution(row) for row in adjusted)
            recomputed = recompute(items) if items else None
            before = stored.get(key)
            if before is None and recomputed is None:
                continue  # only held events behind this key: nothing is counted, nothing stored
            summary = report.by_metric.setdefault(key.metric, MetricSummary())
            report.counters_checked += 1
            report.events_scanned += len(counted)
            report.adjustments_scanned += len(adjusted)
            summary.counters_checked += 1
            summary.events_found += len(counted)
            if before == recomputed:
                continue
            difference = CounterDifference(key, period, before, recomputed)
            different.append(difference)
            report.counters_different += 1
            summary.counters_different += 1
            summary.sum_delta += (recomputed.sum if recomputed else Decimal(0)) - (
                before.sum if before else Decimal(0)
            )
            summary.affected_customers.add(key.customer_ref)
            if len(report.differences) < self._max_differences:
                report.differences.append(difference)
            else:
                report.differences_truncated = True
        return different

    async def _repair(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        found: list[CounterDifference],
        actor: str,
        request_id: str | None,
        *,
        audited: bool = True,
    ) -> None:
        now = self._clock()
        await counters.save(
            conn,
            {d.key: (d.period, d.recomputed) for d in found if d.recomputed is not None},
            now,
        )
        await counters.delete(conn, [d.key for d in found if d.recomputed is None])
        if not audited:
            return
        await audit.record(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action="replay.repaired",
            target_type="counters",
            target_id=f"{len(found)} counters",
            details={"counters": [_plain(difference_to_wire(d)) for d in found[:100]]},
            request_id=request_id,
            now=now,
        )


def state_to_wire(state: CounterState | None) -> dict[str, Any] | None:
    """A counter state as camelCase (Decimals and datetimes left for the JSON encoder)."""
    if state is None:
        return None
    return {
        "sum": state.sum,
        "max": state.max,
        "last": state.last,
        "lastAt": state.last_at,
        "count": state.count,
        "watermark": state.watermark,
    }


def difference_to_wire(difference: CounterDifference) -> dict[str, Any]:
    """One difference as camelCase."""
    return {
        "metric": difference.key.metric,
        "customerRef": difference.key.customer_ref,
        "periodStart": difference.key.period_start,
        "periodEnd": difference.period.end,
        "kind": difference.kind,
        "stored": state_to_wire(difference.stored),
        "recomputed": state_to_wire(difference.recomputed),
    }


def _plain(value: Any) -> Any:
    """Decimals and datetimes as text, for the audit log's JSON column."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def report_to_wire(report: ReplayReport) -> dict[str, Any]:
    """The JSON body of a replay (API and ``stripemeter replay --json``)."""
    scope = report.scope
    return {
        "tenantId": report.tenant_id,
        "mode": "apply" if report.apply else "dry-run",
        "dryRun": not report.apply,
        "scope": {
            "metrics": list(scope.metrics) if scope.metrics else None,
            "customerRef": scope.customer_ref,
            "since": scope.since,
            "until": scope.until,
        },
        "countersChecked": report.counters_checked,
        "countersDifferent": report.counters_different,
        "countersRepaired": report.counters_repaired,
        "eventsScanned": report.events_scanned,
        "adjustmentsScanned": report.adjustments_scanned,
        "differences": [difference_to_wire(d) for d in report.differences],
        "differencesTruncated": report.differences_truncated,
        "changes": {
            metric: {
                "countersChecked": s.counters_checked,
                "countersDifferent": s.counters_different,
                "eventsFound": s.events_found,
                "counterDelta": s.sum_delta,
                "affectedCustomers": len(s.affected_customers),
            }
            for metric, s in sorted(report.by_metric.items())
        },
    }
