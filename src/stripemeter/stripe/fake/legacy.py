"""Legacy usage records on metered subscription items (removed from Stripe in 2025-03-31.basil)."""

from __future__ import annotations

from stripemeter.stripe.fake.context import RequestContext, list_object
from stripemeter.stripe.fake.errors import invalid_request, no_such
from stripemeter.stripe.fake.state import FakeStripeState, new_id
from stripemeter.stripe.fake.types import JSONObject


def _metered_item(ctx: RequestContext, item_id: str) -> JSONObject:
    item = ctx.state.get("subscription_items", item_id, ctx.livemode)
    if item is None:
        raise no_such("subscription_item", item_id, param="subscription_item")
    recurring = item["price"].get("recurring") or {}
    if recurring.get("usage_type") != "metered" or recurring.get("meter"):
        raise invalid_request(
            "Usage records can only be created on subscription items with a metered price "
            "that is not backed by a billing meter.",
            param="subscription_item",
        )
    return item


def create_usage_record(ctx: RequestContext, item_id: str, params: JSONObject) -> JSONObject:
    """Record usage: ``increment`` adds to, ``set`` replaces, the quantity at that timestamp."""
    item = _metered_item(ctx, item_id)
    subscription = ctx.state.objects["subscriptions"][item["subscription"]]
    now = ctx.time_for_clock(subscription.get("test_clock"))
    timestamp = params.get("timestamp", "now")
    timestamp = now if timestamp == "now" else timestamp
    if params["quantity"] < 0:
        raise invalid_request("Invalid quantity: must be at least 0.", param="quantity")
    if not item["current_period_start"] <= timestamp <= now:
        raise invalid_request(
            "Cannot create the usage record with this timestamp because timestamps must be within "
            "the subscription item's current period and not in the future.",
            param="timestamp",
        )
    record = {
        "id": new_id("mbur"),
        "object": "usage_record",
        "livemode": ctx.livemode,
        "quantity": params["quantity"],
        "subscription_item": item_id,
        "timestamp": timestamp,
    }
    ctx.state.usage_records.append(record | {"_action": params.get("action", "increment")})
    return record


def usage_total(state: FakeStripeState, item_id: str, start: int, end: int) -> int:
    """Total usage of an item over ``[start, end)``: per-timestamp quantities, summed."""
    at: dict[int, int] = {}
    for record in state.usage_records:
        if record["subscription_item"] != item_id or not start <= record["timestamp"] < end:
            continue
        if record["_action"] == "set":
            at[record["timestamp"]] = record["quantity"]
        else:
            at[record["timestamp"]] = at.get(record["timestamp"], 0) + record["quantity"]
    return sum(at.values())


def usage_record_summaries(ctx: RequestContext, item_id: str, params: JSONObject) -> JSONObject:
    """One summary per period of the item, newest (the current one) first."""
    item = _metered_item(ctx, item_id)
    periods = [(item["current_period_start"], item["current_period_end"], None)]
    periods += [
        (p["start"], p["end"], p["invoice"]) for p in reversed(item.get("_past_periods", []))
    ]
    data = [
        {
            "id": f"sis_{item_id[3:]}{start}",
            "object": "usage_record_summary",
            "invoice": invoice,
            "livemode": ctx.livemode,
            "period": {"start": start, "end": end},
            "subscription_item": item_id,
            "total_usage": usage_total(ctx.state, item_id, start, end),
        }
        for start, end, invoice in periods
    ]
    return list_object(f"/v1/subscription_items/{item_id}/usage_record_summaries", data, params)
