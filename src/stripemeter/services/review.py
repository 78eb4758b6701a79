"""Review of held events: list the queue, approve one (counted as an adjustment) or dismiss it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import EMPTY, Contribution, CounterState, fold
from stripemeter.domain.errors import Conflict, InvalidInput, NotFound
from stripemeter.domain.periods import BillingCycle, Period, period_for
from stripemeter.services.read_params import decode_cursor, encode_cursor
from stripemeter.store import adjustments, audit, billing, counters, cycles, ledger
from stripemeter.store.counters import CounterKey
from stripemeter.store.database import Database

MAX_NOTE_LENGTH = 2000
APPROVAL_REASON = "held_event"  # the adjustment reason of an approved held event
REVIEW_STATUSES = ("pending", "approved", "dismissed")
_CURSOR_KIND = "held"
MAX_PERIODS_AHEAD = 24  # months searched for the next open period of a period_closed event


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """A held event with its review, if any."""

    id: int
    metric: str
    customer_ref: str
    quantity: Decimal
    at: datetime
    period_start: datetime
    reason: str | None
    idempotency_key: str
    source: str
    resource_id: str | None
    meta: str
    received_at: datetime
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None

    @classmethod
    def from_row(cls, row: RowMapping) -> HeldEvent:
        """A ledger row (joined with its review) as a value."""
        return cls(
            id=int(row["id"]),
            metric=row["metric"],
            customer_ref=row["customer_ref"],
            quantity=row["quantity"],
            at=row["ts"],
            period_start=row["period_start"],
            reason=row["held_reason"],
            idempotency_key=row["idempotency_key"],
            source=row["source"],
            resource_id=row["resource_id"],
            meta=row["meta"],
            received_at=row["received_at"],
            decision=row["decision"],
            decided_by=row["review_actor"],
            decided_at=row["decided_at"],
        )


@dataclass(frozen=True, slots=True)
class HeldPage:
    """A page of held events, newest first, and the cursor of the next page (None on the last)."""

    items: list[HeldEvent]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """What a decision did: the adjustment and the counter after it, for an approval."""

    event_id: int
    decision: str
    actor: str
    note: str | None
    decided_at: datetime
    adjustment_id: int | None = None
    counter_key: CounterKey | None = None
    counter: CounterState | None = None


def validate_note(body: object) -> str | None:
    """The optional ``{note}`` of a decision body."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_body")
    unknown = sorted(set(body) - {"note", "tenantId"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", code="unknown_field", param=unknown[0])
    note = body.get("note")
    if note is None:
        return None
    if not isinstance(note, str) or len(note) > MAX_NOTE_LENGTH or "\x00" in note:
        raise InvalidInput(
            f"note must be a string of at most {MAX_NOTE_LENGTH} characters, without NUL",
            code="invalid_note",
            param="note",
        )
    return note


class ReviewService:
    """The review queue of held events; every decision is one audited write transaction."""

    def __init__(
        self, db: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._db = db
        self._clock = clock

    async def list_held(
        self,
        tenant_id: str,
        *,
        status: str = "pending",
        metric: str | None = None,
        customer_ref: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> HeldPage:
        """A page of the tenant's held events with the given review status, newest first."""
        if status not in REVIEW_STATUSES:
            raise InvalidInput(
                f"status must be one of {'|'.join(REVIEW_STATUSES)}",
                code="invalid_status",
                param="status",
            )
        for name, value in (("metric", metric), ("customerRef", customer_ref)):
            if value is not None and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
                raise InvalidInput(
                    f"{name} must not contain control characters",
                    code="invalid_parameter",
                    param=name,
                )
        spec = ledger.EventFilter(
            metric=metric,
            customer_ref=customer_ref,
            status="held" if status == "pending" else status,
        )
        before_id = None if cursor is None else _cursor_position(cursor, _CURSOR_KIND)
        async with self._db.read() as conn:
            rows = await ledger.list_events(
                conn, tenant_id, spec, before_id=before_id, limit=limit + 1
            )
            items = [HeldEvent.from_row(row) for row in rows[:limit]]
            # The period each event counts in now (its customer's cycle may have changed since).
            known = await cycles.load(conn, {(tenant_id, item.customer_ref) for item in items})
        items = [
            replace(
                item,
                period_start=period_for(item.at, known.get((tenant_id, item.customer_ref))).start,
            )
            for item in items
        ]
        more = len(rows) > limit and bool(items)
        return HeldPage(items, encode_cursor(_CURSOR_KIND, items[-1].id) if more else None)

    async def approve(
        self,
        tenant_id: str,
        event_id: int,
        *,
        actor: str,
        note: str | None = None,
        request_id: str | None = None,
    ) -> ReviewOutcome:
        """Count a held event once: adjustment, counter fold, review and audit entry in one transaction."""
        now = self._clock()
        try:
            async with self._db.write() as conn:
                event = await self._pending(conn, tenant_id, event_id)
                cycle = await _cycle_locked(conn, tenant_id, event)
                own = period_for(event.at, cycle)
                key, period = await _booking_key(conn, tenant_id, event, own, cycle)
                # Lock, then re-read: a concurrent decision on PostgreSQL commits before we look again.
                await counters.lock(conn, [key])
                event = await self._pending(conn, tenant_id, event_id)
                # An event of an invoiced period is a pure correction of the next open period: it
                # carries no event time there (replay folds it as a sum-only adjustment too).
                true_up = key.period_start != own.start
                adjustment_id = await adjustments.insert_adjustment(
                    conn,
                    key,
                    delta=event.quantity,
                    reason=APPROVAL_REASON,
                    status="approved",
                    note=note,
                    event_id=event.id,
                    event_ts=None if true_up else event.at,
                    actor=actor,
                    now=now,
                )
                stored = await counters.load(conn, [key])
                state = fold(
                    stored.get(key, EMPTY),
                    Contribution(
                        event.quantity,
                        event.at,
                        event.idempotency_key,
                        counts_as_event=not true_up,
                    ),
                )
                await counters.save(conn, {key: (period, state)}, now)
                details = {
                    **_audit_details(event, note),
                    "adjustmentId": adjustment_id,
                    "counter": {"sum": str(state.sum), "count": state.count},
                }
                decided = _Decision("approved", actor, note, request_id, now)
                await _record(conn, tenant_id, event, decided, adjustment_id, details)
        except IntegrityError:
            # A concurrent decision that got past the check still hits the review's primary key.
            raise _already_reviewed(event_id) from None
        return ReviewOutcome(event.id, "approved", actor, note, now, adjustment_id, key, state)

    async def dismiss(
        self,
        tenant_id: str,
        event_id: int,
        *,
        actor: str,
        note: str | None = None,
        request_id: str | None = None,
    ) -> ReviewOutcome:
        """Close a held event without counting it (review and audit entry; counters untouched)."""
        now = self._clock()
        try:
            async with self._db.write() as conn:
                event = await self._pending(conn, tenant_id, event_id)
                own = period_for(event.at, await _cycle_locked(conn, tenant_id, event))
                # The counter lock of the event's own period, so a decision on it serialises.
                await counters.lock(
                    conn, [CounterKey(tenant_id, event.metric, event.customer_ref, own.start)]
                )
                event = await self._pending(conn, tenant_id, event_id)
                decided = _Decision("dismissed", actor, note, request_id, now)
                await _record(conn, tenant_id, event, decided, None, _audit_details(event, note))
        except IntegrityError:
            raise _already_reviewed(event_id) from None
        return ReviewOutcome(event.id, "dismissed", actor, note, now)

    @staticmethod
    async def _pending(conn: AsyncConnection, tenant_id: str, event_id: int) -> HeldEvent:
        row = await ledger.get_event(conn, tenant_id, event_id)
        if row is None:
            raise NotFound(
                f"no event {event_id} in this tenant", code="event_not_found", param="id"
            )
        if row["status"] != "held":
            raise Conflict(
                f"event {event_id} is {row['status']}, not held; only held events are reviewed",
                code="event_not_held",
            )
        event = HeldEvent.from_row(row)
        if event.decision is not None:
            raise _already_reviewed(event_id, event.decision)
        return event


@dataclass(frozen=True, slots=True)
class _Decision:
    """Who decided what about a held event, and when."""

    verdict: str  # approved | dismissed
    actor: str
    note: str | None
    request_id: str | None
    at: datetime


async def _record(
    conn: AsyncConnection,
    tenant_id: str,
    event: HeldEvent,
    decision: _Decision,
    adjustment_id: int | None,
    details: dict[str, Any],
) -> None:
    """The review row (its primary key refuses a second decision) and the audit entry."""
    await adjustments.insert_review(
        conn,
        tenant_id=tenant_id,
        event_id=event.id,
        decision=decision.verdict,
        actor=decision.actor,
        note=decision.note,
        adjustment_id=adjustment_id,
        now=decision.at,
    )
    await audit.record(
        conn,
        tenant_id=tenant_id,
        actor=decision.actor,
        action=f"held_event.{decision.verdict}",
        target_type="event",
        target_id=str(event.id),
        details=details,
        request_id=decision.request_id,
        now=decision.at,
    )


def _cursor_position(cursor: str, kind: str) -> int:
    position = decode_cursor(cursor, kind)
    if not isinstance(position, int) or isinstance(position, bool) or not 0 < position < 2**63:
        raise InvalidInput("cursor is malformed", code="invalid_cursor", param="cursor")
    return position


async def _cycle_locked(
    conn: AsyncConnection, tenant_id: str, event: HeldEvent
) -> BillingCycle | None:
    """The event's customer's cycle, read under the shared cycle lock every counter writer holds."""
    periods = await cycles.resolve(conn, [(tenant_id, event.customer_ref)])
    return periods.cycle(tenant_id, event.customer_ref)


async def _booking_key(
    conn: AsyncConnection,
    tenant_id: str,
    event: HeldEvent,
    own: Period,
    cycle: BillingCycle | None,
) -> tuple[CounterKey, Period]:
    """The counter (and period) an approved event is folded into: its own period's, unless invoiced.

    A ``period_closed`` hold (or any event whose period's invoice is finalized by now) is booked
    into the customer's next open period: a true-up on the next invoice, never a silent change.
    """
    period = own
    invoiced = await billing.closed_period_at(conn, tenant_id, event.customer_ref, event.at)
    if (
        event.reason == "period_closed"
        or invoiced is not None
        or await billing.is_closed(conn, tenant_id, event.customer_ref, period)
    ):
        for _ in range(MAX_PERIODS_AHEAD):
            period = period_for(period.end, cycle)
            if not await billing.is_closed(conn, tenant_id, event.customer_ref, period):
                break
    return CounterKey(tenant_id, event.metric, event.customer_ref, period.start), period


def _already_reviewed(event_id: int, decision: str | None = None) -> Conflict:
    what = f" ({decision})" if decision else ""
    return Conflict(f"event {event_id} was already reviewed{what}", code="already_reviewed")


def _audit_details(event: HeldEvent, note: str | None) -> dict[str, Any]:
    return {
        "metric": event.metric,
        "customerRef": event.customer_ref,
        "quantity": str(event.quantity),
        "ts": event.at.isoformat(),
        "periodStart": event.period_start.isoformat(),
        "heldReason": event.reason,
        "note": note,
    }
