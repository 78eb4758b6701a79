"""Customer mappings: customerRef → Stripe customer id; bulk import; lookup by Stripe metadata."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stripemeter.domain.errors import InvalidInput, NotFound
from stripemeter.services import sync_store as store
from stripemeter.services.billing_cycles import BillingCycles
from stripemeter.services.mappings import StripeUnavailable
from stripemeter.services.stripe_accounts import StripeAccounts
from stripemeter.store.database import Database
from stripemeter.stripe.errors import StripeCallError, map_stripe_errors

MAX_IMPORT = 1000  # customers per bulk import request
METADATA_KEY = "customerRef"  # the Stripe customer metadata key the lookup matches by default
_CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]+$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def customer_to_wire(customer: store.CustomerMapping) -> dict[str, Any]:
    """A customer mapping in wire names."""
    return {
        "customerRef": customer.customer_ref,
        "stripeCustomerId": customer.stripe_customer_id,
        "shadowStripeCustomerId": customer.shadow_stripe_customer_id,
        "createdAt": customer.created_at,
        "updatedAt": customer.updated_at,
    }


def parse_customer(item: Any, index: int | None = None) -> tuple[str, str, str | None]:
    """Validate one ``{customerRef, stripeCustomerId, shadowStripeCustomerId?}``."""
    where = "" if index is None else f"customers[{index}]."
    if not isinstance(item, dict):
        raise InvalidInput(
            "each customer must be an object", code="invalid_type", param=where or None
        )
    unknown = sorted(
        set(item) - {"customerRef", "stripeCustomerId", "shadowStripeCustomerId", "tenantId"}
    )
    if unknown:
        raise InvalidInput(
            f"unknown field {unknown[0]!r}", code="unknown_field", param=f"{where}{unknown[0]}"
        )
    ref = item.get("customerRef")
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 255:
        raise InvalidInput(
            "customerRef must be a string of 1-255 characters",
            code="invalid_value",
            param=f"{where}customerRef",
        )
    ids: list[str | None] = []
    for name, required in (("stripeCustomerId", True), ("shadowStripeCustomerId", False)):
        value = item.get(name)
        if value is None and not required:
            ids.append(None)
            continue
        if not isinstance(value, str) or not _CUSTOMER_ID.match(value):
            raise InvalidInput(
                f"{name} must be a Stripe customer id (cus_…)",
                code="invalid_value",
                param=f"{where}{name}",
            )
        ids.append(value)
    assert ids[0] is not None
    return ref, ids[0], ids[1]


class CustomerService:
    """A tenant's customer mappings."""

    def __init__(
        self, db: Database, accounts: StripeAccounts, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.clock = clock
        self.cycles = BillingCycles(db, accounts, clock=lambda: self.clock())

    async def put(self, tenant_id: str, body: dict[str, Any]) -> store.CustomerMapping:
        """Create or replace one mapping; parked pushes of that customer get another go."""
        ref, stripe_id, shadow_id = parse_customer(body)
        return (await self._save(tenant_id, [(ref, stripe_id, shadow_id)]))[0]

    async def import_many(self, tenant_id: str, items: Any) -> list[store.CustomerMapping]:
        """Create or replace many mappings in one transaction (all or nothing)."""
        if not isinstance(items, list) or not items:
            raise InvalidInput(
                "customers must be a non-empty list", code="invalid_value", param="customers"
            )
        if len(items) > MAX_IMPORT:
            raise InvalidInput(
                f"at most {MAX_IMPORT} customers per request", code="too_many", param="customers"
            )
        parsed = [parse_customer(item, i) for i, item in enumerate(items)]
        refs = [p[0] for p in parsed]
        if len(set(refs)) != len(refs):
            raise InvalidInput("customerRef appears twice", code="duplicate", param="customers")
        return await self._save(tenant_id, parsed)

    async def _save(
        self, tenant_id: str, items: list[tuple[str, str, str | None]]
    ) -> list[store.CustomerMapping]:
        now = self.clock()
        async with self.db.write() as conn:
            before = {ref: await store.get_customer(conn, tenant_id, ref) for ref, _, _ in items}
            await store.upsert_customers(conn, tenant_id, items, now)
            for ref, stripe_id, _ in items:
                old = before[ref]
                if old is not None and old.stripe_customer_id != stripe_id:
                    # Another Stripe customer, maybe another cycle: asked before the next push.
                    await self.cycles.mark_stale(conn, tenant_id, ref)
                await store.unpark(conn, tenant_id, now, customer_ref=ref)
            found = [await store.get_customer(conn, tenant_id, ref) for ref, _, _ in items]
        return [c for c in found if c is not None]

    async def get(self, tenant_id: str, customer_ref: str) -> store.CustomerMapping:
        """One mapping; another tenant's is not found."""
        async with self.db.read() as conn:
            customer = await store.get_customer(conn, tenant_id, customer_ref)
        if customer is None:
            raise NotFound(
                f"no customer mapping for {customer_ref!r}",
                code="customer_not_found",
                param="customerRef",
            )
        return customer

    async def list(
        self, tenant_id: str, *, after: str | None, limit: int
    ) -> list[store.CustomerMapping]:
        """A page of mappings by customerRef."""
        async with self.db.read() as conn:
            return await store.list_customers(conn, tenant_id, after=after, limit=limit)

    async def delete(self, tenant_id: str, customer_ref: str) -> None:
        """Remove one mapping; the customer's counters go back to calendar months (re-keyed)."""
        async with self.db.write() as conn:
            if not await store.delete_customer(conn, tenant_id, customer_ref):
                raise NotFound(
                    f"no customer mapping for {customer_ref!r}",
                    code="customer_not_found",
                    param="customerRef",
                )
            await self.cycles.forget(conn, tenant_id, customer_ref, source="mapping")

    async def lookup(
        self,
        tenant_id: str,
        customer_ref: str,
        *,
        metadata_key: str = METADATA_KEY,
        save: bool = True,
    ) -> store.CustomerMapping:
        """Find the Stripe customer whose metadata ``metadata_key`` equals ``customer_ref``.

        Lists customers page by page (the fake has no search endpoint; Stripe's search index lags
        by up to a minute, a list never does). Exactly one match is required.
        """
        account = self.accounts.live
        if account is None:
            raise StripeUnavailable("Stripe is not configured")
        matches: list[str] = []
        starting_after: str | None = None
        try:
            while True:
                params: dict[str, Any] = {"limit": 100}
                if starting_after:
                    params["starting_after"] = starting_after
                with map_stripe_errors():
                    response = await account.client.raw_request_async(
                        "get", "/v1/customers", **params
                    )
                page: dict[str, Any] = response.data
                for customer in page["data"]:
                    if (customer.get("metadata") or {}).get(metadata_key) == customer_ref:
                        matches.append(customer["id"])
                if not page.get("has_more") or not page["data"]:
                    break
                starting_after = page["data"][-1]["id"]
        except StripeCallError as exc:
            raise StripeUnavailable(f"Stripe could not be reached: {exc.reason}") from exc
        if not matches:
            raise NotFound(
                f"no Stripe customer has metadata {metadata_key}={customer_ref!r}",
                code="stripe_customer_not_found",
                param="customerRef",
            )
        if len(matches) > 1:
            raise InvalidInput(
                f"{len(matches)} Stripe customers have metadata {metadata_key}={customer_ref!r}",
                code="ambiguous_customer",
                param="customerRef",
                details={"stripeCustomerIds": matches},
            )
        if not save:
            now = self.clock()
            return store.CustomerMapping(tenant_id, customer_ref, matches[0], None, now, now)
        return (await self._save(tenant_id, [(customer_ref, matches[0], None)]))[0]
