"""The pusher: sends Stripe what changed, exactly once in effect, through a two-phase write log.

One tick: scan changed counters into write-log rows (``discover``), lease rows with work, and for
each ask the domain for a ``PushPlan``. A new push is written as an intent and committed (phase
one) before Stripe is called with its deterministic identifier (also the Idempotency-Key); when
Stripe accepts, or says it already has that identifier, the row is confirmed (phase two). A row
with a pending intent is always re-sent with the same identifier before any new delta, so a crash
at any instruction leaves either nothing sent, or something sent that the resend deduplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import text

from stripemeter.domain.periods import BillingCycle, Period, period_for, subscription_cycle
from stripemeter.domain.pushes import (
    PlanKind,
    PushPlan,
    RowKey,
    StaleOutcome,
    plan_push,
    resolve_stale,
)
from stripemeter.observability import metrics
from stripemeter.services import sync_store as store
from stripemeter.services.background import PeriodicLoop
from stripemeter.services.billing_cycles import BillingCycles, row_cycle, superseded
from stripemeter.services.stripe_accounts import StripeAccounts
from stripemeter.store import billing, dialect, period_ledger
from stripemeter.store.database import Database
from stripemeter.stripe.accounts import StripeAccount
from stripemeter.stripe.drivers.base import Destination, Driver, WirePush
from stripemeter.stripe.drivers.legacy import UsageRecordsDriver
from stripemeter.stripe.drivers.meters import MeterEventsDriver
from stripemeter.stripe.drivers.shadow import ShadowDriver
from stripemeter.stripe.drivers.stream import MeterEventStreamDriver
from stripemeter.stripe.errors import CallSlotBusy, CircuitOpen, StripeCallError, Transient
from stripemeter.stripe.limits import KeyedLocks
from stripemeter.stripe.retry import Action, RetryPolicy

log = structlog.get_logger("stripemeter.pusher")

PUSH_INTERVAL = 5.0  # seconds between ticks of the background loop
LEASE_SECONDS = 60.0  # a claimed row is ours this long (renewed before each Stripe call)
BATCH_SIZE = 200  # rows claimed per round
SUBSCRIPTION_TTL = timedelta(hours=6)  # how long a looked-up subscription cycle is trusted
MAX_PLAN_ROUNDS = 3  # pushes per row per claim (a change that lands mid-push goes out at once)
CALL_SLOT_WAIT = 25.0  # seconds to wait for another worker's call to the same (customer, meter)
CALL_SLOT_POLL = 0.01  # seconds between tries for that slot, doubling up to the max below
CALL_SLOT_POLL_MAX = 0.2
CRASH_HOOK_ENV = "STRIPEMETER_TEST_CRASH_AT"  # test-only: SIGKILL this process at a named step

Hook = Callable[[str], None]


def _jitter() -> float:
    return random.random()  # noqa: S311 - backoff jitter, not cryptography


def utcnow() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


def crash_hook_from_env() -> Hook | None:
    """A hook that kills the process at the step named by ``STRIPEMETER_TEST_CRASH_AT`` (tests)."""
    step = os.environ.get(CRASH_HOOK_ENV)
    if not step:
        return None

    def hook(at: str) -> None:
        if at == step:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


@dataclass
class PushSummary:
    """What one tick or flush did, by result."""

    rows: int = 0
    results: dict[str, int] = field(default_factory=dict)

    def add(self, result: str) -> None:
        """Count one row's result."""
        self.results[result] = self.results.get(result, 0) + 1

    def merge(self, other: PushSummary) -> None:
        """Add another summary's counts."""
        self.rows += other.rows
        for key, value in other.results.items():
            self.results[key] = self.results.get(key, 0) + value


@dataclass
class _Job:
    """A row with a push to send (new or pending)."""

    row: store.LogRow
    mapping: store.PriceMapping
    driver: Driver
    account: StripeAccount
    plan: PushPlan
    wire: WirePush
    needs_intent: bool = False


class Pusher:
    """Finds changed counters and pushes their deltas to Stripe; safe in many processes at once."""

    def __init__(
        self,
        db: Database,
        accounts: StripeAccounts,
        *,
        interval: float = PUSH_INTERVAL,
        batch_size: int = BATCH_SIZE,
        concurrency: int = 8,
        lease_seconds: float = LEASE_SECONDS,
        call_slot_wait: float = CALL_SLOT_WAIT,
        meter_driver: str = "meters",
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        hook: Hook | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.interval = interval
        self.batch_size = batch_size
        self.lease_for = timedelta(seconds=lease_seconds)
        self.call_slot_wait = call_slot_wait
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.hook = hook
        self.sleep = sleep
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        meters = MeterEventsDriver()
        self.drivers: dict[str, Driver] = {
            "meters": meters,
            "meter_stream": MeterEventStreamDriver(meters),
            "legacy": UsageRecordsDriver(),
        }
        self.default_meter_driver = meter_driver
        self._shadow_drivers = {name: ShadowDriver(d) for name, d in self.drivers.items()}
        self._semaphore = asyncio.Semaphore(concurrency)
        self._locks = KeyedLocks()
        self._loop = PeriodicLoop(
            "stripemeter-pusher",
            lambda: self.tick(),
            interval=lambda: self.interval,
            on_failure=lambda: log.exception("push_tick_failed"),
        )
        self._warned_shadow = False
        self.last_tick: datetime | None = None
        self.cycles = BillingCycles(db, accounts, clock=lambda: self.clock())

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in the background."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop after the current tick."""
        await self._loop.stop()

    @property
    def running(self) -> bool:
        """Whether the background loop is alive."""
        return self._loop.running

    def wake(self) -> None:
        """Start the next tick now."""
        self._loop.wake()

    # --- ticks and flushes -------------------------------------------------------------------

    async def tick(self) -> PushSummary:
        """One round: scan changes, push every row whose time has come."""
        summary = await self.run(tenant_id=None, customer_ref=None, flush=False)
        self.last_tick = self.clock()
        await self._sample_gauges()
        return summary

    async def flush(
        self, tenant_id: str, customer_ref: str | None = None, *, retry_parked: bool = False
    ) -> PushSummary:
        """Push a tenant's (or one customer's) changes now, ignoring backoff; return when done."""
        if retry_parked:
            async with self.db.write() as conn:
                await store.unpark(conn, tenant_id, self.clock(), customer_ref=customer_ref)
        summary = await self.run(tenant_id=tenant_id, customer_ref=customer_ref, flush=True)
        await self._sample_gauges()
        return summary

    async def run(
        self, *, tenant_id: str | None, customer_ref: str | None, flush: bool
    ) -> PushSummary:
        """Scan, then claim and push rows until none is left for this round."""
        summary = PushSummary()
        mappings = await self._mappings(tenant_id)
        if not mappings:
            return summary  # nothing maps to Stripe: no write transaction at all
        await self.discover(mappings, tenant_id=tenant_id, customer_ref=customer_ref)
        done: list[int] = []
        while not self._loop.stopping:
            async with self.db.write() as conn:
                rows = await store.lease(
                    conn,
                    self.owner,
                    self.clock(),
                    self.lease_for,
                    self.batch_size,
                    tenant_id=tenant_id,
                    customer_ref=customer_ref,
                    ignore_backoff=flush,
                    exclude=done if flush else (),
                )
            if not rows:
                break
            summary.rows += len(rows)
            done.extend(r.id for r in rows)
            summary.merge(await self._process(rows, mappings))
            if not flush and len(rows) < self.batch_size:
                break
        return summary

    async def _mappings(self, tenant_id: str | None) -> dict[str, store.PriceMapping]:
        async with self.db.read() as conn:
            return {m.id: m for m in await store.list_mappings(conn, tenant_id, active=True)}

    # --- discovery ---------------------------------------------------------------------------

    async def discover(
        self,
        mappings: dict[str, store.PriceMapping],
        *,
        tenant_id: str | None = None,
        customer_ref: str | None = None,
    ) -> int:
        """Turn counters changed since each mapping's cursor into flagged write-log rows."""
        marked = 0
        now = self.clock()
        for mapping in mappings.values():
            if tenant_id is not None and mapping.tenant_id != tenant_id:
                continue
            async with self.db.read() as conn:
                since = await store.cursor_of(conn, mapping.id)
                changed = await store.changed_counters(conn, mapping, since, customer_ref)
            if not changed:
                continue
            # Customers' periods first: a cycle learned now re-keys their counters (rescanned
            # below), so rows are made for the periods Stripe bills, not for ones about to go.
            # A customer whose cycle Stripe could not tell yet waits (its counters are rescanned).
            rekeyed, unknown = await self.cycles.ensure(
                mapping.tenant_id, {c["customer_ref"] for c in changed}
            )
            if rekeyed:
                # Re-read: the re-keyed customers' counters whatever their time (the re-key's
                # clock may lag the cursor), the others' since the cursor as before.
                async with self.db.read() as conn:
                    changed = [
                        c
                        for c in await store.changed_counters(conn, mapping, since, customer_ref)
                        if c["customer_ref"] not in rekeyed
                    ]
                    for ref in sorted(rekeyed):
                        changed += await store.changed_counters(
                            conn, mapping, store.EPOCH_FLOOR, ref
                        )
            waiting = [c["updated_at"] for c in changed if c["customer_ref"] in unknown]
            changed = [c for c in changed if c["customer_ref"] not in unknown]
            if not changed:
                continue
            rows: list[dict[str, Any]] = []
            for counter in changed:
                for target in mapping.targets:
                    cycle = await self._cycle(mapping, target, counter["customer_ref"])
                    for period in _billing_periods(
                        Period(counter["period_start"], counter["period_end"]), cycle
                    ):
                        rows.append(
                            store.new_log_row(
                                mapping.tenant_id,
                                mapping.id,
                                target,
                                counter["customer_ref"],
                                period,
                                counter["updated_at"],
                                now,
                            )
                        )
            newest = min([max(c["updated_at"] for c in changed), *waiting])
            async with self.db.write() as conn:
                await store.mark_dirty(conn, rows)
                if customer_ref is None:
                    await store.advance_cursor(conn, mapping.id, newest)
            marked += len(rows)
        return marked

    async def _cycle(
        self, mapping: store.PriceMapping, target: str, customer_ref: str
    ) -> BillingCycle | None:
        item = await self._subscription_item(mapping, target, customer_ref)
        if item is not None and item.cycle is not None:
            return item.cycle
        async with self.db.read() as conn:  # the customer's cycle: rows follow its counters
            return await row_cycle(conn, mapping.id, target, mapping.tenant_id, customer_ref)

    async def _subscription_item(
        self, mapping: store.PriceMapping, target: str, customer_ref: str
    ) -> store.SubscriptionItem | None:
        """The customer's subscription item for this mapping, cached; None when not needed."""
        price_id = mapping.shadow_price_id if target == "shadow" else mapping.price_id
        price_id = price_id or mapping.price_id
        wanted_item = (
            mapping.shadow_subscription_item_id if target == "shadow" else None
        ) or mapping.subscription_item_id
        if mapping.driver != "legacy" and not price_id:
            return None  # a meter mapping without a price: calendar months
        account = self.accounts.for_target(target)
        if account is None:
            return None
        async with self.db.read() as conn:
            cached = await store.get_subscription_item(conn, mapping.id, target, customer_ref)
            customer = await store.get_customer(conn, mapping.tenant_id, customer_ref)
        now = self.clock()
        if cached is not None and now - cached.fetched_at < SUBSCRIPTION_TTL:
            return cached
        if customer is None:
            return cached
        stripe_customer = (
            customer.shadow_stripe_customer_id if target == "shadow" else None
        ) or customer.stripe_customer_id
        try:
            found = await _lookup_subscription_item(
                account, stripe_customer, price_id, wanted_item, now
            )
        except StripeCallError as exc:
            log.warning("subscription_lookup_failed", mapping=mapping.id, error=exc.reason)
            return cached
        async with self.db.write() as conn:
            await store.put_subscription_item(
                conn, mapping.tenant_id, mapping.id, target, customer_ref, found
            )
        return found

    # --- processing --------------------------------------------------------------------------

    async def _process(
        self,
        rows: Sequence[store.LogRow],
        mappings: dict[str, store.PriceMapping],
        rounds: int = 0,
    ) -> PushSummary:
        summary = PushSummary()
        jobs: list[_Job] = []
        for row in rows:
            job = await self._prepare(row, mappings, summary, rounds)
            if job is not None:
                jobs.append(job)
        jobs = await self._write_intents(jobs, summary)
        confirms: list[tuple[_Job, str]] = []
        groups: dict[tuple[str, str], list[_Job]] = {}
        for job in jobs:
            groups.setdefault((job.driver.name, job.account.name), []).append(job)
        tasks = []
        for group in groups.values():
            size = group[0].driver.batch_size
            for start in range(0, len(group), size):
                tasks.append(self._send_chunk(group[start : start + size], confirms, summary))
        try:
            await asyncio.gather(*tasks)
        finally:
            # Phase two for the whole batch in one transaction: Stripe already has these pushes,
            # so a crash before this commit only means they are re-sent and deduplicated.
            resent = await self._confirm_all(confirms, summary)
        if resent:
            # A re-sent intent carried the old ``to``, not the local total: plan those rows again
            # now (they are still ours and flagged, so a crash here only defers it to a claim).
            summary.merge(await self._follow_up(resent, mappings, rounds))
        return summary

    async def _follow_up(
        self, row_ids: list[int], mappings: dict[str, store.PriceMapping], rounds: int
    ) -> PushSummary:
        """Plan rows we still hold once more (after a re-sent or verified intent)."""
        now = self.clock()
        async with self.db.write() as conn:
            if rounds + 1 >= MAX_PLAN_ROUNDS:
                for row_id in row_ids:  # still flagged: the next claim takes them
                    await store.release(conn, row_id, self.owner, now)
                return PushSummary()
            fresh = await store.reclaim(conn, row_ids, self.owner)
        return await self._process(fresh, mappings, rounds + 1)

    async def _write_intents(self, jobs: list[_Job], summary: PushSummary) -> list[_Job]:
        """Phase one for every new push of the batch, committed before any Stripe call."""
        fresh = [job for job in jobs if job.needs_intent]
        if not fresh:
            return jobs
        now = self.clock()
        lost: set[int] = set()
        async with self.db.write() as conn:
            for job in fresh:
                assert job.plan.stamp is not None
                assert job.plan.identifier is not None
                written = await store.write_intent(
                    conn,
                    job.row,
                    self.owner,
                    from_total=job.plan.from_total,
                    to_total=job.plan.to_total,
                    stamp=job.plan.stamp,
                    identifier=job.plan.identifier,
                    now=now,
                )
                if not written:
                    lost.add(job.row.id)
                    summary.add("lost_lease")
        self._fire("after_intent")
        return [job for job in jobs if job.row.id not in lost]

    async def _prepare(
        self,
        row: store.LogRow,
        mappings: dict[str, store.PriceMapping],
        summary: PushSummary,
        rounds: int = 0,
    ) -> _Job | None:
        """Plan a claimed row; write the intent of a new push. None when nothing is to be sent."""
        now = self.clock()
        mapping = mappings.get(row.mapping_id)
        if mapping is None:
            await self._finish(row, "inactive_mapping", summary)
            return None
        account = self.accounts.for_target(row.target)
        if account is None:
            if not self._warned_shadow:
                log.warning(
                    "shadow_skipped",
                    reason="STRIPE_TEST_SECRET_KEY is not set; shadow pushes are skipped, "
                    "never sent live",
                )
                self._warned_shadow = True
            await self._finish(
                row, "skipped", summary, last_error="shadow skipped: no STRIPE_TEST_SECRET_KEY"
            )
            return None
        driver = self._driver(mapping, row.target)
        async with self.db.read() as conn:
            customer = await store.get_customer(conn, mapping.tenant_id, row.customer_ref)
            target_total = await self._local_total(conn, mapping, row)
            closed = row.pending is None and await billing.is_closed(
                conn, row.tenant_id, row.customer_ref, row.period
            )
        if closed:
            # The invoice is finalized: corrections become true-ups (reconciler), never pushes.
            await self._finish(row, "period_closed", summary, changed_at=None, dirty=False)
            return None
        if customer is None:
            await self._park(
                row, "unmapped_customer: no Stripe customer for this customerRef", summary
            )
            return None
        stripe_customer = (
            customer.shadow_stripe_customer_id if row.target == "shadow" else None
        ) or customer.stripe_customer_id
        destination = await self._destination(mapping, row, stripe_customer)
        if destination is None:
            await self._park(
                row, "no_subscription_item: the customer has no item for this price", summary
            )
            return None
        aggregation = mapping.aggregation_kind
        key = RowKey(row.tenant_id, row.mapping_id, row.target, row.customer_ref, row.period)
        plan = plan_push(
            key,
            row.state,
            target_total,
            now,
            mode=driver.value_mode(aggregation),
            monotonic=driver.monotonic_stamps(aggregation),
            whole=driver.whole_numbers,
            fixed_stamp=driver.fixed_stamps,
        )
        if plan.kind is PlanKind.NOTHING:
            # After a confirmed push the re-check finding nothing is not a result of its own.
            await self._finish(row, "unchanged" if rounds == 0 else None, summary, changed_at=None)
            return None
        if plan.kind is PlanKind.PARK:
            await self._park(row, plan.reason or "parked", summary)
            return None
        if plan.kind is PlanKind.VERIFY:
            return await self._verify(row, mappings, summary, driver, account, destination, rounds)
        assert plan.stamp is not None
        assert plan.identifier is not None
        wire = WirePush(plan.identifier, stripe_customer, plan.value, plan.stamp, destination)
        return _Job(row, mapping, driver, account, plan, wire, plan.kind is PlanKind.SEND)

    async def _verify(
        self,
        row: store.LogRow,
        mappings: dict[str, store.PriceMapping],
        summary: PushSummary,
        driver: Driver,
        account: StripeAccount,
        destination: Destination,
        rounds: int,
    ) -> _Job | None:
        """A pending push older than Stripe's dedupe window: ask Stripe's totals what happened."""
        assert row.pending is not None
        mapping = mappings[row.mapping_id]
        async with self.db.read() as conn:
            customer = await store.get_customer(conn, mapping.tenant_id, row.customer_ref)
        assert customer is not None
        stripe_customer = (
            customer.shadow_stripe_customer_id if row.target == "shadow" else None
        ) or customer.stripe_customer_id
        try:
            total = await driver.period_total(account, destination, stripe_customer, row.period)
        except StripeCallError as exc:
            await self._reschedule(
                row, exc, summary, delay=self.policy.row_delay(row.attempts + 1, _jitter())
            )
            return None
        mode = driver.value_mode(mapping.aggregation_kind)
        outcome = (
            StaleOutcome.UNKNOWN
            if total is None
            else resolve_stale(row.pending.from_total, row.pending.to_total, total, mode=mode)
        )
        now = self.clock()
        if outcome is StaleOutcome.DELIVERED:
            async with self.db.write() as conn:
                await store.confirm(conn, row.id, row.pending.identifier, now, recheck=True)
            summary.add("verified_delivered")
        elif outcome is StaleOutcome.NOT_DELIVERED:
            async with self.db.write() as conn:
                await store.abandon_intent(conn, row.id, row.pending.identifier, now)
            summary.add("verified_missing")
        else:
            await self._park(
                row,
                f"verify_mismatch: Stripe shows {total}, neither {row.pending.from_total} "
                f"nor {row.pending.to_total}",
                summary,
            )
            return None
        return await self._again(row, mappings, summary, rounds)

    async def _again(
        self,
        row: store.LogRow,
        mappings: dict[str, store.PriceMapping],
        summary: PushSummary,
        rounds: int,
    ) -> _Job | None:
        """Re-plan a row we still hold (its total may have moved while we pushed)."""
        if rounds + 1 >= MAX_PLAN_ROUNDS:
            await self._finish(row, None, summary, dirty=True)
            return None
        async with self.db.write() as conn:
            fresh = await store.reclaim(conn, [row.id], self.owner)
        if not fresh:
            return None
        return await self._prepare(fresh[0], mappings, summary, rounds + 1)

    def driver_for(self, mapping: store.PriceMapping, target: str) -> Driver:
        """The driver that pushes (and reads totals) for a mapping's target."""
        return self._driver(mapping, target)

    async def destination_for(
        self, mapping: store.PriceMapping, target: str, customer_ref: str
    ) -> Destination | None:
        """Where a customer's pushes of a mapping land (None: no subscription item)."""
        shadow = target == "shadow"
        account = (
            (mapping.shadow_stripe_account or mapping.stripe_account)
            if shadow
            else mapping.stripe_account
        )
        if mapping.driver == "legacy":
            item = await self._subscription_item(mapping, target, customer_ref)
            if item is None or item.item_id is None:
                return None
            return Destination(account, subscription_item_id=item.item_id)
        event_name = (
            mapping.shadow_meter_event_name if shadow else None
        ) or mapping.meter_event_name
        meter_id = None if shadow and mapping.shadow_meter_event_name else mapping.meter_id
        return Destination(account, event_name=event_name, meter_id=meter_id)

    def _driver(self, mapping: store.PriceMapping, target: str) -> Driver:
        name = mapping.driver
        if name == "meters" and self.default_meter_driver == "meter_stream":
            name = "meter_stream"
        return self._shadow_drivers[name] if target == "shadow" else self.drivers[name]

    async def _destination(
        self, mapping: store.PriceMapping, row: store.LogRow, stripe_customer: str
    ) -> Destination | None:
        return await self.destination_for(mapping, row.target, row.customer_ref)

    async def _local_total(
        self, conn: Any, mapping: store.PriceMapping, row: store.LogRow
    ) -> Decimal:
        if row.pending is None and await superseded(conn, row):
            return row.pushed_total  # a period of an old cycle keeps what Stripe confirmed
        # The counter when the row's period is a counter's (the customer's cycle), else the same
        # fold over the ledger (a mapping billed through another subscription's cycle).
        return await period_ledger.billing_value(
            conn,
            row.tenant_id,
            mapping.metric,
            row.customer_ref,
            row.period,
            mapping.aggregation_kind,
        )

    # --- calling Stripe ----------------------------------------------------------------------

    async def _send_chunk(
        self, jobs: list[_Job], confirms: list[tuple[_Job, str]], summary: PushSummary
    ) -> None:
        async with self._semaphore:
            first = jobs[0]
            if len(jobs) == 1:
                destination = first.wire.destination
                lock_key = (
                    first.account.name,
                    destination.stripe_account or "",
                    first.wire.stripe_customer_id,
                    destination.event_name or destination.subscription_item_id or "",
                )
                async with self._locks.hold(lock_key):
                    await self._call(jobs, confirms, summary, slot="\x1f".join(lock_key))
            else:
                await self._call(jobs, confirms, summary)

    @contextlib.asynccontextmanager
    async def _call_slot(self, slot: str | None) -> AsyncIterator[bool]:
        """Hold the (account, customer, meter) call slot across processes for one call.

        Stripe allows one concurrent meter-event call per (customer, meter); ``KeyedLocks`` keeps
        it in this process, and on PostgreSQL a transaction-scoped advisory lock keeps it across
        workers (rows of one customer and meter can sit in different workers' leases: two
        periods, two mappings to one meter). The lock goes with the transaction, so a worker
        killed mid-call frees it with its connection. Yields False when another process held it
        for ``call_slot_wait`` (the row is rescheduled). SQLite: one pushing process, no-op.
        """
        if slot is None or not self.db.is_postgres:
            yield True
            return
        deadline = time.monotonic() + self.call_slot_wait
        poll = CALL_SLOT_POLL
        async with self.db.engine.connect() as conn, conn.begin():
            while not await dialect.try_lock_name(conn, f"stripe-call:{slot}"):
                if time.monotonic() >= deadline:
                    yield False
                    return
                await asyncio.sleep(poll)
                poll = min(poll * 2, CALL_SLOT_POLL_MAX)
            yield True

    async def _call(
        self,
        jobs: list[_Job],
        confirms: list[tuple[_Job, str]],
        summary: PushSummary,
        *,
        slot: str | None = None,
    ) -> None:
        first = jobs[0]
        account, driver = first.account, first.driver
        attempt = 0
        while True:
            attempt += 1
            if not await self._renew(jobs):
                summary.add("lost_lease")
                return
            error: StripeCallError | None = None
            if not account.breaker.allow(time.monotonic()):
                error = CircuitOpen(
                    "circuit open for this Stripe account",
                    retry_after=account.breaker.retry_after(time.monotonic()),
                )
            else:
                await account.limiter.acquire()
                async with self._call_slot(slot) as free:
                    if free:
                        error = await self._send(account, driver, jobs)
                    else:
                        error = CallSlotBusy(
                            "another worker is calling Stripe for this customer and meter",
                            retry_after=self.policy.row_delay(1, _jitter()),
                        )
                        account.breaker.cancel_probe()  # if it was one, it was not made
                metrics.stripe_breaker_state.labels(account.name).set(int(account.breaker.state))
            if error is None:
                self._fire("after_call")
                confirms.extend((job, "delivered") for job in jobs)
                return
            decision = self.policy.decide(error, attempt, _jitter())
            if decision.action is Action.DELIVERED:
                self._fire("after_call")
                confirms.extend((job, "duplicate") for job in jobs)
                return
            metrics.stripe_retries.labels(type(error).__name__).inc()
            if decision.action is Action.RETRY:
                log.info("stripe_retry", error=error.reason, attempt=attempt, delay=decision.delay)
                await self.sleep(decision.delay)
                continue
            for job in jobs:
                if decision.action is Action.PARK:
                    await self._park(job.row, error.reason, summary, refused=job.plan)
                else:
                    delay = max(
                        decision.delay, self.policy.row_delay(job.row.attempts + 1, _jitter())
                    )
                    await self._reschedule(job.row, error, summary, delay=delay)
            return

    async def _send(
        self, account: StripeAccount, driver: Driver, jobs: list[_Job]
    ) -> StripeCallError | None:
        """One request to Stripe; the error it ended with, told to the breaker."""
        self._fire("before_call")
        started = time.perf_counter()
        try:
            await driver.send(account, [job.wire for job in jobs])
        except StripeCallError as exc:
            metrics.stripe_latency.labels(driver.name, type(exc).__name__).observe(
                time.perf_counter() - started
            )
            if isinstance(exc, Transient):
                account.breaker.record_failure(time.monotonic())
            else:
                account.breaker.record_neutral()
            return exc
        account.breaker.record_success()
        metrics.stripe_latency.labels(driver.name, "ok").observe(time.perf_counter() - started)
        return None

    async def _confirm_all(
        self, confirms: list[tuple[_Job, str]], summary: PushSummary
    ) -> list[int]:
        """Phase two; returns the re-sent rows, kept leased and flagged for another plan.

        A re-sent intent was planned before the crash, so it says nothing about the local total
        now: the claim that picked the row up cleared ``dirty``, and releasing it unflagged would
        drop every change that landed after the intent (the lost delta of issue #3).
        """
        if not confirms:
            return []
        now = self.clock()
        resent: list[int] = []
        async with self.db.write() as conn:
            for job, _ in confirms:
                assert job.plan.identifier is not None
                if job.plan.kind is PlanKind.RESEND and await store.confirm(
                    conn, job.row.id, job.plan.identifier, now, recheck=True
                ):
                    resent.append(job.row.id)
                    continue
                await store.confirm(conn, job.row.id, job.plan.identifier, now)
                await store.release(
                    conn,
                    job.row.id,
                    self.owner,
                    now,
                    changed_at=text("CASE WHEN dirty THEN changed_at ELSE NULL END"),
                )
        for job, result in confirms:
            metrics.stripe_pushes.labels(job.row.target, result).inc()
            summary.add(result)
            log.info(
                "stripe_push",
                result=result,
                mapping=job.mapping.id,
                target=job.row.target,
                customer=job.row.customer_ref,
                period=job.row.period.label,
                delta=str(job.plan.delta),
                total=str(job.plan.to_total),
                identifier=job.plan.identifier,
            )
        return resent

    async def _renew(self, jobs: list[_Job]) -> bool:
        now = self.clock()
        until = now + self.lease_for
        if all(
            job.row.lease_expires_at is not None
            and job.row.lease_expires_at - now > self.lease_for / 2
            for job in jobs
        ):
            return True  # claimed moments ago: no write needed yet
        for job in jobs:
            job.row = replace(job.row, lease_expires_at=until)
        async with self.db.write() as conn:
            results = [await store.renew_lease(conn, job.row.id, self.owner, until) for job in jobs]
        return all(results)

    # --- row endings -------------------------------------------------------------------------

    async def _finish(
        self,
        row: store.LogRow,
        result: str | None,
        summary: PushSummary,
        **values: Any,
    ) -> None:
        async with self.db.write() as conn:
            await store.release(conn, row.id, self.owner, self.clock(), **values)
        if result is not None:
            summary.add(result)
            metrics.stripe_pushes.labels(row.target, result).inc()

    async def _park(
        self,
        row: store.LogRow,
        reason: str,
        summary: PushSummary,
        *,
        refused: PushPlan | None = None,
    ) -> None:
        """Stop pushing a row until someone fixes its cause; Stripe refused any pending push."""
        now = self.clock()
        async with self.db.write() as conn:
            if refused is not None and refused.identifier is not None:
                await store.abandon_intent(conn, row.id, refused.identifier, now)
            await store.release(
                conn,
                row.id,
                self.owner,
                now,
                status="parked",
                last_error=reason[:1000],
                dirty=False,
            )
        summary.add("parked")
        metrics.stripe_pushes.labels(row.target, "parked").inc()
        log.warning("stripe_push_parked", row=row.id, customer=row.customer_ref, reason=reason)

    async def _reschedule(
        self, row: store.LogRow, error: StripeCallError, summary: PushSummary, *, delay: float
    ) -> None:
        now = self.clock()
        async with self.db.write() as conn:
            await store.release(
                conn,
                row.id,
                self.owner,
                now,
                attempts=row.attempts + 1,
                last_error=error.reason[:1000],
                next_attempt_at=now + timedelta(seconds=delay),
                dirty=True,
            )
        summary.add("rescheduled")
        metrics.stripe_pushes.labels(row.target, "rescheduled").inc()

    def _fire(self, step: str) -> None:
        if self.hook is not None:
            self.hook(step)

    async def _sample_gauges(self) -> None:
        async with self.db.read() as conn:
            oldest = await store.oldest_unpushed_change(conn)
        age = (self.clock() - oldest).total_seconds() if oldest else 0.0
        metrics.stripe_oldest_unpushed_seconds.set(max(0.0, age))


def _billing_periods(counter_period: Period, cycle: BillingCycle | None) -> list[Period]:
    """The billing periods that overlap a counter's calendar period."""
    if cycle is None:
        return [counter_period]
    periods = []
    period = period_for(counter_period.start, cycle)
    while period.start < counter_period.end:
        periods.append(period)
        period = period_for(period.end, cycle)
    return periods


async def _lookup_subscription_item(
    account: StripeAccount,
    stripe_customer: str,
    price_id: str | None,
    wanted_item: str | None,
    now: datetime,
) -> store.SubscriptionItem:
    """Find the customer's subscription item for a price (or the named item) and its cycle."""
    from stripemeter.stripe.errors import map_stripe_errors

    with map_stripe_errors():
        page = await account.client.v1.subscriptions.list_async(
            {"customer": stripe_customer, "limit": 100}
        )
    for subscription in page.data:
        if subscription.status not in ("active", "trialing", "past_due"):
            continue
        for item in subscription["items"].data:
            if (wanted_item and item.id == wanted_item) or (
                not wanted_item and price_id and item.price.id == price_id
            ):
                recurring = item.price.recurring
                current = Period(
                    datetime.fromtimestamp(item.current_period_start, UTC),
                    datetime.fromtimestamp(item.current_period_end, UTC),
                )
                # The anchor's cycle (a short first period before the anchor included), or the
                # cycle through Stripe's current period when that does not follow the anchor.
                cycle = (
                    subscription_cycle(
                        datetime.fromtimestamp(subscription.billing_cycle_anchor, UTC),
                        recurring.interval,
                        recurring.interval_count or 1,
                        current,
                    )
                    if recurring is not None
                    else None
                )
                return store.SubscriptionItem(subscription.id, item.id, cycle, current, now)
    return store.SubscriptionItem(None, None, None, None, now)
