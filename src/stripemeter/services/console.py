"""What the admin console's overview shows: recent ingest, review queue, customers, pushes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from stripemeter.domain.periods import Period, period_for
from stripemeter.observability import metrics
from stripemeter.store import console_queries, ledger
from stripemeter.store.console_queries import PushHealth
from stripemeter.store.database import Database

CHART_WINDOW = timedelta(hours=1)
RECENT_EVENTS_CAP = 50_000  # events read for the per-minute chart; beyond it the chart says so
INGEST_STATUSES = ("accepted", "duplicate", "conflict", "held", "rejected")


@dataclass(frozen=True, slots=True)
class MinuteBucket:
    """Events received in one minute, by ledger status."""

    start: datetime
    accepted: int
    held: int

    @property
    def total(self) -> int:
        """Every event stored in the minute."""
        return self.accepted + self.held


@dataclass(frozen=True, slots=True)
class Overview:
    """The tenant's numbers for the overview page."""

    now: datetime
    period: Period
    minutes: list[MinuteBucket]
    truncated: bool
    accepted_last_hour: int
    held_last_hour: int
    held_pending: int
    customers: int
    pushes: PushHealth
    process_ingest: dict[str, int]  # this process, every tenant, since it started


def process_ingest_totals() -> dict[str, int]:
    """Ingest results counted by this process since it started (the /metrics counters)."""
    totals: dict[str, int] = {}
    for status in INGEST_STATUSES:
        value = metrics.registry.get_sample_value(
            "stripemeter_ingest_events_total", {"status": status}
        )
        totals[status] = int(value or 0)
    return totals


def minute_buckets(
    rows: list[tuple[datetime, str]], now: datetime, window: timedelta = CHART_WINDOW
) -> list[MinuteBucket]:
    """One bucket per minute over ``window`` ending at ``now``'s minute (oldest first)."""
    end = now.replace(second=0, microsecond=0)
    count = int(window.total_seconds() // 60)
    starts = [end - timedelta(minutes=count - 1 - i) for i in range(count)]
    accepted = dict.fromkeys(starts, 0)
    held = dict.fromkeys(starts, 0)
    for at, status in rows:
        minute = at.replace(second=0, microsecond=0)
        target = held if status == "held" else accepted
        if minute in target:
            target[minute] += 1
    return [MinuteBucket(start, accepted[start], held[start]) for start in starts]


class ConsoleOverview:
    """Reads the overview's numbers in one read transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def overview(self, tenant_id: str, now: datetime) -> Overview:
        """The overview of one tenant at ``now``."""
        period = period_for(now)
        since = now.replace(second=0, microsecond=0) - CHART_WINDOW + timedelta(minutes=1)
        async with self._db.read() as conn:
            rows, truncated = await console_queries.recent_events(
                conn, tenant_id, since, cap=RECENT_EVENTS_CAP
            )
            held_pending = await ledger.count_pending_held(conn, tenant_id)
            customers = await console_queries.count_customers(conn, tenant_id, now)
            pushes = await console_queries.push_health(conn, tenant_id)
        buckets = minute_buckets(rows, now)
        return Overview(
            now=now,
            period=period,
            minutes=buckets,
            truncated=truncated,
            accepted_last_hour=sum(b.accepted for b in buckets),
            held_last_hour=sum(b.held for b in buckets),
            held_pending=held_pending,
            customers=customers,
            pushes=pushes,
            process_ingest=process_ingest_totals(),
        )
