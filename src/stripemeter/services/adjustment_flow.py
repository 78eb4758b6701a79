"""Adjustments: create (pending), approve (counted and pushed), reject, revert; every step audited.

An approved adjustment is a pure sum correction folded into its counter under the counter lock, so
replay gives the same counter. Where it goes next follows the lateness tiers: a period whose invoice
is not finalized gets the change pushed as a ± delta inside the period (the pusher sees the counter
change); a finalized period gets a true-up (invoice item or credit note) and no push. A revert
recomputes the counter without the adjustment, so its net effect is zero, not minus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.engine import RowMapping

from stripemeter.domain.aggregation import EMPTY, Contribution, fold
from stripemeter.domain.drift import LatenessTier, lateness_tier
from stripemeter.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from stripemeter.domain.periods import (
    Period,
    calendar_month,
    month_from_label,
    period_for,
    period_named,
)
from stripemeter.services import sync_store
from stripemeter.services.pusher import Pusher
from stripemeter.services.reconciler import Reconciler
from stripemeter.services.replay import recompute
from stripemeter.services.true_ups import TrueUps
from stripemeter.store import (
    adjustment_rows,
    adjustments,
    audit,
    billing,
    counters,
    cycles,
    period_ledger,
)
from stripemeter.store import reconciliation as recon_store
from stripemeter.store.counters import CounterKey
from stripemeter.store.database import Database

REASONS = ("backfill", "correction", "promo", "credit", "manual", "held_event")
MAX_DELTA = Decimal("1e15")
MAX_NOTE = 2000


def utcnow() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NewAdjustment:
    """A validated create request."""

    metric: str
    customer_ref: str
    period: Period  # the calendar month named; ``label`` is resolved against the customer's cycle
    delta: Decimal
    reason: str
    note: str | None
    label: str = ""


def parse_new(body: dict[str, Any]) -> NewAdjustment:
    """Validate ``{metric, customerRef, period|periodStart, delta, reason, note?}``."""
    allowed = {"metric", "customerRef", "period", "periodStart", "delta", "reason", "note"}
    unknown = sorted(set(body) - allowed - {"tenantId"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", code="unknown_field", param=unknown[0])
    for name in ("metric", "customerRef"):
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > 255:
            raise InvalidInput(
                f"{name} must be a non-empty string", code="invalid_field", param=name
            )
    raw_period = body.get("period", body.get("periodStart"))
    if not isinstance(raw_period, str):
        raise InvalidInput(
            "period must be YYYY-MM (or periodStart YYYY-MM-DD)",
            code="invalid_period",
            param="period",
        )
    try:
        period = month_from_label(raw_period[:7])
        # YYYY-MM names the customer's period that starts in that month; a day, the one containing it.
        label = raw_period[:10] if len(raw_period) >= 10 else raw_period[:7]
        period_named(label)
    except ValueError:
        raise InvalidInput(
            "period must be YYYY-MM", code="invalid_period", param="period"
        ) from None
    delta = body.get("delta")
    if isinstance(delta, bool) or not isinstance(delta, (int, Decimal, str)):
        raise InvalidInput("delta must be a number", code="invalid_delta", param="delta")
    try:
        amount = Decimal(str(delta))
    except InvalidOperation:
        raise InvalidInput("delta must be a number", code="invalid_delta", param="delta") from None
    if not amount.is_finite() or amount == 0 or abs(amount) >= MAX_DELTA:
        raise InvalidInput(
            "delta must be a non-zero number below 1e15 in magnitude",
            code="invalid_delta",
            param="delta",
        )
    reason = body.get("reason")
    if reason not in REASONS:
        raise InvalidInput(
            f"reason must be one of {'|'.join(REASONS)}", code="invalid_reason", param="reason"
        )
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise InvalidInput("note must be a string of at most 2000 characters", param="note")
    return NewAdjustment(
        str(body["metric"]), str(body["customerRef"]), period, amount, str(reason), note, label
    )


def to_wire(row: RowMapping, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An adjustment row in wire names."""
    period = calendar_month(row["period_start"])
    return {
        "id": int(row["id"]),
        "metric": row["metric"],
        "customerRef": row["customer_ref"],
        "period": period.label,
        "periodStart": row["period_start"],
        "delta": row["delta"],
        "reason": row["reason"],
        "note": row["note"],
        "status": row["status"],
        "eventId": row["event_id"],
        "createdBy": row["created_by"],
        "createdAt": row["created_at"],
        "decidedBy": row["decided_by"],
        "decidedAt": row["decided_at"],
        **(extra or {}),
    }


async def _counter_of(conn: Any, tenant_id: str, row: RowMapping) -> tuple[CounterKey, Period]:
    """The counter an adjustment counts in: the customer's period containing its booking instant.

    Read under the customer's cycle lock (shared), which every writer of its counters holds.
    """
    periods = await cycles.resolve(conn, [(tenant_id, row["customer_ref"])])
    booked = row["event_ts"] if row["event_ts"] is not None else row["period_start"]
    period = period_for(booked, periods.cycle(tenant_id, row["customer_ref"]))
    return CounterKey(tenant_id, row["metric"], row["customer_ref"], period.start), period


class AdjustmentFlow:
    """The adjustment lifecycle over counters, the pusher and true-ups."""

    def __init__(
        self,
        db: Database,
        pusher: Pusher,
        reconciler: Reconciler,
        true_ups: TrueUps,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.pusher = pusher
        self.reconciler = reconciler
        self.true_ups = true_ups
        self.clock = clock

    async def create(
        self, tenant_id: str, new: NewAdjustment, *, actor: str, request_id: str | None
    ) -> dict[str, Any]:
        """Store a pending adjustment; audited."""
        now = self.clock()
        async with self.db.write() as conn:
            cycle = await cycles.cycle_of(conn, tenant_id, new.customer_ref)
            period = period_named(new.label or new.period.label, cycle)
            key = CounterKey(tenant_id, new.metric, new.customer_ref, period.start)
            adjustment_id = await adjustments.insert_adjustment(
                conn,
                key,
                delta=new.delta,
                reason=new.reason,
                status="pending",
                note=new.note,
                event_id=None,
                event_ts=None,
                actor=actor,
                now=now,
            )
            await self._audit(
                conn,
                tenant_id,
                actor,
                "adjustment.created",
                adjustment_id,
                {
                    "metric": new.metric,
                    "customerRef": new.customer_ref,
                    "period": period.label,
                    "delta": str(new.delta),
                    "reason": new.reason,
                    "note": new.note,
                },
                request_id,
                now,
            )
            row = await adjustment_rows.get(conn, tenant_id, adjustment_id)
        assert row is not None
        return to_wire(row)

    async def get(self, tenant_id: str, adjustment_id: int) -> dict[str, Any]:
        """One adjustment."""
        async with self.db.read() as conn:
            row = await self._row(conn, tenant_id, adjustment_id)
        return to_wire(row)

    async def list(
        self,
        tenant_id: str,
        *,
        status: str | None,
        metric: str | None,
        customer_ref: str | None,
        before_id: int | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page, newest first, and the cursor of the next."""
        async with self.db.read() as conn:
            rows = await adjustment_rows.list_page(
                conn,
                tenant_id,
                status=status,
                metric=metric,
                customer_ref=customer_ref,
                before_id=before_id,
                limit=limit + 1,
            )
        page = rows[:limit]
        return [to_wire(r) for r in page], (int(page[-1]["id"]) if len(rows) > limit else None)

    async def approve(
        self, tenant_id: str, adjustment_id: int, *, actor: str, request_id: str | None
    ) -> dict[str, Any]:
        """Count a pending adjustment: fold it, then push it (open period) or true it up (closed)."""
        settings = await self.reconciler.settings_for(tenant_id)
        now = self.clock()
        async with self.db.write() as conn:
            row = await self._row(conn, tenant_id, adjustment_id)
            if row["status"] != "pending":
                raise Conflict(
                    f"adjustment {adjustment_id} is {row['status']}, not pending",
                    code="adjustment_not_pending",
                )
            own = row["created_by"] == actor
            if own and not settings[recon_store.TENANT_SCOPE].allow_self_approval:
                raise Forbidden(
                    "the creator of an adjustment cannot approve it (tenant setting "
                    "allowSelfApproval)",
                    code="self_approval",
                )
            key, period = await _counter_of(conn, tenant_id, row)
            await counters.lock(conn, [key])
            if not await adjustment_rows.move(
                conn, adjustment_id, expect="pending", status="approved", actor=actor, now=now
            ):
                raise Conflict(
                    f"adjustment {adjustment_id} was decided meanwhile",
                    code="adjustment_not_pending",
                )
            stored = await counters.load(conn, [key])
            state = fold(
                stored.get(key, EMPTY),
                Contribution(
                    row["delta"], now, f"adjustment:{adjustment_id}", counts_as_event=False
                ),
            )
            await counters.save(conn, {key: (period, state)}, now)
            closed = await billing.is_closed(conn, tenant_id, key.customer_ref, period)
            tier = lateness_tier(closed)
            await self._audit(
                conn,
                tenant_id,
                actor,
                "adjustment.approved",
                adjustment_id,
                {
                    "delta": str(row["delta"]),
                    "tier": tier.value,
                    "counter": {"sum": str(state.sum)},
                },
                request_id,
                now,
            )
        outcome = await self._deliver(tenant_id, row, period, tier, row["delta"], actor, "")
        return await self._wire(tenant_id, adjustment_id, {"tier": tier.value, "delivery": outcome})

    async def reject(
        self,
        tenant_id: str,
        adjustment_id: int,
        *,
        actor: str,
        note: str | None,
        request_id: str | None,
    ) -> dict[str, Any]:
        """Close a pending adjustment without counting it."""
        now = self.clock()
        async with self.db.write() as conn:
            row = await self._row(conn, tenant_id, adjustment_id)
            if not await adjustment_rows.move(
                conn, adjustment_id, expect="pending", status="rejected", actor=actor, now=now
            ):
                raise Conflict(
                    f"adjustment {adjustment_id} is {row['status']}, not pending",
                    code="adjustment_not_pending",
                )
            await self._audit(
                conn,
                tenant_id,
                actor,
                "adjustment.rejected",
                adjustment_id,
                {"note": note},
                request_id,
                now,
            )
        return await self._wire(tenant_id, adjustment_id)

    async def revert(
        self,
        tenant_id: str,
        adjustment_id: int,
        *,
        actor: str,
        note: str | None,
        request_id: str | None,
    ) -> dict[str, Any]:
        """Undo an approved adjustment: the counter is recomputed without it (net effect zero)."""
        now = self.clock()
        async with self.db.write() as conn:
            row = await self._row(conn, tenant_id, adjustment_id)
            if row["status"] != "approved":
                raise Conflict(
                    f"adjustment {adjustment_id} is {row['status']}; only approved ones revert",
                    code="adjustment_not_approved",
                )
            key, period = await _counter_of(conn, tenant_id, row)
            await counters.lock(conn, [key])
            if not await adjustment_rows.move(
                conn, adjustment_id, expect="approved", status="reverted", actor=actor, now=now
            ):
                raise Conflict(
                    f"adjustment {adjustment_id} changed meanwhile", code="adjustment_not_approved"
                )
            items = await period_ledger.contributions(
                conn, tenant_id, key.metric, key.customer_ref, period
            )
            if items:
                await counters.save(conn, {key: (period, recompute(items))}, now)
            else:
                await counters.delete(conn, [key])
            closed = await billing.is_closed(conn, tenant_id, key.customer_ref, period)
            tier = lateness_tier(closed)
            await self._audit(
                conn,
                tenant_id,
                actor,
                "adjustment.reverted",
                adjustment_id,
                {
                    "delta": str(row["delta"]),
                    "tier": tier.value,
                    "note": note,
                },
                request_id,
                now,
            )
        outcome = await self._deliver(tenant_id, row, period, tier, -row["delta"], actor, ":revert")
        return await self._wire(tenant_id, adjustment_id, {"tier": tier.value, "delivery": outcome})

    async def _deliver(
        self,
        tenant_id: str,
        row: RowMapping,
        period: Period,
        tier: LatenessTier,
        quantity: Decimal,
        actor: str,
        suffix: str,
    ) -> dict[str, Any]:
        """Push the change (open period) or true it up (closed period)."""
        if tier is LatenessTier.IN_PERIOD:
            summary = await self.pusher.flush(tenant_id, row["customer_ref"])
            return {"action": "pushed", "pushes": summary.results}
        async with self.db.read() as conn:
            mappings = await sync_store.list_mappings(
                conn, tenant_id, active=True, metric=row["metric"]
            )
        results = []
        for mapping in mappings:
            billed = await self.reconciler.stripe_total(
                mapping, "live", row["customer_ref"], period
            )
            async with self.db.read() as conn:
                trued = await billing.trued_up_quantity(
                    conn, tenant_id, row["metric"], row["customer_ref"], period.start
                )
            results.append(
                await self.true_ups.create(
                    tenant_id,
                    mapping,
                    row["customer_ref"],
                    period,
                    billed_quantity=(billed or Decimal(0)) + trued,
                    quantity=quantity,
                    source=f"adjustment:{row['id']}{suffix}",
                    actor=actor,
                )
            )
        return {"action": "true_up", "trueUps": results}

    async def _row(self, conn: Any, tenant_id: str, adjustment_id: int) -> RowMapping:
        row = await adjustment_rows.get(conn, tenant_id, adjustment_id)
        if row is None:
            raise NotFound(
                f"no adjustment {adjustment_id}", code="adjustment_not_found", param="id"
            )
        return row

    async def _wire(
        self, tenant_id: str, adjustment_id: int, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = await self._row(conn, tenant_id, adjustment_id)
        return to_wire(row, extra)

    @staticmethod
    async def _audit(
        conn: Any,
        tenant_id: str,
        actor: str,
        action: str,
        adjustment_id: int,
        details: dict[str, Any],
        request_id: str | None,
        now: datetime,
    ) -> None:
        await audit.record(
            conn,
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            target_type="adjustment",
            target_id=str(adjustment_id),
            details=details,
            request_id=request_id,
            now=now,
        )
