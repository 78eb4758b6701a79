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
from stripemeter.domain.periods import Period, period_for
from stripemeter.store import counters, ledger
from stripemeter.store.counters import CounterKey


class ConcurrentInsert(Exception):  # noqa: N818 - control flow, not an error users see
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


async def record(
    conn: AsyncConnection,
    candidates: Sequence[Candidate],
    *,
    window_for: WindowLookup,
    now: datetime,
) -> tuple[list[Recorded], int]:
    """Record candidates in order; returns their outcomes and how many counters changed."""
    periods: dict[datetime, Period] = {}
    keys: list[CounterKey] = []
    for cand in candidates:
        period = period_for(cand.event.at)
        periods.setdefault(period.start, period)
        keys.append(CounterKey(cand.tenant_id, cand.event.metric, cand.event.customer_ref, period.start))

    # Lock before reading: a concurrent writer of the same counters (and so of the same derived keys)
    # then commits first, and our reads below see its rows.
    await counters.lock(conn, keys)

    stored: dict[tuple[str, str], ledger.StoredKey] = {}
    by_tenant: dict[str, list[str]] = {}
    for cand in candidates:
        by_tenant.setdefault(cand.tenant_id, []).append(cand.event.idempotency_key)
    for tenant_id, tenant_keys in by_tenant.items():
        for key, found in (await ledger.find_keys(conn, tenant_id, tenant_keys)).items():
            stored[(tenant_id, key)] = found

    states: dict[CounterKey, CounterState] = await counters.load(conn, set(keys))
    changed: set[CounterKey] = set()
    fresh: dict[tuple[str, str], int] = {}  # (tenant, key) -> index of the first candidate with it
    outcomes: list[tuple[str, str | None]] = []
    rows: list[dict[str, Any]] = []

    for index, (cand, key) in enumerate(zip(candidates, keys, strict=True)):
        event = cand.event
        ident = (cand.tenant_id, event.idempotency_key)
        earlier = stored.get(ident)
        if earlier is not None:
            outcomes.append(_repeat(earlier.payload_hash, event))
            continue
        first = fresh.get(ident)
        if first is not None:
            outcomes.append(_repeat(candidates[first].event.payload_hash, event))
            continue
        fresh[ident] = index
        state = states.get(key, EMPTY)
        verdict = judge(event.at, state.watermark, window_for(cand.tenant_id, event.metric))
        if verdict is Lateness.BEYOND_WINDOW:
            outcomes.append(("held", verdict.value))
        else:
            states[key] = fold(state, Contribution(event.quantity, event.at, event.idempotency_key))
            changed.add(key)
            outcomes.append(("accepted", None))
        rows.append(_row(cand, key, outcomes[-1], now))

    ids = await ledger.insert_events(conn, rows)
    if len(ids) != len(rows):
        raise ConcurrentInsert
    await counters.save(conn, {k: (periods[k.period_start], states[k]) for k in changed}, now)

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


def _row(cand: Candidate, key: CounterKey, outcome: tuple[str, str | None], now: datetime) -> dict[str, Any]:
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
