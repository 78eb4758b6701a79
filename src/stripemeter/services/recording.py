"""The ingest transaction: dedupe, judge lateness, append to the ledger and fold into counters.

One call handles any number of events (from one request or a coalesced group) with a fixed number of
statements, whatever the batch size (see ``store/ingest_state.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.aggregation import EMPTY, Contribution, fold
from stripemeter.domain.events import UsageEvent
from stripemeter.domain.lateness import Lateness, judge
from stripemeter.domain.periods import BillingCycle, Period, period_for
from stripemeter.services.hard_caps import NO_CAPS, OVER_CAP, CapSnapshot
from stripemeter.store import ingest_state
from stripemeter.store.counters import CounterKey
from stripemeter.store.ledger import EventRow


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
    clock: Callable[[], datetime],
    caps: CapSnapshot = NO_CAPS,
    probe: bool = True,
) -> tuple[list[Recorded], int]:
    """Record candidates in order in three steps (lock, read, write).

    Returns their outcomes and how many counters changed.
    """
    # Without ``probe`` the stored keys are not read first: the insert skips any it meets, and a
    # short insert raises ConcurrentInsert so the caller runs the transaction again with ``probe``
    # (cheaper overall while repeats are rare, as they are outside retries).
    if not candidates:
        return [], 0
    customers = {(c.tenant_id, c.event.customer_ref) for c in candidates}
    series = {(c.tenant_id, c.event.metric, c.event.customer_ref) for c in candidates}
    times = [c.event.at for c in candidates]
    # Lock before reading: a concurrent writer of the same series (and so of the same derived
    # keys) then commits first, and the reads below see its rows.
    await ingest_state.lock(conn, customers, series)
    # The time is read once the locks are held, so a series' updated_at never goes backwards: a
    # writer that waited for the lock stamps after the one it waited for (the pusher relies on it).
    now = clock()
    known = await ingest_state.read(
        conn,
        customers,
        series,
        (min(times), max(times)),
        ((c.tenant_id, c.event.idempotency_key) for c in candidates) if probe else None,
    )
    stored, states, closed = known.stored, known.counters, known.closed

    key_periods: dict[CounterKey, Period] = {}
    changed: set[CounterKey] = set()
    fresh: dict[tuple[str, str], int] = {}  # (tenant, key) -> index of the first candidate with it
    outcomes: list[tuple[str, str | None]] = []
    rows: list[EventRow] = []
    windows: dict[tuple[str, str], timedelta] = {}
    period: Period | None = None
    cycle: BillingCycle | None = None

    for index, cand in enumerate(candidates):
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
        # Periods partition time and depend only on the instant and the customer's cycle, so
        # consecutive events of one cycle (a batch is usually close in time) reuse the last one.
        at = event.at
        customer_cycle = known.cycles.get((cand.tenant_id, event.customer_ref))
        if period is None or customer_cycle is not cycle or not period.start <= at < period.end:
            period = period_for(at, customer_cycle)
            cycle = customer_cycle
        key = CounterKey(cand.tenant_id, event.metric, event.customer_ref, period.start)
        key_periods.setdefault(key, period)
        state = states.get(key, EMPTY)
        series_id = (cand.tenant_id, event.metric)
        window = windows.get(series_id)
        if window is None:
            window = windows[series_id] = window_for(*series_id)
        verdict = judge(at, state.watermark, window)
        if closed and any(at in p for p in closed.get((cand.tenant_id, event.customer_ref), ())):
            outcome: tuple[str, str | None] = ("held", PERIOD_CLOSED)
        elif verdict is Lateness.BEYOND_WINDOW:
            outcome = ("held", verdict.value)
        elif caps.refuses(key, state, event):
            outcome = ("held", OVER_CAP)
        else:
            states[key] = fold(state, Contribution(event.quantity, at, event.idempotency_key))
            changed.add(key)
            outcome = _ACCEPTED
        outcomes.append(outcome)
        rows.append(_row(cand, key, outcome, now))

    ids = await ingest_state.write(
        conn, rows, [(k, key_periods[k], states[k]) for k in changed], now
    )
    if len(ids) != len(rows):
        raise ConcurrentInsert

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
) -> EventRow:
    event = cand.event
    # In ledger.EVENT_COLUMNS order.
    return (
        cand.tenant_id,
        event.idempotency_key,
        event.payload_hash,
        event.metric,
        event.customer_ref,
        event.resource_id,
        event.quantity,
        event.at,
        event.at_text,
        key.period_start,
        outcome[0],
        outcome[1],
        event.source.value,
        event.meta_json,
        now,
        cand.request_id,
    )
