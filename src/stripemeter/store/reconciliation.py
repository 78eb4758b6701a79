"""Reconciliation rows: settings, the current report per key, runs, history and suggestions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, literal, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.periods import Period
from stripemeter.store import dialect
from stripemeter.store.tables import (
    push_log,
    reconciliation_history,
    reconciliation_reports,
    reconciliation_runs,
    reconciliation_settings,
    reconciliation_suggestions,
)

TENANT_SCOPE = ""  # the mapping_id of a tenant's default settings row


@dataclass(frozen=True, slots=True)
class Settings:
    """Effective settings of one mapping (tenant defaults filled in)."""

    epsilon: Decimal
    gate_policy: str
    allow_self_approval: bool


@dataclass(frozen=True, slots=True)
class ReportKey:
    """What a current report row is unique by."""

    tenant_id: str
    metric: str
    mapping_id: str
    target: str
    customer_ref: str
    period: Period


@dataclass(frozen=True, slots=True)
class Report:
    """One current report row."""

    id: int
    key: ReportKey
    stripe_customer_id: str | None
    local_total: Decimal
    pushed_total: Decimal | None
    stripe_total: Decimal | None
    trued_up: Decimal
    drift_abs: Decimal | None
    drift_pct: Decimal | None
    epsilon: Decimal
    status: str
    detail: str | None
    closed: bool
    run_id: str
    checked_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> Report:
        """Build from a ``reconciliation_reports`` row."""
        return cls(
            id=int(row["id"]),
            key=ReportKey(
                row["tenant_id"],
                row["metric"],
                row["mapping_id"],
                row["target"],
                row["customer_ref"],
                Period(row["period_start"], row["period_end"]),
            ),
            stripe_customer_id=row["stripe_customer_id"],
            local_total=row["local_total"],
            pushed_total=row["pushed_total"],
            stripe_total=row["stripe_total"],
            trued_up=row["trued_up"],
            drift_abs=row["drift_abs"],
            drift_pct=row["drift_pct"],
            epsilon=row["epsilon"],
            status=row["status"],
            detail=row["detail"],
            closed=bool(row["closed"]),
            run_id=row["run_id"],
            checked_at=row["checked_at"],
        )


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A proposed repair for one report."""

    id: int
    tenant_id: str
    report_id: int
    kind: str
    delta: Decimal
    description: str
    status: str
    result: Any
    created_at: datetime
    updated_at: datetime
    applied_by: str | None
    applied_at: datetime | None

    @classmethod
    def from_row(cls, row: RowMapping) -> Suggestion:
        """Build from a ``reconciliation_suggestions`` row."""
        return cls(**{name: row[name] for name in cls.__slots__})


# --- settings ----------------------------------------------------------------------------------


async def load_settings(
    conn: AsyncConnection, tenant_id: str, defaults: Settings
) -> dict[str, Settings]:
    """Effective settings per mapping id ('' = the tenant's own), defaults filled in."""
    rows = list(
        (
            await conn.execute(
                select(reconciliation_settings).where(
                    reconciliation_settings.c.tenant_id == tenant_id
                )
            )
        ).mappings()
    )
    tenant = next((r for r in rows if r["mapping_id"] == TENANT_SCOPE), None)
    base = _merge(defaults, tenant)
    found = {TENANT_SCOPE: base}
    for row in rows:
        if row["mapping_id"] != TENANT_SCOPE:
            found[row["mapping_id"]] = _merge(base, row)
    return found


def _merge(base: Settings, row: RowMapping | None) -> Settings:
    if row is None:
        return base
    return Settings(
        epsilon=row["epsilon"] if row["epsilon"] is not None else base.epsilon,
        gate_policy=row["gate_policy"] or base.gate_policy,
        allow_self_approval=(
            row["allow_self_approval"]
            if row["allow_self_approval"] is not None
            else base.allow_self_approval
        ),
    )


async def put_settings(
    conn: AsyncConnection, tenant_id: str, mapping_id: str, values: dict[str, Any], now: datetime
) -> None:
    """Upsert the given fields of a settings row."""
    stmt = dialect.insert(conn, reconciliation_settings).values(
        tenant_id=tenant_id, mapping_id=mapping_id, updated_at=now, **values
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "mapping_id"], set_={**values, "updated_at": now}
    )
    await conn.execute(stmt)


# --- runs --------------------------------------------------------------------------------------


async def start_run(
    conn: AsyncConnection,
    run_id: str,
    *,
    tenant_id: str | None,
    trigger: str,
    customer_ref: str | None,
    now: datetime,
) -> None:
    """Record a run as started."""
    await conn.execute(
        reconciliation_runs.insert().values(
            id=run_id,
            tenant_id=tenant_id,
            trigger=trigger,
            customer_ref=customer_ref,
            status="running",
            counts={},
            started_at=now,
        )
    )


async def finish_run(
    conn: AsyncConnection,
    run_id: str,
    *,
    status: str,
    counts: dict[str, int],
    error: str | None,
    now: datetime,
) -> None:
    """Record how a run ended."""
    await conn.execute(
        update(reconciliation_runs)
        .where(reconciliation_runs.c.id == run_id)
        .values(status=status, counts=counts, error=error, finished_at=now)
    )


async def list_runs(conn: AsyncConnection, tenant_id: str, limit: int) -> list[RowMapping]:
    """A tenant's runs (and the all-tenant scheduled runs), newest first."""
    rows = await conn.execute(
        select(reconciliation_runs)
        .where(
            or_(
                reconciliation_runs.c.tenant_id == tenant_id,
                reconciliation_runs.c.tenant_id.is_(None),
            )
        )
        .order_by(reconciliation_runs.c.started_at.desc())
        .limit(limit)
    )
    return list(rows.mappings())


# --- reports -----------------------------------------------------------------------------------


async def upsert_report(
    conn: AsyncConnection, key: ReportKey, values: dict[str, Any], now: datetime
) -> int:
    """Write the current row of a key (one per key, whatever the number of runs); return its id."""
    ident = {
        "tenant_id": key.tenant_id,
        "metric": key.metric,
        "mapping_id": key.mapping_id,
        "target": key.target,
        "customer_ref": key.customer_ref,
        "period_start": key.period.start,
    }
    stmt = dialect.insert(conn, reconciliation_reports).values(
        **ident, period_end=key.period.end, created_at=now, **values
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=list(ident), set_={"period_end": key.period.end, **values}
    ).returning(reconciliation_reports.c.id)
    report_id = int((await conn.execute(stmt)).scalar_one())
    await conn.execute(
        reconciliation_history.insert().values(
            run_id=values["run_id"],
            report_id=report_id,
            tenant_id=key.tenant_id,
            local_total=values["local_total"],
            pushed_total=values["pushed_total"],
            stripe_total=values["stripe_total"],
            status=values["status"],
            detail=values["detail"],
            checked_at=values["checked_at"],
        )
    )
    return report_id


async def list_reports(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    customer_ref: str | None = None,
    metric: str | None = None,
    status: str | None = None,
    after_id: int | None = None,
    limit: int = 1000,
) -> list[Report]:
    """Current report rows with a period start in ``[since, until)``, by id."""
    query = select(reconciliation_reports).where(reconciliation_reports.c.tenant_id == tenant_id)
    if since is not None:
        query = query.where(reconciliation_reports.c.period_start >= since)
    if until is not None:
        query = query.where(reconciliation_reports.c.period_start < until)
    if customer_ref is not None:
        query = query.where(reconciliation_reports.c.customer_ref == customer_ref)
    if metric is not None:
        query = query.where(reconciliation_reports.c.metric == metric)
    if status is not None:
        query = query.where(reconciliation_reports.c.status == status)
    if after_id is not None:
        query = query.where(reconciliation_reports.c.id > after_id)
    rows = await conn.execute(query.order_by(reconciliation_reports.c.id).limit(limit))
    return [Report.from_row(r) for r in rows.mappings()]


async def get_report(conn: AsyncConnection, tenant_id: str, report_id: int) -> Report | None:
    """One report of the tenant."""
    row = (
        (
            await conn.execute(
                select(reconciliation_reports).where(
                    reconciliation_reports.c.tenant_id == tenant_id,
                    reconciliation_reports.c.id == report_id,
                )
            )
        )
        .mappings()
        .first()
    )
    return Report.from_row(row) if row else None


async def history_of(
    conn: AsyncConnection, tenant_id: str, report_ids: Sequence[int], limit: int
) -> list[RowMapping]:
    """The latest history entries of some reports."""
    if not report_ids:
        return []
    rows = await conn.execute(
        select(reconciliation_history)
        .where(
            reconciliation_history.c.tenant_id == tenant_id,
            reconciliation_history.c.report_id.in_(list(report_ids)),
        )
        .order_by(reconciliation_history.c.id.desc())
        .limit(limit)
    )
    return list(rows.mappings())


# --- suggestions -------------------------------------------------------------------------------


async def put_suggestion(
    conn: AsyncConnection,
    tenant_id: str,
    report_id: int,
    *,
    kind: str,
    delta: Decimal,
    description: str,
    now: datetime,
) -> None:
    """Open (or refresh an open) suggestion for a report; an applied one is replaced by a new one."""
    values = {
        "kind": kind,
        "delta": delta,
        "description": description,
        "status": "open",
        "result": None,
        "updated_at": now,
        "applied_by": None,
        "applied_at": None,
    }
    stmt = dialect.insert(conn, reconciliation_suggestions).values(
        tenant_id=tenant_id, report_id=report_id, created_at=now, **values
    )
    await conn.execute(stmt.on_conflict_do_update(index_elements=["report_id"], set_=values))


async def resolve_suggestion(conn: AsyncConnection, report_id: int, now: datetime) -> None:
    """Close an open suggestion whose report no longer drifts."""
    await conn.execute(
        update(reconciliation_suggestions)
        .where(
            reconciliation_suggestions.c.report_id == report_id,
            reconciliation_suggestions.c.status == "open",
        )
        .values(status="resolved", updated_at=now)
    )


async def list_suggestions(
    conn: AsyncConnection, tenant_id: str, status: str | None, limit: int
) -> list[Suggestion]:
    """A tenant's suggestions, newest first."""
    query = select(reconciliation_suggestions).where(
        reconciliation_suggestions.c.tenant_id == tenant_id
    )
    if status is not None:
        query = query.where(reconciliation_suggestions.c.status == status)
    rows = await conn.execute(query.order_by(reconciliation_suggestions.c.id.desc()).limit(limit))
    return [Suggestion.from_row(r) for r in rows.mappings()]


async def suggestions_for(
    conn: AsyncConnection, tenant_id: str, report_ids: Sequence[int]
) -> dict[int, Suggestion]:
    """Suggestions by report id."""
    if not report_ids:
        return {}
    rows = await conn.execute(
        select(reconciliation_suggestions).where(
            reconciliation_suggestions.c.tenant_id == tenant_id,
            reconciliation_suggestions.c.report_id.in_(list(report_ids)),
        )
    )
    return {int(r["report_id"]): Suggestion.from_row(r) for r in rows.mappings()}


async def get_suggestion(
    conn: AsyncConnection, tenant_id: str, suggestion_id: int
) -> Suggestion | None:
    """One suggestion of the tenant."""
    row = (
        (
            await conn.execute(
                select(reconciliation_suggestions).where(
                    reconciliation_suggestions.c.tenant_id == tenant_id,
                    reconciliation_suggestions.c.id == suggestion_id,
                )
            )
        )
        .mappings()
        .first()
    )
    return Suggestion.from_row(row) if row else None


async def mark_suggestion(
    conn: AsyncConnection,
    suggestion_id: int,
    *,
    expect: str,
    status: str,
    result: Any,
    actor: str,
    now: datetime,
) -> bool:
    """Move a suggestion from ``expect`` to ``status`` (False when someone else moved it first)."""
    done = await conn.execute(
        update(reconciliation_suggestions)
        .where(
            reconciliation_suggestions.c.id == suggestion_id,
            reconciliation_suggestions.c.status == expect,
        )
        .values(status=status, result=result, applied_by=actor, applied_at=now, updated_at=now)
    )
    return bool(done.rowcount)


# --- the write log, as the reconciler repairs it ------------------------------------------------


async def rebase_push_row(
    conn: AsyncConnection,
    *,
    mapping_id: str,
    target: str,
    customer_ref: str,
    period_start: datetime,
    stripe_total: Decimal,
    now: datetime,
    stamp_floor: datetime | None = None,
) -> bool:
    """Set a write-log row's confirmed total to what Stripe shows and flag it for the pusher.

    The pusher then sends ``local - stripe`` through its normal two-phase path, with a fresh
    identifier. ``stamp_floor`` raises the row's ``last_stamp`` (never lowers it), so the next
    last/max push is stamped after it. Refused (False) while a push is in flight or the row is
    leased.
    """
    extra: dict[str, Any] = {}
    if stamp_floor is not None:
        floor = literal(stamp_floor, push_log.c.last_stamp.type)
        extra["last_stamp"] = case(
            (or_(push_log.c.last_stamp.is_(None), push_log.c.last_stamp < floor), floor),
            else_=push_log.c.last_stamp,
        )
    done = await conn.execute(
        update(push_log)
        .where(
            push_log.c.mapping_id == mapping_id,
            push_log.c.target == target,
            push_log.c.customer_ref == customer_ref,
            push_log.c.period_start == period_start,
            push_log.c.pending_to.is_(None),
            or_(push_log.c.lease_owner.is_(None), push_log.c.lease_expires_at < now),
        )
        .values(
            pushed_total=stripe_total,
            pushed_seq=push_log.c.pushed_seq + 1,
            status="ok",
            dirty=True,
            changed_at=now,
            attempts=0,
            last_error=None,
            next_attempt_at=now,
            updated_at=now,
            **extra,
        )
    )
    return bool(done.rowcount)


async def push_rows(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    mapping_ids: Sequence[str],
    customer_ref: str | None,
    ends_after: datetime,
    period_start: datetime | None = None,
) -> list[RowMapping]:
    """Write-log rows of these mappings whose period ends after ``ends_after``."""
    if not mapping_ids:
        return []
    query = select(push_log).where(
        push_log.c.tenant_id == tenant_id,
        push_log.c.mapping_id.in_(list(mapping_ids)),
        push_log.c.period_end > ends_after,
    )
    if customer_ref is not None:
        query = query.where(push_log.c.customer_ref == customer_ref)
    if period_start is not None:
        query = query.where(
            and_(push_log.c.period_start <= period_start, push_log.c.period_end > period_start)
        )
    return list((await conn.execute(query.order_by(push_log.c.id))).mappings())
