"""Customers, products and prices."""

from __future__ import annotations

from typing import Any

from stripemeter.stripe.fake.context import RequestContext, list_object
from stripemeter.stripe.fake.errors import invalid_request, no_such
from stripemeter.stripe.fake.state import new_id
from stripemeter.stripe.fake.types import JSONObject


def create_customer(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Create a customer, optionally attached to a test clock."""
    clock = params.get("test_clock")
    if clock and ctx.state.get("test_clocks", clock, ctx.livemode) is None:
        raise no_such("test_clock", clock, param="test_clock")
    customer = {
        "id": new_id("cus"),
        "object": "customer",
        "created": ctx.time_for_clock(clock),
        "livemode": ctx.livemode,
        "email": params.get("email"),
        "name": params.get("name"),
        "description": params.get("description"),
        "metadata": params.get("metadata", {}),
        "test_clock": clock,
    }
    return ctx.state.put("customers", customer)


def get_customer(ctx: RequestContext, customer_id: str) -> JSONObject:
    """Return a customer or Stripe's 404."""
    customer = ctx.state.get("customers", customer_id, ctx.livemode)
    if customer is None:
        raise no_such("customer", customer_id)
    return customer


def update_customer(ctx: RequestContext, customer_id: str, params: JSONObject) -> JSONObject:
    """Update fields; metadata keys merge and an empty value deletes a key, as in Stripe."""
    customer = get_customer(ctx, customer_id)
    for key in ("email", "name", "description"):
        if key in params:
            customer[key] = params[key] or None
    if "metadata" in params:
        customer["metadata"] = merge_metadata(customer.get("metadata", {}), params["metadata"])
    return customer


def list_customers(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """List customers, filtered by email or test clock."""
    data = [
        c
        for c in ctx.state.all("customers", ctx.livemode)
        if params.get("email") in (None, c.get("email"))
        and params.get("test_clock") in (None, c.get("test_clock"))
    ]
    return list_object("/v1/customers", data, params)


def merge_metadata(current: dict[str, str], update: dict[str, str]) -> dict[str, str]:
    """Apply a Stripe metadata update: empty values unset keys; ``metadata=`` clears all."""
    if not update:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def create_product(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Create a product."""
    product_id = params.get("id") or new_id("prod")
    if product_id in ctx.state.objects["products"]:
        raise invalid_request(
            f"Product already exists: {product_id}", param="id", code="resource_already_exists"
        )
    product = {
        "id": product_id,
        "object": "product",
        "created": ctx.now,
        "livemode": ctx.livemode,
        "name": params["name"],
        "active": params.get("active", True),
        "description": params.get("description"),
        "metadata": params.get("metadata", {}),
    }
    return ctx.state.put("products", product)


def get_product(ctx: RequestContext, product_id: str) -> JSONObject:
    """Return a product or Stripe's 404."""
    product = ctx.state.get("products", product_id, ctx.livemode)
    if product is None:
        raise no_such("product", product_id)
    return product


def list_products(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """List products."""
    data = [
        p
        for p in ctx.state.all("products", ctx.livemode)
        if params.get("active") in (None, p["active"])
    ]
    return list_object("/v1/products", data, params)


def create_price(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Create a price: per-unit, package (``transform_quantity``) or tiered; metered by a meter."""
    product_id = _price_product(ctx, params)
    scheme = params.get("billing_scheme", "per_unit")
    recurring = params.get("recurring")
    if scheme == "tiered":
        tiers = _check_tiers(params)
        unit_amount: Any = None
        unit_amount_decimal: Any = None
    else:
        if "tiers" in params or "tiers_mode" in params:
            raise invalid_request("Tiers require billing_scheme=tiered.", param="billing_scheme")
        tiers = None
        if "unit_amount" in params and "unit_amount_decimal" in params:
            raise invalid_request(
                "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
                param="unit_amount",
            )
        if "unit_amount" not in params and "unit_amount_decimal" not in params:
            raise invalid_request(
                "Missing required param: unit_amount.",
                param="unit_amount",
                code="parameter_missing",
            )
        exact = params.get("unit_amount_decimal", params.get("unit_amount"))
        unit_amount = int(exact) if exact is not None and exact == int(exact) else None
        unit_amount_decimal = str(exact)
    if params.get("transform_quantity") and scheme == "tiered":
        raise invalid_request(
            "transform_quantity cannot be combined with tiers.", param="transform_quantity"
        )
    if recurring:
        recurring = {
            "interval": recurring["interval"],
            "interval_count": recurring.get("interval_count", 1),
            "usage_type": recurring.get("usage_type", "licensed"),
            "meter": recurring.get("meter"),
        }
        if recurring["meter"]:
            if recurring["usage_type"] != "metered":
                raise invalid_request(
                    "A meter requires recurring[usage_type]=metered.", param="recurring[meter]"
                )
            if ctx.state.get("meters", recurring["meter"], ctx.livemode) is None:
                raise no_such("billing.meter", recurring["meter"], param="recurring[meter]")
    price = {
        "id": new_id("price"),
        "object": "price",
        "created": ctx.now,
        "livemode": ctx.livemode,
        "active": params.get("active", True),
        "currency": params["currency"].lower(),
        "product": product_id,
        "billing_scheme": scheme,
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_amount_decimal,
        "tiers_mode": params.get("tiers_mode"),
        "tiers": tiers,
        "transform_quantity": params.get("transform_quantity"),
        "recurring": recurring,
        "type": "recurring" if recurring else "one_time",
        "nickname": params.get("nickname"),
        "lookup_key": params.get("lookup_key"),
        "metadata": params.get("metadata", {}),
    }
    return ctx.state.put("prices", price)


def _price_product(ctx: RequestContext, params: JSONObject) -> str:
    if "product" in params:
        return str(get_product(ctx, params["product"])["id"])
    if "product_data" in params:
        return str(create_product(ctx, dict(params["product_data"]))["id"])
    raise invalid_request(
        "Missing required param: product.", param="product", code="parameter_missing"
    )


def _check_tiers(params: JSONObject) -> list[JSONObject]:
    if "tiers_mode" not in params:
        raise invalid_request(
            "Missing required param: tiers_mode.", param="tiers_mode", code="parameter_missing"
        )
    tiers = params.get("tiers") or []
    if not tiers:
        raise invalid_request(
            "Missing required param: tiers.", param="tiers", code="parameter_missing"
        )
    rendered: list[JSONObject] = []
    previous = 0
    for index, tier in enumerate(tiers):
        up_to = tier["up_to"]
        last = index == len(tiers) - 1
        if (up_to == "inf") != last:
            raise invalid_request(
                "Only the last tier may (and must) have up_to=inf.", param=f"tiers[{index}][up_to]"
            )
        if up_to != "inf" and up_to <= previous:
            raise invalid_request(
                "Tiers must be in increasing order of up_to.", param=f"tiers[{index}][up_to]"
            )
        previous = up_to if up_to != "inf" else previous
        rendered.append(
            {
                "up_to": None if up_to == "inf" else up_to,
                "unit_amount": tier.get("unit_amount"),
                "unit_amount_decimal": str(
                    tier.get("unit_amount_decimal", tier.get("unit_amount", 0))
                ),
                "flat_amount": tier.get("flat_amount"),
                "flat_amount_decimal": str(
                    tier.get("flat_amount_decimal", tier.get("flat_amount", 0))
                ),
            }
        )
    return rendered


def get_price(ctx: RequestContext, price_id: str, *, param: str = "id") -> JSONObject:
    """Return a price or Stripe's 404."""
    price = ctx.state.get("prices", price_id, ctx.livemode)
    if price is None:
        raise no_such("price", price_id, param=param)
    return price


def list_prices(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """List prices, optionally of one product."""
    data = [
        p
        for p in ctx.state.all("prices", ctx.livemode)
        if params.get("product") in (None, p["product"])
        and params.get("active") in (None, p["active"])
    ]
    return list_object("/v1/prices", data, params)
