"""Ingest: validate a batch, record it (coalesced with concurrent requests), report per event."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.errors import Conflict, InvalidInput
from stripemeter.domain.events import EventLimits, Rejection, Source, UsageEvent, parse_event
from stripemeter.observability import metrics
from stripemeter.services.catalog import MetricCatalog, TenantMetrics
from stripemeter.services.group_commit import GroupCommitter
from stripemeter.services.hard_caps import NO_CAPS, CapSnapshot, IngestAlertHooks
from stripemeter.services.recording import Candidate, Recorded, record
from stripemeter.store import ingest_state, requests
from stripemeter.store.database import RACE_SQLSTATES, Database, TryAgain
from stripemeter.store.ledger import ConcurrentInsert

MAX_ATTEMPTS = 6
PROBE_AFTER_REPEAT = 30.0  # seconds to read stored keys first after a group met a repeated key
STATUSES = ("accepted", "duplicate", "conflict", "held", "rejected")
# The events counter's child per status, looked up once (``labels()`` validates and locks).
_EVENTS_BY_STATUS = {status: metrics.ingest_events.labels(status) for status in STATUSES}


class EventOutcome(msgspec.Struct, frozen=True):
    """The result for one event of a request, at its input index."""

    # A Struct, as UsageEvent is: one per event, and a frozen dataclass sets each field through
    # object.__setattr__.

    index: int
    status: str
    idempotency_key: str | None = None
    event_id: int | None = None
    reason: str | None = None
    field: str | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class IngestReport:
    """Per-event outcomes in input order, and the totals per status."""

    results: list[EventOutcome]
    totals: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, results: list[EventOutcome]) -> IngestReport:
        """Build a report, counting each status."""
        totals = dict.fromkeys(STATUSES, 0)
        for result in results:
            totals[result.status] += 1
        return cls(results, totals)


Renderer = Callable[[IngestReport], tuple[int, str]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IngestService:
    """The only way events enter the ledger."""

    def __init__(
        self,
        db: Database,
        catalog: MetricCatalog,
        limits: EventLimits,
        *,
        clock: Callable[[], datetime] = _utcnow,
        max_group: int = 8000,
        writers: int = 1,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._limits = limits
        self._clock = clock
        self.alert_hooks: IngestAlertHooks | None = None  # set by the app (docs/alerts.md)
        self._committer: GroupCommitter[Candidate, Recorded] = GroupCommitter(
            self._commit, max_group=max_group, writers=writers
        )
        # Serialises retries of one Idempotency-Key in this process; unused locks are collected.
        self._probe_until = 0.0  # monotonic time until which groups read stored keys first
        self._request_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def start(self) -> None:
        """Start the group-commit writers (call from inside the event loop)."""
        self._committer.start()

    async def stop(self) -> None:
        """Commit what is queued and stop."""
        await self._committer.stop()

    async def ingest(
        self,
        tenant_id: str,
        raw_events: Sequence[object],
        *,
        request_id: str | None = None,
        atomic: bool = False,
        default_source: Source = Source.HTTP,
    ) -> IngestReport:
        """Validate and record a batch; rejected events never stop valid ones unless ``atomic``."""
        started = self._clock()
        tenant = await self._catalog.for_tenant(tenant_id)
        parsed = [
            self._parse(raw, tenant_id, tenant, started, default_source) for raw in raw_events
        ]
        rejected = [(i, p) for i, p in enumerate(parsed) if isinstance(p, Rejection)]
        if atomic and rejected:
            raise _batch_rejected(rejected)
        candidates = [
            Candidate(tenant_id, p, request_id) for p in parsed if isinstance(p, UsageEvent)
        ]
        if atomic:
            recorded = await self._commit(candidates, refuse_conflicts=True)
        elif candidates:
            recorded = await self._committer.submit(candidates)
        else:
            recorded = []
        report = IngestReport.of(_merge(parsed, recorded))
        metrics.ingest_batch_size.observe(len(raw_events))
        for status, count in report.totals.items():
            if count:
                _EVENTS_BY_STATUS[status].inc(count)
        return report

    async def ingest_once(
        self,
        tenant_id: str,
        raw_events: Sequence[object],
        *,
        request_key: str,
        request_body: bytes,
        render: Renderer,
        request_id: str | None = None,
        atomic: bool = False,
    ) -> tuple[int, str, bool]:
        """Like ``ingest`` under an ``Idempotency-Key``: returns (status, body, replayed).

        The key is claimed, the events recorded and the response stored in one transaction, so a
        retry of the same request gets the same answer and another body under the key is refused.
        """
        request_hash = hashlib.sha256(request_body).hexdigest()
        lock = self._request_locks.setdefault((tenant_id, request_key), asyncio.Lock())
        async with lock:
            async with self._db.read() as conn:
                stored = await requests.find(conn, tenant_id, request_key)
            if stored is not None:
                return _replay(stored, request_hash)
            now = self._clock()
            tenant = await self._catalog.for_tenant(tenant_id)
            parsed = [self._parse(raw, tenant_id, tenant, now, Source.HTTP) for raw in raw_events]
            rejected = [(i, p) for i, p in enumerate(parsed) if isinstance(p, Rejection)]
            if atomic and rejected:
                raise _batch_rejected(rejected)
            candidates = [
                Candidate(tenant_id, p, request_id) for p in parsed if isinstance(p, UsageEvent)
            ]
            response: list[tuple[int, str]] = []

            async def claim(conn: AsyncConnection) -> None:
                if not await requests.claim(conn, tenant_id, request_key, request_hash, now):
                    raise _Claimed

            async def complete(conn: AsyncConnection, recorded: list[Recorded]) -> None:
                response[:] = [render(IngestReport.of(_merge(parsed, recorded)))]
                await requests.complete(conn, tenant_id, request_key, *response[0])

            try:
                await self._commit(
                    candidates, refuse_conflicts=atomic, before=claim, after=complete
                )
            except _Claimed:
                # Another process finished a request with this key while we were validating.
                async with self._db.read() as conn:
                    stored = await requests.find(conn, tenant_id, request_key)
                if stored is None:
                    raise Conflict(
                        "a concurrent request holds this Idempotency-Key",
                        code="request_in_progress",
                    ) from None
                return _replay(stored, request_hash)
            return response[0][0], response[0][1], False

    def _parse(
        self,
        raw: object,
        tenant_id: str,
        tenant: TenantMetrics,
        now: datetime,
        default_source: Source,
    ) -> UsageEvent | Rejection:
        parsed = parse_event(
            raw, tenant_id=tenant_id, now=now, limits=self._limits, default_source=default_source
        )
        if isinstance(parsed, UsageEvent) and tenant.strict and parsed.metric not in tenant.metrics:
            return Rejection(
                "metric", "unknown_metric", f"metric {parsed.metric!r} is not configured"
            )
        return parsed

    async def _commit(
        self,
        candidates: list[Candidate],
        *,
        refuse_conflicts: bool = False,
        before: Callable[[AsyncConnection], Awaitable[None]] | None = None,
        after: Callable[[AsyncConnection, list[Recorded]], Awaitable[None]] | None = None,
    ) -> list[Recorded]:
        """Record candidates in one transaction, retrying races and deadlocks."""
        tenants = {c.tenant_id for c in candidates}
        settings = {t: await self._catalog.for_tenant(t) for t in tenants}

        def window_for(tenant_id: str, metric: str) -> timedelta:
            return settings[tenant_id].get(metric).lateness_window

        metrics.ingest_group_size.observe(len(candidates))
        caps = await self.alert_hooks.cap_snapshot(tenants) if self.alert_hooks else NO_CAPS
        # Read stored keys first only while repeats are about (retries after an outage); otherwise
        # the insert finds them, and the rare repeat costs one more transaction (see ``record``).
        probe = time.monotonic() < self._probe_until
        # Requests with an Idempotency-Key claim it with SQLAlchemy statements in the same
        # transaction; every other PostgreSQL group runs on a bare driver connection.
        hooked = before is not None or after is not None
        for attempt in range(MAX_ATTEMPTS):
            try:
                if hooked or not self._db.is_postgres:
                    async with self._db.write() as conn:
                        if before is not None:
                            await before(conn)
                        recorded, changed = await self._record(
                            conn, candidates, window_for, caps, probe, refuse_conflicts
                        )
                        if after is not None:
                            await after(conn, recorded)
                else:
                    async with self._db.driver_write() as driver:
                        recorded, changed = await self._record(
                            driver, candidates, window_for, caps, probe, refuse_conflicts
                        )
                metrics.counter_updates.labels("ingest").inc(changed)
                if self.alert_hooks is not None:
                    self.alert_hooks.committed(candidates)
                return recorded
            except (ConcurrentInsert, TryAgain, IntegrityError, DBAPIError) as exc:
                if not _retryable(exc) or attempt == MAX_ATTEMPTS - 1:
                    raise
                if isinstance(exc, ConcurrentInsert) and not probe:
                    self._probe_until = time.monotonic() + PROBE_AFTER_REPEAT
                    probe = True
                    continue  # a repeat, not a race: run again at once, reading the keys
                # Racing writers back off by different amounts, so they do not collide again.
                await asyncio.sleep(0.01 * (attempt + 1) * random.uniform(0.5, 1.5))  # noqa: S311
        raise AssertionError("unreachable")  # pragma: no cover

    async def _record(
        self,
        conn: ingest_state.Connection,
        candidates: list[Candidate],
        window_for: Callable[[str, str], timedelta],
        caps: CapSnapshot,
        probe: bool,
        refuse_conflicts: bool,
    ) -> tuple[list[Recorded], int]:
        recorded, changed = await record(
            conn, candidates, window_for=window_for, clock=self._clock, caps=caps, probe=probe
        )
        if refuse_conflicts and any(r.status == "conflict" for r in recorded):
            raise _conflicts(candidates, recorded)
        return recorded, changed


class _Claimed(Exception):  # control flow inside ingest_once
    pass


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, (ConcurrentInsert, TryAgain)):
        return True
    if isinstance(exc, IntegrityError):
        return True  # a unique key raced us; the retry reads it and reports a duplicate
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    return sqlstate in RACE_SQLSTATES


def _merge(parsed: list[UsageEvent | Rejection], recorded: list[Recorded]) -> list[EventOutcome]:
    outcomes: list[EventOutcome] = []
    stored = iter(recorded)
    for index, item in enumerate(parsed):
        if isinstance(item, Rejection):
            outcomes.append(
                EventOutcome(
                    index, "rejected", field=item.field, code=item.code, message=item.message
                )
            )
            continue
        result = next(stored)
        outcomes.append(
            EventOutcome(index, result.status, item.idempotency_key, result.event_id, result.reason)
        )
    return outcomes


def _batch_rejected(rejected: list[tuple[int, Rejection]]) -> InvalidInput:
    first_index, first = rejected[0]
    return InvalidInput(
        f"events[{first_index}].{first.field}: {first.message} "
        f"({len(rejected)} event(s) rejected; nothing was stored)",
        code="batch_rejected",
        param=f"events[{first_index}].{first.field}",
        details=[
            {"index": i, "field": r.field, "code": r.code, "message": r.message}
            for i, r in rejected
        ],
    )


def _conflicts(candidates: list[Candidate], recorded: list[Recorded]) -> Conflict:
    keys = [
        c.event.idempotency_key
        for c, r in zip(candidates, recorded, strict=True)
        if r.status == "conflict"
    ]
    return Conflict(
        f"{len(keys)} event(s) reuse an idempotency key with a different payload; nothing was stored",
        code="idempotency_conflict",
        details={"idempotencyKeys": keys},
    )


def _replay(stored: requests.StoredResponse, request_hash: str) -> tuple[int, str, bool]:
    if stored.request_hash != request_hash:
        raise Conflict(
            "this Idempotency-Key was used with a different request body",
            code="idempotency_key_reused",
            param="Idempotency-Key",
        )
    return stored.status_code, stored.body, True
