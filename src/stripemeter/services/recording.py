"""The ingest transaction: dedupe, judge lateness, append to the ledger and fold into counters.

One call handles any number of events (from one request or a coalesced group) with a fixed number of
statements, whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import EMPTY, Contribution, CounterState, fold
from stripemeter.domain.events import UsageEvent
from stripemeter.domain.lateness import Lateness, judge
from stripemeter.domain.periods import BillingCycle, Period, period_for
from stripemeter.services.hard_caps import NO_CAPS, OVER_CAP, CapSnapshot
from stripemeter.store import billing, counters, cycles, ledger
from stripemeter.store.counters import CounterKey


class ConcurrentInsert(Exception):  # control flow, not an error users see
    """Another transaction stored one of our keys between our read and our insert; run again."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A validated event waiting to be recorded."""

    tenant_id: str
    event: UsageEvent
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What happened to one candidate: accepted, duplicate, conflict or held (with the reason)."""

    status: str
    event_id: int
    reason: str | None = None


WindowLookup = Callable[[str, str], timedelta]  # (tenant, metric) -> lateness window
_ACCEPTED: tuple[str, str | None] = ("accepted", None)
PERIOD_CLOSED = "period_closed"


async def record(
    conn: AsyncConnection,
    candidates: Sequence[Candidate],
    *,
    window_for: WindowLookup,
    now: datetime,
    caps: CapSnapshot = NO_CAPS,
    periods: cycles.Periods | None = None,
) -> tuple[list[Recorded], int]:
    """Record candidates in order; returns their outcomes and how many counters changed.

    ``periods`` resolves each customer's period (its billing cycle's, or calendar months); by
    default the candidates' customers are locked (shared) and their cycles read here, in one
    statement for the whole batch, so a concurrent cycle change waits for this transaction.
    """
    if periods is None:
        periods = await cycles.resolve(
            conn, {(c.tenant_id, c.event.customer_ref) for c in candidates}
        )
    key_periods: dict[CounterKey, Period] = {}
    distinct: dict[tuple[str, str, str, datetime], CounterKey] = {}
    keys: list[CounterKey] = []
    period: Period | None = None
    cycle: BillingCycle | None = None
    for cand in candidates:
        at = cand.event.at
        # Periods partition time and depend only on the instant and the customer's cycle, so
        # consecutive events of one cycle (a batch is usually close in time) reuse the last one.
        customer_cycle = periods.cycle(cand.tenant_id, cand.event.customer_ref)
        if period is None or customer_cycle is not cycle or not period.start <= at < period.end:
            period = period_for(at, customer_cycle)
            cycle = customer_cycle
        series_key = (cand.tenant_id, cand.event.metric, cand.event.customer_ref, period.start)
        key = distinct.get(series_key)
        if key is None:
            key = distinct[series_key] = CounterKey(*series_key)
            key_periods[key] = period
        keys.append(key)

    # Lock before reading: a concurrent writer of the same counters (and so of the same derived keys)
    # then commits first, and our reads below see its rows.
    await counters.lock(conn, distinct.values())

    stored: dict[tuple[str, str], ledger.StoredKey] = {}
    by_tenant: dict[str, list[str]] = {}
    for cand in candidates:
        by_tenant.setdefault(cand.tenant_id, []).append(cand.event.idempotency_key)
    for tenant_id, tenant_keys in by_tenant.items():
        for key_text, found in (await ledger.find_keys(conn, tenant_id, tenant_keys)).items():
            stored[(tenant_id, key_text)] = found

    states: dict[CounterKey, CounterState] = await counters.load(conn, distinct.values())
    # Invoiced periods are closed: their events wait for review instead of changing a billed total.
    closed = (
        await billing.closed_periods_since(
            conn, by_tenant.keys(), min(c.event.at for c in candidates)
        )
        if candidates
        else {}
    )
    changed: set[CounterKey] = set()
    fresh: dict[tuple[str, str], int] = {}  # (tenant, key) -> index of the first candidate with it
    outcomes: list[tuple[str, str | None]] = []
    rows: list[dict[str, Any]] = []
    windows: dict[tuple[str, str], timedelta] = {}

    for index, (cand, key) in enumerate(zip(candidates, keys, strict=True)):
        event = cand.event
        ident_key = (cand.tenant_id, event.idempotency_key)
        earlier = stored.get(ident_key)
        if earlier is not None:
            outcomes.append(_repeat(earlier.payload_hash, event))
            continue
        first = fresh.get(ident_key)
        if first is not None:
            outcomes.append(_repeat(candidates[first].event.payload_hash, event))
            continue
        fresh[ident_key] = index
        state = states.get(key, EMPTY)
        series = (cand.tenant_id, event.metric)
        window = windows.get(series)
        if window is None:
            window = windows[series] = window_for(*series)
        verdict = judge(event.at, state.watermark, window)
        if closed and any(
            event.at in p for p in closed.get((cand.tenant_id, event.customer_ref), ())
        ):
            outcome: tuple[str, str | None] = ("held", PERIOD_CLOSED)
        elif verdict is Lateness.BEYOND_WINDOW:
            outcome = ("held", verdict.value)
        elif caps.refuses(key, state, event):
            outcome = ("held", OVER_CAP)
        else:
            states[key] = fold(state, Contribution(event.quantity, event.at, event.idempotency_key))
            changed.add(key)
            outcome = _ACCEPTED
        outcomes.append(outcome)
        rows.append(_row(cand, key, outcome, now))

    ids = await ledger.insert_events(conn, rows)
    if len(ids) != len(rows):
        raise ConcurrentInsert
    await counters.save(conn, {k: (key_periods[k], states[k]) for k in changed}, now)

    results: list[Recorded] = []
    for cand, (status, reason) in zip(candidates, outcomes, strict=True):
        ident = (cand.tenant_id, cand.event.idempotency_key)
        event_id = stored[ident].event_id if ident in stored else ids[ident]
        results.append(Recorded(status, event_id, reason))
    return results, len(changed)


def _repeat(stored_hash: str, event: UsageEvent) -> tuple[str, str | None]:
    if stored_hash == event.payload_hash:
        return ("duplicate", None)
    return ("conflict", "idempotency_key_reused")


def _row(
    cand: Candidate, key: CounterKey, outcome: tuple[str, str | None], now: datetime
) -> dict[str, Any]:
    event = cand.event
    return {
        "tenant_id": cand.tenant_id,
        "idempotency_key": event.idempotency_key,
        "payload_hash": event.payload_hash,
        "metric": event.metric,
        "customer_ref": event.customer_ref,
        "resource_id": event.resource_id,
        "quantity": event.quantity,
        "ts": event.at,
        "ts_text": event.at_text,
        "period_start": key.period_start,
        "status": outcome[0],
        "held_reason": outcome[1],
        "source": event.source.value,
        "meta": event.meta_json,
        "received_at": now,
        "request_id": cand.request_id,
    }
