"""Price mappings (metric → Stripe target), validated against Stripe where it can be reached."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.errors import InvalidInput, NotFound, StripeMeterError
from stripemeter.services import sync_store as store
from stripemeter.services.stripe_accounts import StripeAccounts
from stripemeter.store.database import Database
from stripemeter.stripe.accounts import DEFAULT_ACCOUNT, StripeAccount, connect_account
from stripemeter.stripe.errors import NotFound as StripeNotFound
from stripemeter.stripe.errors import Permanent, StripeCallError, map_stripe_errors

log = structlog.get_logger("stripemeter.mappings")

DRIVERS = ("meters", "meter_stream", "legacy")
#: The meter formula each local aggregation is published to. A local count goes out as summed
#: deltas (a Stripe ``count`` meter would count our pushes, not the events); max goes to ``last``.
METER_FORMULA = {
    Aggregation.SUM: "sum",
    Aggregation.COUNT: "sum",
    Aggregation.MAX: "last",
    Aggregation.LAST: "last",
}
_ACCOUNT = re.compile(r"^(default|acct_[A-Za-z0-9]+)$")
_CURRENCY = re.compile(r"^[a-z]{3}$")

WIRE_NAMES = {
    "metric": "metric",
    "aggregation": "aggregation",
    "driver": "driver",
    "stripeAccount": "stripe_account",
    "meterEventName": "meter_event_name",
    "meterId": "meter_id",
    "priceId": "price_id",
    "subscriptionItemId": "subscription_item_id",
    "currency": "currency",
    "active": "active",
    "shadow": "shadow",
    "shadowStripeAccount": "shadow_stripe_account",
    "shadowMeterEventName": "shadow_meter_event_name",
    "shadowPriceId": "shadow_price_id",
    "shadowSubscriptionItemId": "shadow_subscription_item_id",
}
_BOOLEAN = {"active", "shadow"}


class StripeUnavailable(StripeMeterError):
    """Stripe could not be reached to validate the request; try again."""

    code = "stripe_unavailable"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def mapping_to_wire(mapping: store.PriceMapping) -> dict[str, Any]:
    """A mapping in wire names."""
    body: dict[str, Any] = {"id": mapping.id, "tenantId": mapping.tenant_id}
    for wire, name in WIRE_NAMES.items():
        body[wire] = getattr(mapping, name)
    body["createdAt"] = mapping.created_at
    body["updatedAt"] = mapping.updated_at
    return body


def parse_fields(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Wire fields → column values, with precise errors; unknown fields are refused."""
    unknown = sorted(set(body) - set(WIRE_NAMES) - {"tenantId", "id"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", code="unknown_field", param=unknown[0])
    values: dict[str, Any] = {}
    for wire, name in WIRE_NAMES.items():
        if wire not in body:
            continue
        value = body[wire]
        if name in _BOOLEAN:
            if not isinstance(value, bool):
                raise InvalidInput(f"{wire} must be true or false", code="invalid_type", param=wire)
        elif value is not None and not isinstance(value, str):
            raise InvalidInput(f"{wire} must be a string", code="invalid_type", param=wire)
        elif isinstance(value, str):
            value = value.strip()
            if not value or len(value) > 100:
                raise InvalidInput(
                    f"{wire} must be 1-100 characters", code="invalid_value", param=wire
                )
        values[name] = value
    if not partial:
        for wire in ("metric", "aggregation"):
            if values.get(WIRE_NAMES[wire]) is None:
                raise InvalidInput(f"{wire} is required", code="missing_field", param=wire)
    if values.get("aggregation") is not None and values["aggregation"] not in set(Aggregation):
        raise InvalidInput(
            "aggregation must be one of sum, max, last, count",
            code="invalid_value",
            param="aggregation",
        )
    if values.get("driver") is not None and values["driver"] not in DRIVERS:
        raise InvalidInput(
            f"driver must be one of {', '.join(DRIVERS)}", code="invalid_value", param="driver"
        )
    for wire in ("stripeAccount", "shadowStripeAccount"):
        account = values.get(WIRE_NAMES[wire])
        if account is not None and not _ACCOUNT.match(account):
            raise InvalidInput(
                f"{wire} must be 'default' or a Stripe account id (acct_…)",
                code="invalid_value",
                param=wire,
            )
    if values.get("currency") is not None:
        values["currency"] = values["currency"].lower()
        if not _CURRENCY.match(values["currency"]):
            raise InvalidInput(
                "currency must be a three-letter ISO code", code="invalid_value", param="currency"
            )
    return values


class MappingService:
    """Create, read, change and delete a tenant's price mappings."""

    def __init__(
        self,
        db: Database,
        accounts: StripeAccounts,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.clock = clock

    async def create(self, tenant_id: str, body: dict[str, Any]) -> store.PriceMapping:
        """Validate (locally, then against Stripe) and store a new mapping."""
        values = parse_fields(body, partial=False)
        values.setdefault("stripe_account", DEFAULT_ACCOUNT)
        values.setdefault("active", True)
        values.setdefault("shadow", False)
        values = await self._validate(values)
        now = self.clock()
        mapping_id = f"map_{secrets.token_hex(10)}"
        row = {name: values.get(name) for name in store.MAPPING_FIELDS}
        row |= {"id": mapping_id, "tenant_id": tenant_id, "created_at": now, "updated_at": now}
        async with self.db.write() as conn:
            await store.insert_mapping(conn, row)
            created = await store.get_mapping(conn, tenant_id, mapping_id)
        assert created is not None
        return created

    async def get(self, tenant_id: str, mapping_id: str) -> store.PriceMapping:
        """One mapping; another tenant's is not found."""
        async with self.db.read() as conn:
            mapping = await store.get_mapping(conn, tenant_id, mapping_id)
        if mapping is None:
            raise NotFound(f"no mapping {mapping_id!r}", code="mapping_not_found", param="id")
        return mapping

    async def list(
        self, tenant_id: str, *, active: bool | None, metric: str | None
    ) -> list[store.PriceMapping]:
        """A tenant's mappings."""
        async with self.db.read() as conn:
            return await store.list_mappings(conn, tenant_id, active=active, metric=metric)

    async def update(
        self, tenant_id: str, mapping_id: str, body: dict[str, Any]
    ) -> store.PriceMapping:
        """Change fields; the result is validated as a whole. Parked rows get another go."""
        current = await self.get(tenant_id, mapping_id)
        changes = parse_fields(body, partial=True)
        if "metric" in changes and changes["metric"] != current.metric:
            raise InvalidInput(
                "metric cannot change; create a new mapping", code="immutable_field", param="metric"
            )
        merged = {name: getattr(current, name) for name in store.MAPPING_FIELDS} | changes
        if "driver" not in changes and any(
            k in changes for k in ("meter_event_name", "meter_id", "subscription_item_id")
        ):
            merged["driver"] = None  # re-infer from the new target
        merged = await self._validate(merged)
        now = self.clock()
        async with self.db.write() as conn:
            await store.update_mapping(
                conn,
                tenant_id,
                mapping_id,
                {name: merged.get(name) for name in store.MAPPING_FIELDS} | {"updated_at": now},
            )
            await store.unpark(conn, tenant_id, now, mapping_id=mapping_id)
        return await self.get(tenant_id, mapping_id)

    async def delete(self, tenant_id: str, mapping_id: str) -> None:
        """Remove a mapping; its write log stays as history."""
        async with self.db.write() as conn:
            if not await store.delete_mapping(conn, tenant_id, mapping_id):
                raise NotFound(f"no mapping {mapping_id!r}", code="mapping_not_found", param="id")

    async def _validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """Infer the driver, check the target exists in Stripe and fits the aggregation."""
        aggregation = Aggregation(values["aggregation"])
        driver = values.get("driver")
        if driver is None:
            if values.get("meter_event_name") or values.get("meter_id"):
                driver = "meters"
            elif values.get("subscription_item_id"):
                driver = "legacy"
            elif values.get("price_id"):
                driver = "price"  # decided from the price below
            else:
                raise InvalidInput(
                    "a target is required: meterEventName or meterId (Billing Meters), "
                    "or subscriptionItemId/priceId (legacy usage records)",
                    code="missing_target",
                    param="meterEventName",
                )
        account = self.accounts.live
        if account is not None:
            driver = await self._check_live(values, aggregation, driver, account)
        elif driver == "price":
            raise InvalidInput(
                "Stripe is not configured, so the target cannot be read from the price; "
                "give meterEventName or subscriptionItemId",
                code="missing_target",
                param="meterEventName",
            )
        if driver in ("meters", "meter_stream") and not values.get("meter_event_name"):
            raise InvalidInput(
                "meterEventName is required for Billing Meters",
                code="missing_field",
                param="meterEventName",
            )
        if driver == "legacy" and not (
            values.get("subscription_item_id") or values.get("price_id")
        ):
            raise InvalidInput(
                "legacy mappings need subscriptionItemId or priceId",
                code="missing_field",
                param="subscriptionItemId",
            )
        values["driver"] = driver
        if values.get("shadow") and self.accounts.shadow is not None and driver != "legacy":
            await self._check_shadow(values, aggregation)
        return values

    async def _check_live(
        self, values: dict[str, Any], aggregation: Aggregation, driver: str, account: StripeAccount
    ) -> str:
        options = _options(values.get("stripe_account"))
        try:
            if values.get("price_id"):
                price = await _retrieve(account, "prices", values["price_id"], options, "priceId")
                recurring = price.get("recurring") or {}
                if values.get("currency") is None:
                    values["currency"] = price.get("currency")
                price_meter = recurring.get("meter")
                if driver == "price":
                    driver = "meters" if price_meter else "legacy"
                if price_meter and not values.get("meter_id"):
                    values["meter_id"] = price_meter
                elif price_meter and values.get("meter_id") != price_meter:
                    raise InvalidInput(
                        f"price {values['price_id']} is metered by {price_meter}, "
                        f"not {values['meter_id']}",
                        code="meter_price_mismatch",
                        param="meterId",
                    )
            if driver in ("meters", "meter_stream"):
                meter = await _find_meter(account, values, options, "")
                _check_formula(meter, aggregation, "meterId")
                values["meter_id"] = meter["id"]
                values["meter_event_name"] = meter["event_name"]
            elif driver == "legacy" and values.get("subscription_item_id"):
                await _retrieve(
                    account,
                    "subscription_items",
                    values["subscription_item_id"],
                    options,
                    "subscriptionItemId",
                )
        except Permanent as exc:
            raise InvalidInput(
                f"Stripe refused the lookup: {exc.message}", code="stripe_error"
            ) from exc
        except StripeCallError as exc:
            raise StripeUnavailable(f"Stripe could not be reached: {exc.reason}") from exc
        return driver

    async def _check_shadow(self, values: dict[str, Any], aggregation: Aggregation) -> None:
        account = self.accounts.shadow
        assert account is not None
        options = _options(values.get("shadow_stripe_account") or values.get("stripe_account"))
        probe = {
            "meter_event_name": values.get("shadow_meter_event_name")
            or values.get("meter_event_name")
        }
        try:
            meter = await _find_meter(account, probe, options, "shadow")
        except InvalidInput:
            raise
        except Permanent as exc:
            raise InvalidInput(
                f"Stripe (test mode) refused the lookup: {exc.message}", code="stripe_error"
            ) from exc
        except StripeCallError as exc:
            raise StripeUnavailable(f"Stripe could not be reached: {exc.reason}") from exc
        _check_formula(meter, aggregation, "shadowMeterEventName")


def _options(stripe_account: str | None) -> dict[str, Any]:
    connected = connect_account(stripe_account)
    return {"stripe_account": connected} if connected else {}


async def _retrieve(
    account: StripeAccount, kind: str, object_id: str, options: dict[str, Any], param: str
) -> dict[str, Any]:
    try:
        with map_stripe_errors():
            response = await account.client.raw_request_async(
                "get", f"/v1/{kind}/{object_id}", **options
            )
    except StripeNotFound as exc:
        raise InvalidInput(
            f"{param} {object_id!r} does not exist in Stripe", code="stripe_not_found", param=param
        ) from exc
    data: dict[str, Any] = response.data
    return data


async def _find_meter(
    account: StripeAccount, values: dict[str, Any], options: dict[str, Any], prefix: str
) -> dict[str, Any]:
    """The meter named by id or by event name (active); its event name must agree."""
    id_param = f"{prefix}MeterId" if prefix else "meterId"
    name_param = f"{prefix}MeterEventName" if prefix else "meterEventName"
    if values.get("meter_id"):
        meter = await _retrieve(account, "billing/meters", values["meter_id"], options, id_param)
        name = values.get("meter_event_name")
        if name and name != meter["event_name"]:
            raise InvalidInput(
                f"meter {meter['id']} has event_name {meter['event_name']!r}, not {name!r}",
                code="meter_event_name_mismatch",
                param=name_param,
            )
        return meter
    name = values.get("meter_event_name")
    starting_after: str | None = None
    while True:
        params: dict[str, Any] = {"status": "active", "limit": 100}
        if starting_after:
            params["starting_after"] = starting_after
        with map_stripe_errors():
            response = await account.client.raw_request_async(
                "get", "/v1/billing/meters", **params, **options
            )
        page: dict[str, Any] = response.data
        for meter in page["data"]:
            if meter["event_name"] == name:
                return dict(meter)
        if not page.get("has_more") or not page["data"]:
            break
        starting_after = page["data"][-1]["id"]
    raise InvalidInput(
        f"no active Stripe meter has event_name {name!r}", code="meter_not_found", param=name_param
    )


def _check_formula(meter: dict[str, Any], aggregation: Aggregation, param: str) -> None:
    formula = meter["default_aggregation"]["formula"]
    wanted = METER_FORMULA[aggregation]
    if formula != wanted:
        raise InvalidInput(
            f"a {aggregation.value} metric is published to a {wanted!r} meter; "
            f"meter {meter['id']} uses {formula!r}",
            code="meter_formula_mismatch",
            param=param,
        )
    if meter.get("status", "active") != "active":
        raise InvalidInput(f"meter {meter['id']} is not active", code="meter_inactive", param=param)
