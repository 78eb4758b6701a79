"""The ingest transaction: dedupe, judge lateness, append to the ledger and fold into counters.

One call handles any number of events (from one request or a coalesced group) with a fixed number of
statements, whatever the batch size (see ``store/ingest_state.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

import msgspec

from stripemeter.domain.aggregation import EMPTY, Contribution, CounterState, fold_all
from stripemeter.domain.events import UsageEvent
from stripemeter.domain.lateness import Lateness, judge
from stripemeter.domain.periods import BillingCycle, Period, period_for
from stripemeter.services.hard_caps import NO_CAPS, OVER_CAP, CapSnapshot
from stripemeter.store import ingest_state
from stripemeter.store.counters import CounterKey
from stripemeter.store.ledger import EventRow


class Candidate(msgspec.Struct, frozen=True):
    """A validated event waiting to be recorded (a Struct: one per event, built in C)."""

    tenant_id: str
    event: UsageEvent
    request_id: str | None = None


class Recorded(msgspec.Struct, frozen=True):
    """What happened to one candidate: accepted, duplicate, conflict or held (with the reason)."""

    status: str
    event_id: int
    reason: str | None = None


WindowLookup = Callable[[str, str], timedelta]  # (tenant, metric) -> lateness window
_ACCEPTED: tuple[str, str | None] = ("accepted", None)
PERIOD_CLOSED = "period_closed"


async def record(
    conn: ingest_state.Connection,
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
    # Accepted contributions per counter, folded once at the end (``fold_all``), and each
    # counter's running watermark, which judges the lateness of the group's later events.
    pending: dict[CounterKey, list[Contribution]] = {}
    marks: dict[CounterKey, datetime | None] = {}
    changed: set[CounterKey] = set()
    fresh: dict[tuple[str, str], int] = {}  # (tenant, key) -> index of the first candidate with it
    outcomes: list[tuple[str, str | None]] = []
    windows: dict[tuple[str, str], timedelta] = {}

    def folded(key: CounterKey) -> CounterState:
        # A cap judges each event against everything before it, so its counter folds as it goes.
        items = pending.pop(key, None)
        if items:
            states[key] = fold_all(states.get(key, EMPTY), items)
        return states.get(key, EMPTY)

    def rows() -> Iterator[EventRow]:
        # A generator, so that a large group's rows are judged while the first ones already
        # stream to PostgreSQL (COPY, ``ingest_state.write``).
        period: Period | None = None
        cycle: BillingCycle | None = None
        for index, cand in enumerate(candidates):
            event = cand.event
            tenant_id = cand.tenant_id
            ident_key = (tenant_id, event.idempotency_key)
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
            customer = (tenant_id, event.customer_ref)
            customer_cycle = known.cycles.get(customer)
            if period is None or customer_cycle is not cycle or not period.start <= at < period.end:
                period = period_for(at, customer_cycle)
                cycle = customer_cycle
            key = CounterKey(tenant_id, event.metric, event.customer_ref, period.start)
            if key in marks:
                mark = marks[key]
            else:
                key_periods[key] = period
                state = states.get(key)
                mark = marks[key] = None if state is None else state.watermark
            series_id = (tenant_id, event.metric)
            window = windows.get(series_id)
            if window is None:
                window = windows[series_id] = window_for(*series_id)
            if closed and any(at in p for p in closed.get(customer, ())):
                outcome: tuple[str, str | None] = ("held", PERIOD_CLOSED)
            elif (verdict := judge(at, mark, window)) is Lateness.BEYOND_WINDOW:
                outcome = ("held", verdict.value)
            elif caps.tenants and caps.refuses(key, folded(key), event):
                outcome = ("held", OVER_CAP)
            else:
                pending.setdefault(key, []).append(
                    Contribution(event.quantity, at, event.idempotency_key)
                )
                if mark is None or at > mark:
                    marks[key] = at
                changed.add(key)
                outcome = _ACCEPTED
            outcomes.append(outcome)
            yield (  # in ledger.EVENT_COLUMNS order
                tenant_id,
                event.idempotency_key,
                event.payload_hash,
                event.metric,
                event.customer_ref,
                event.resource_id,
                event.quantity,
                at,
                event.at_text,
                period.start,
                outcome[0],
                outcome[1],
                event.source.value,
                event.meta_json,
                now,
                cand.request_id,
            )

    def counters_changed() -> list[tuple[CounterKey, Period, CounterState]]:
        # Called once every row was produced: each counter is then folded once.
        for key in list(pending):
            folded(key)
        return [(k, key_periods[k], states[k]) for k in changed]

    ids = await ingest_state.write(conn, rows(), len(candidates), counters_changed, now)

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
