"""Customers' billing cycles: learned from Stripe, stored, and applied to counters at once.

A customer's counters are keyed by its Stripe subscription's anchored periods once the cycle is
known (through the customer mapping: the customer's oldest active subscription with a recurring
price), by calendar months otherwise. The cycle is looked up by the pusher before it creates the
customer's first write-log rows (and again after ``CYCLE_TTL``), on a Stripe webhook about one of
the customer's subscriptions, and after the customer mapping changes. A change of cycle is stored
and the customer's counters are re-keyed from the ledger in one transaction, under the customer's
cycle lock held exclusively, so counters always equal a recomputation under the current periods.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.periods import BillingCycle, Period, period_for, subscription_cycle
from stripemeter.services import sync_store
from stripemeter.services.replay import ReplayService
from stripemeter.services.stripe_accounts import StripeAccounts
from stripemeter.store import cycles
from stripemeter.store.cycles import StoredCycle
from stripemeter.store.database import Database
from stripemeter.store.tables import stripe_subscription_items
from stripemeter.stripe.accounts import StripeAccount
from stripemeter.stripe.errors import StripeCallError, Transient, map_stripe_errors

log = structlog.get_logger("stripemeter.billing_cycles")

CYCLE_TTL = timedelta(hours=6)  # how long a looked-up cycle is trusted before asking Stripe again
ACTIVE_STATUSES = ("active", "trialing", "past_due")
SYSTEM_ACTOR = "system:billing_cycles"


def utcnow() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FoundCycle:
    """What Stripe says about a customer's billing cycle (None: no active recurring subscription)."""

    cycle: BillingCycle | None
    subscription_id: str | None


def cycle_to_wire(cycle: BillingCycle | None) -> dict[str, Any] | None:
    """A cycle in wire names (None: calendar months)."""
    if cycle is None:
        return None
    return {"anchor": cycle.anchor.isoformat(), "interval": cycle.interval, "count": cycle.count}


def _at(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value is not None else None


def cycle_of_subscriptions(subscriptions: list[Any]) -> FoundCycle:
    """The cycle of the oldest active subscription with a recurring price (Stripe objects or dicts)."""
    active = [s for s in subscriptions if s["status"] in ACTIVE_STATUSES]
    active.sort(key=lambda s: (int(s.get("created") or 0), str(s["id"])))
    for subscription in active:
        anchor = _at(subscription.get("billing_cycle_anchor"))
        if anchor is None:
            continue
        for item in subscription["items"]["data"]:
            recurring = item["price"].get("recurring")
            if not recurring:
                continue
            start, end = _at(item.get("current_period_start")), _at(item.get("current_period_end"))
            current = Period(start, end) if start is not None and end is not None else None
            cycle = subscription_cycle(
                anchor,
                str(recurring["interval"]),
                int(recurring.get("interval_count") or 1),
                current,
            )
            if cycle is not None:
                return FoundCycle(cycle, str(subscription["id"]))
    return FoundCycle(None, None)


async def lookup(account: StripeAccount, stripe_customer_id: str) -> FoundCycle:
    """Ask Stripe for a customer's subscriptions and take the cycle they bill on."""
    with map_stripe_errors():
        page = await account.client.v1.subscriptions.list_async(
            {"customer": stripe_customer_id, "limit": 100}
        )
    return cycle_of_subscriptions([s.to_dict() for s in page.data])


class BillingCycles:
    """Learns customers' cycles and re-keys their counters when one changes."""

    def __init__(
        self,
        db: Database,
        accounts: StripeAccounts,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.clock = clock

    async def apply(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        customer_ref: str,
        cycle: BillingCycle | None,
        *,
        source: str,
        stripe_customer_id: str | None,
        subscription_id: str | None,
        checked: bool = True,
        actor: str = SYSTEM_ACTOR,
        request_id: str | None = None,
    ) -> bool:
        """Store a customer's cycle in the caller's write transaction; re-key on a change.

        Returns whether the customer's periods changed (and its counters were re-keyed).
        """
        now = self.clock()
        await cycles.lock(conn, [(tenant_id, customer_ref)], shared=False)
        stored = await cycles.get(conn, tenant_id, customer_ref)
        before = stored.cycle if stored is not None else None
        same = before is None if cycle is None else cycle.same_periods(before)
        await cycles.put(
            conn,
            StoredCycle(
                tenant_id,
                customer_ref,
                before if same else cycle,
                stripe_customer_id,
                subscription_id,
                source,
                now if checked else None,
                stored.updated_at if same and stored is not None else now,
            ),
        )
        if same:
            return False
        # The pusher's cached subscription items carry the old cycle: look them up again too.
        await _drop_subscription_items(conn, tenant_id, customer_ref)
        report = await ReplayService(self.db, clock=self.clock).rekey(
            conn,
            tenant_id,
            customer_ref,
            actor=actor,
            details={
                "source": source,
                "from": cycle_to_wire(before),
                "to": cycle_to_wire(cycle),
                "stripeCustomerId": stripe_customer_id,
                "subscriptionId": subscription_id,
            },
            request_id=request_id,
        )
        log.info(
            "billing_cycle_changed",
            tenant=tenant_id,
            customer=customer_ref,
            source=source,
            cycle=cycle_to_wire(cycle),
            counters_rekeyed=report.counters_repaired,
        )
        return True

    async def forget(
        self, conn: AsyncConnection, tenant_id: str, customer_ref: str, *, source: str
    ) -> bool:
        """Back to calendar months (the customer mapping is gone), re-keying in this transaction."""
        await _drop_subscription_items(conn, tenant_id, customer_ref)
        return await self.apply(
            conn,
            tenant_id,
            customer_ref,
            None,
            source=source,
            stripe_customer_id=None,
            subscription_id=None,
            checked=False,
        )

    @staticmethod
    async def mark_stale(conn: AsyncConnection, tenant_id: str, customer_ref: str) -> None:
        """The customer now maps to another Stripe customer: ask Stripe before the next push."""
        await cycles.mark_stale(conn, tenant_id, customer_ref)
        await _drop_subscription_items(conn, tenant_id, customer_ref)

    async def refresh(
        self,
        tenant_id: str,
        customer_ref: str,
        *,
        source: str,
        force: bool = False,
    ) -> bool | None:
        """Look one customer's cycle up at Stripe (when stale, or ``force``) and apply it.

        Returns whether the periods changed; None when nothing could be asked (no mapping, no
        Stripe account, or Stripe failed).
        """
        async with self.db.read() as conn:
            mapped = await cycles.mapped_customers(conn, tenant_id, [customer_ref])
        if not mapped:
            return None
        return await self._refresh(tenant_id, mapped[0], source=source, force=force)

    async def ensure(
        self, tenant_id: str, customer_refs: Collection[str]
    ) -> tuple[set[str], set[str]]:
        """Make sure these customers' cycles were looked up recently (the pusher, before its rows).

        Returns the customers whose periods changed (their counters were re-keyed), and those
        whose cycle was never learned because Stripe could not be asked (their rows should wait).
        """
        async with self.db.read() as conn:
            mapped = await cycles.mapped_customers(conn, tenant_id, customer_refs)
        rekeyed: set[str] = set()
        unknown: set[str] = set()
        for customer in mapped:
            outcome = await self._refresh(tenant_id, customer, source="pusher", force=False)
            if outcome:
                rekeyed.add(customer.customer_ref)
            if outcome is None and customer.stored is None:
                unknown.add(customer.customer_ref)
        return rekeyed, unknown

    async def _refresh(
        self, tenant_id: str, customer: cycles.CustomerCycle, *, source: str, force: bool
    ) -> bool | None:
        now = self.clock()
        stored = customer.stored
        fresh = (
            stored is not None
            and stored.checked_at is not None
            and now - stored.checked_at < CYCLE_TTL
            and stored.stripe_customer_id == customer.stripe_customer_id
        )
        if fresh and not force:
            return False
        account = self.accounts.live
        if account is None:
            return None
        try:
            found = await lookup(account, customer.stripe_customer_id)
        except Transient as exc:  # ask again next time; the stored cycle (if any) holds meanwhile
            log.warning(
                "billing_cycle_lookup_failed", customer=customer.customer_ref, error=exc.reason
            )
            return None
        except StripeCallError as exc:  # no such customer, refused: nothing bills on a cycle
            log.warning(
                "billing_cycle_lookup_refused", customer=customer.customer_ref, error=exc.reason
            )
            found = FoundCycle(None, None)
        async with self.db.write() as conn:
            # Re-read under the lock in ``apply``'s transaction: another process may have applied
            # a lookup meanwhile; a subscription that ended keeps its customer's periods.
            current = await cycles.get(conn, tenant_id, customer.customer_ref)
            cycle = found.cycle
            if (
                cycle is None
                and current is not None
                and current.stripe_customer_id == customer.stripe_customer_id
            ):
                cycle = current.cycle
            return await self.apply(
                conn,
                tenant_id,
                customer.customer_ref,
                cycle,
                source=source,
                stripe_customer_id=customer.stripe_customer_id,
                subscription_id=found.subscription_id
                or (current.subscription_id if current is not None else None),
            )


async def row_cycle(
    conn: AsyncConnection, mapping_id: str, target: str, tenant_id: str, customer_ref: str
) -> BillingCycle | None:
    """The cycle a mapping's write-log rows of a customer follow: its subscription item's (cached),
    else the customer's (the counters'), else None (calendar months)."""
    item = await sync_store.get_subscription_item(conn, mapping_id, target, customer_ref)
    if item is not None and item.cycle is not None:
        return item.cycle
    return await cycles.cycle_of(conn, tenant_id, customer_ref)


async def superseded(conn: AsyncConnection, row: sync_store.LogRow) -> bool:
    """Whether a write-log row's period is no longer one of its customer's billing periods.

    After a change of cycle the rows of the old periods keep what Stripe confirmed; pushing the
    ledger's total of a period nobody bills any more would count its usage twice.
    """
    cycle = await row_cycle(conn, row.mapping_id, row.target, row.tenant_id, row.customer_ref)
    return period_for(row.period.start, cycle) != row.period


async def _drop_subscription_items(
    conn: AsyncConnection, tenant_id: str, customer_ref: str
) -> None:
    """Forget the pusher's cached subscription items of a customer (they belong to its old mapping)."""
    await conn.execute(
        delete(stripe_subscription_items).where(
            stripe_subscription_items.c.tenant_id == tenant_id,
            stripe_subscription_items.c.customer_ref == customer_ref,
        )
    )
