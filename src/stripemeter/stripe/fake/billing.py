"""Subscriptions, test clocks and the invoices they produce at each period end."""

from __future__ import annotations

from decimal import Decimal

from stripemeter.domain.pricing import price_from_stripe, price_line
from stripemeter.stripe.fake.catalog import get_customer, get_price
from stripemeter.stripe.fake.context import RequestContext, list_object
from stripemeter.stripe.fake.errors import invalid_request, missing_param, no_such
from stripemeter.stripe.fake.events import public, raise_event
from stripemeter.stripe.fake.legacy import usage_total
from stripemeter.stripe.fake.meters import meter_total
from stripemeter.stripe.fake.periods import shift
from stripemeter.stripe.fake.state import new_id
from stripemeter.stripe.fake.types import JSONObject


def create_subscription(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Create an active subscription whose items share one anchored billing period."""
    customer = get_customer(ctx, params["customer"])
    if not params.get("items"):
        raise missing_param("items")
    prices = [
        get_price(ctx, item["price"], param=f"items[{i}][price]")
        for i, item in enumerate(params["items"])
    ]
    cadences = {
        (p["recurring"]["interval"], p["recurring"]["interval_count"])
        for p in prices
        if p["recurring"]
    }
    if len(cadences) != 1 or any(not p["recurring"] for p in prices):
        raise invalid_request(
            "All items must have recurring prices with the same interval.", param="items"
        )
    interval, count = cadences.pop()
    clock_id = customer.get("test_clock")
    now = ctx.time_for_clock(clock_id)
    anchor = params.get("billing_cycle_anchor", now)
    if anchor < now or anchor > shift(now, interval, count, 1):
        raise invalid_request(
            "billing_cycle_anchor must be between now and the end of the first full period.",
            param="billing_cycle_anchor",
        )
    end = anchor if anchor > now else shift(anchor, interval, count, 1)
    subscription_id = new_id("sub")
    subscription = {
        "id": subscription_id,
        "object": "subscription",
        "created": now,
        "start_date": now,
        "livemode": ctx.livemode,
        "customer": customer["id"],
        "status": "active",
        "billing_cycle_anchor": anchor,
        "collection_method": params.get("collection_method", "charge_automatically"),
        "currency": prices[0]["currency"],
        "metadata": params.get("metadata", {}),
        "test_clock": clock_id,
        "_cadence": [interval, count],
        "_period_index": 0 if anchor > now else 1,
        "_upcoming_sent_for": None,
    }
    ctx.state.put("subscriptions", subscription)
    for item_params, price in zip(params["items"], prices, strict=True):
        metered = price["recurring"]["usage_type"] == "metered"
        ctx.state.put(
            "subscription_items",
            {
                "id": new_id("si"),
                "object": "subscription_item",
                "created": now,
                "livemode": ctx.livemode,
                "subscription": subscription_id,
                "price": price,
                "quantity": None if metered else item_params.get("quantity", 1),
                "metadata": item_params.get("metadata", {}),
                "current_period_start": now,
                "current_period_end": end,
                "_past_periods": [],
            },
        )
    return render_subscription(ctx, subscription)


def _items(ctx: RequestContext, subscription_id: str) -> list[JSONObject]:
    items = ctx.state.objects["subscription_items"].values()
    return sorted(
        (i for i in items if i["subscription"] == subscription_id), key=lambda i: i["created"]
    )


def render_subscription(ctx: RequestContext, subscription: JSONObject) -> JSONObject:
    """Return the subscription as Stripe shows it, items included."""
    items = [public(i) for i in _items(ctx, subscription["id"])]
    url = f"/v1/subscription_items?subscription={subscription['id']}"
    return public(subscription) | {
        "items": {"object": "list", "data": items, "has_more": False, "url": url}
    }


def get_subscription(ctx: RequestContext, subscription_id: str) -> JSONObject:
    """Return a subscription or Stripe's 404."""
    subscription = ctx.state.get("subscriptions", subscription_id, ctx.livemode)
    if subscription is None:
        raise no_such("subscription", subscription_id)
    return render_subscription(ctx, subscription)


def list_subscriptions(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """List subscriptions by customer or test clock."""
    data = [
        render_subscription(ctx, s)
        for s in ctx.state.all("subscriptions", ctx.livemode)
        if params.get("customer") in (None, s["customer"])
        and params.get("test_clock") in (None, s["test_clock"])
    ]
    return list_object("/v1/subscriptions", data, params)


def get_subscription_item(ctx: RequestContext, item_id: str) -> JSONObject:
    """Return a subscription item or Stripe's 404."""
    item = ctx.state.get("subscription_items", item_id, ctx.livemode)
    if item is None:
        raise no_such("subscription_item", item_id)
    return public(item)


def create_test_clock(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Create a test clock frozen at ``frozen_time``."""
    clock = {
        "id": new_id("clock"),
        "object": "test_helpers.test_clock",
        "created": ctx.now,
        "deletes_after": ctx.now + 30 * 86400,
        "frozen_time": params["frozen_time"],
        "livemode": False,
        "name": params.get("name"),
        "status": "ready",
        "status_details": {},
    }
    if ctx.livemode:
        raise invalid_request("Test clocks are only available in test mode.")
    return ctx.state.put("test_clocks", clock)


def get_test_clock(ctx: RequestContext, clock_id: str) -> JSONObject:
    """Return a test clock or Stripe's 404."""
    clock = ctx.state.get("test_clocks", clock_id, ctx.livemode)
    if clock is None:
        raise no_such("test_helpers.test_clock", clock_id)
    return clock


def advance_test_clock(ctx: RequestContext, clock_id: str, params: JSONObject) -> JSONObject:
    """Move a test clock forward and run every billing step its subscriptions pass."""
    clock = get_test_clock(ctx, clock_id)
    if params["frozen_time"] <= clock["frozen_time"]:
        raise invalid_request(
            "The test clock can only be advanced forward in time.", param="frozen_time"
        )
    clock["frozen_time"] = params["frozen_time"]
    run_billing(ctx, clock_id, clock["frozen_time"])
    return clock


def run_billing(ctx: RequestContext, clock_id: str | None, until: int) -> None:
    """Send upcoming notices, draft invoices at period ends, finalize due drafts, up to ``until``."""
    for subscription in ctx.state.all("subscriptions", ctx.livemode):
        if subscription["test_clock"] == clock_id and subscription["status"] == "active":
            _cycle(ctx, subscription, until)
    for invoice in sorted(ctx.state.all("invoices", ctx.livemode), key=lambda i: i["created"]):
        due = invoice.get("automatically_finalizes_at")
        waiting = invoice["status"] == "draft" and invoice["auto_advance"]
        if invoice["test_clock"] == clock_id and waiting and due is not None and due <= until:
            finalize_invoice(ctx, invoice, due)


def _cycle(ctx: RequestContext, subscription: JSONObject, until: int) -> None:
    upcoming_lead = ctx.state.settings.upcoming_days * 86400
    while True:
        items = _items(ctx, subscription["id"])
        start, end = items[0]["current_period_start"], items[0]["current_period_end"]
        if until >= end - upcoming_lead and subscription["_upcoming_sent_for"] != end:
            subscription["_upcoming_sent_for"] = end
            preview = _build_invoice(ctx, subscription, items, start, end, preview=True)
            raise_event(ctx, "invoice.upcoming", preview, max(start, end - upcoming_lead))
        if until < end:
            return
        invoice = ctx.state.put(
            "invoices", _build_invoice(ctx, subscription, items, start, end, preview=False)
        )
        raise_event(ctx, "invoice.created", invoice, end)
        interval, count = subscription["_cadence"]
        subscription["_period_index"] += 1
        next_end = shift(
            subscription["billing_cycle_anchor"], interval, count, subscription["_period_index"]
        )
        for item in items:
            item["_past_periods"].append({"start": start, "end": end, "invoice": invoice["id"]})
            item["current_period_start"], item["current_period_end"] = end, next_end


def _line(
    ctx: RequestContext, subscription: JSONObject, item: JSONObject, start: int, end: int
) -> JSONObject:
    price = item["price"]
    recurring = price["recurring"]
    if recurring["usage_type"] == "metered":
        meter = (
            ctx.state.get("meters", recurring["meter"], ctx.livemode)
            if recurring.get("meter")
            else None
        )
        if meter is not None:
            quantity = meter_total(ctx, meter, subscription["customer"], start, end)
        else:
            quantity = Decimal(usage_total(ctx.state, item["id"], start, end))
        period = {"start": start, "end": end}
    else:
        # Licensed items bill in advance for the period that starts now.
        quantity = Decimal(item["quantity"] or 0)
        interval, count = subscription["_cadence"]
        period = {
            "start": end,
            "end": shift(
                subscription["billing_cycle_anchor"],
                interval,
                count,
                subscription["_period_index"] + 1,
            ),
        }
    amount = line_amount(price, quantity)
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": price["currency"],
        "description": f"{quantity} x {price.get('nickname') or price['product']}",
        "livemode": ctx.livemode,
        "metadata": {},
        "period": period,
        "quantity": int(quantity) if quantity == quantity.to_integral_value() else None,
        "quantity_decimal": str(quantity),
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price["id"], "product": price["product"]},
            "unit_amount_decimal": price.get("unit_amount_decimal"),
        },
        "parent": {
            "type": "subscription_item_details",
            "subscription_item_details": {
                "subscription": subscription["id"],
                "subscription_item": item["id"],
            },
        },
    }


def line_amount(price: JSONObject, quantity: Decimal) -> int:
    """Stripe's amount for ``quantity`` of ``price``, priced by ``stripemeter.domain.pricing``.

    The fake prices draft invoices with the same library as projections and simulations, so a
    pricing rule has one implementation; a negative period total bills as zero, as at Stripe.
    """
    return price_line(price_from_stripe(price), max(quantity, Decimal(0))).amount


def _build_invoice(
    ctx: RequestContext,
    subscription: JSONObject,
    items: list[JSONObject],
    start: int,
    end: int,
    *,
    preview: bool,
) -> JSONObject:
    lines = [_line(ctx, subscription, item, start, end) for item in items]
    total = sum(line["amount"] for line in lines)
    invoice_id = None if preview else new_id("in")
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "StripeMeter fake Stripe",
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_paid_off_stripe": 0,
        "amount_remaining": total,
        "amount_shipping": 0,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": not preview,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "automatically_finalizes_at": None if preview else end + ctx.state.settings.finalize_delay,
        "billing_reason": "upcoming" if preview else "subscription_cycle",
        "collection_method": subscription["collection_method"],
        "created": end,
        "currency": subscription["currency"],
        "customer": subscription["customer"],
        "default_tax_rates": [],
        "discounts": [],
        "issuer": {"type": "self"},
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": ctx.livemode,
        "metadata": {},
        "number": None,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": subscription["id"],
                "metadata": subscription["metadata"],
            },
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_start": start,
        "period_end": end,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "starting_balance": 0,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": total,
        "total": total,
        "test_clock": subscription["test_clock"],
        "webhooks_delivered_at": None,
    }


def finalize_invoice(ctx: RequestContext, invoice: JSONObject, at: int) -> JSONObject:
    """Finalize a draft: it gets a number, becomes ``open`` and ``invoice.finalized`` is sent."""
    if invoice["status"] != "draft":
        raise invalid_request(
            f"This invoice is already {invoice['status']}.", code="invoice_not_editable"
        )
    invoice["status"] = "open"
    invoice["number"] = (
        f"FAKE-{len([i for i in ctx.state.objects['invoices'].values() if i['number']]) + 1:04d}"
    )
    invoice["status_transitions"]["finalized_at"] = at
    invoice["automatically_finalizes_at"] = None
    raise_event(ctx, "invoice.finalized", invoice, at)
    return invoice


def get_invoice(ctx: RequestContext, invoice_id: str) -> JSONObject:
    """Return an invoice or Stripe's 404."""
    invoice = ctx.state.get("invoices", invoice_id, ctx.livemode)
    if invoice is None:
        raise no_such("invoice", invoice_id)
    return invoice


def update_invoice(ctx: RequestContext, invoice_id: str, params: JSONObject) -> JSONObject:
    """Update ``auto_advance``, description or metadata of an invoice."""
    invoice = get_invoice(ctx, invoice_id)
    if "auto_advance" in params:
        invoice["auto_advance"] = params["auto_advance"]
        if invoice["status"] == "draft":
            due = invoice["period_end"] + ctx.state.settings.finalize_delay
            invoice["automatically_finalizes_at"] = due if params["auto_advance"] else None
    if "description" in params:
        invoice["description"] = params["description"] or None
    if "metadata" in params:
        invoice["metadata"] = {**invoice["metadata"], **params["metadata"]}
    return invoice


def list_invoices(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """List invoices by customer, subscription or status."""
    data = [
        i
        for i in ctx.state.all("invoices", ctx.livemode)
        if params.get("customer") in (None, i["customer"])
        and params.get("status") in (None, i["status"])
        and params.get("subscription")
        in (None, i["parent"]["subscription_details"]["subscription"])
    ]
    return list_object("/v1/invoices", data, params)
