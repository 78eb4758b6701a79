"""Billing meters, meter events (dedupe, time window), adjustments and event summaries."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

from stripemeter.stripe.fake.context import RequestContext, list_object
from stripemeter.stripe.fake.errors import invalid_request, missing_param, no_such
from stripemeter.stripe.fake.state import new_id
from stripemeter.stripe.fake.types import JSONObject
from stripemeter.stripe.fake.validation import parse_decimal

PAST_WINDOW = 35 * 86400  # seconds: Stripe accepts timestamps up to 35 days old
FUTURE_WINDOW = 5 * 60  # seconds: and up to 5 minutes ahead
DEDUPE_WINDOW = 86400  # seconds an identifier stays taken
CANCEL_WINDOW = 86400  # seconds after receipt an event can still be cancelled
GROUPING = {"hour": 3600, "day": 86400}


def create_meter(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Create a meter; its event_name must not be used by another active meter."""
    for other in ctx.state.all("meters", ctx.livemode):
        if other["event_name"] == params["event_name"] and other["status"] == "active":
            raise invalid_request(
                f"An active meter with event_name '{params['event_name']}' already exists.",
                param="event_name",
            )
    meter = {
        "id": new_id("mtr"),
        "object": "billing.meter",
        "created": ctx.now,
        "updated": ctx.now,
        "livemode": ctx.livemode,
        "display_name": params["display_name"],
        "event_name": params["event_name"],
        "event_time_window": params.get("event_time_window"),
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "default_aggregation": {"formula": params["default_aggregation"]["formula"]},
        "customer_mapping": params.get(
            "customer_mapping", {"event_payload_key": "stripe_customer_id", "type": "by_id"}
        ),
        "value_settings": params.get("value_settings", {"event_payload_key": "value"}),
    }
    return ctx.state.put("meters", meter)


def get_meter(ctx: RequestContext, meter_id: str) -> JSONObject:
    """Return a meter or Stripe's 404."""
    meter = ctx.state.get("meters", meter_id, ctx.livemode)
    if meter is None:
        raise no_such("billing.meter", meter_id)
    return meter


def update_meter(ctx: RequestContext, meter_id: str, params: JSONObject) -> JSONObject:
    """Rename a meter (the only mutable field)."""
    meter = get_meter(ctx, meter_id)
    if "display_name" in params:
        meter["display_name"] = params["display_name"]
        meter["updated"] = ctx.now
    return meter


def set_meter_status(ctx: RequestContext, meter_id: str, active: bool) -> JSONObject:
    """Deactivate or reactivate a meter."""
    meter = get_meter(ctx, meter_id)
    meter["status"] = "active" if active else "inactive"
    meter["status_transitions"] = {"deactivated_at": None if active else ctx.now}
    meter["updated"] = ctx.now
    return meter


def list_meters(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """List meters, optionally by status."""
    data = [
        m
        for m in ctx.state.all("meters", ctx.livemode)
        if params.get("status") in (None, m["status"])
    ]
    return list_object("/v1/billing/meters", data, params)


def _meter_for(ctx: RequestContext, event_name: str) -> JSONObject:
    for meter in ctx.state.all("meters", ctx.livemode):
        if meter["event_name"] == event_name and meter["status"] == "active":
            return meter
    raise invalid_request(
        f"No active meter was found for event_name '{event_name}'.",
        param="event_name",
        code="no_meter",
    )


def record_meter_event(
    ctx: RequestContext,
    event_name: str,
    payload: dict[str, str],
    identifier: str | None,
    timestamp: int | None,
    *,
    v2: bool = False,
) -> JSONObject:
    """Validate and store one meter event (v1 and v2 share these rules); return the v1 object."""
    meter = _meter_for(ctx, event_name)
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    customer = payload.get(customer_key)
    if not customer:
        raise invalid_request(
            f"The payload is missing the customer key '{customer_key}'.",
            param=f"payload[{customer_key}]",
            code="meter_event_no_customer_defined",
        )
    if value_key in payload:
        value = parse_decimal(payload[value_key], f"payload[{value_key}]")
    elif meter["default_aggregation"]["formula"] == "count":
        value = Decimal(1)  # a count meter does not need a value
    else:
        raise invalid_request(
            f"The payload is missing the value key '{value_key}'.",
            param=f"payload[{value_key}]",
            code="meter_event_value_not_found",
        )
    # Customers on a test clock live at the clock's time, so the window follows it.
    reference = ctx.time_for_customer(customer)
    timestamp = reference if timestamp is None else timestamp
    if timestamp < reference - PAST_WINDOW:
        raise invalid_request(
            "Timestamp must be within the past 35 calendar days.",
            param="timestamp",
            code="timestamp_too_far_in_past",
        )
    if timestamp > reference + FUTURE_WINDOW:
        raise invalid_request(
            "Timestamp must not be more than 5 minutes in the future.",
            param="timestamp",
            code="timestamp_in_future",
        )
    identifier = identifier or str(uuid.uuid4())
    key = f"{ctx.livemode}:{identifier}"
    previous = ctx.state.identifiers.get(key)
    if (
        previous is not None
        and ctx.now - ctx.state.meter_events[previous]["received"] < DEDUPE_WINDOW
    ):
        error = invalid_request(
            f"An event already exists with identifier {identifier}.",
            param="identifier",
            code="duplicate_meter_event" if v2 else None,  # v1 sends no code, only the message
        )
        error.headers["Stripe-Should-Retry"] = "false"
        raise error
    event = {
        "object": "billing.meter_event",
        "created": ctx.now,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": ctx.livemode,
        "payload": dict(payload),
        "timestamp": timestamp,
    }
    ctx.state.identifiers[key] = len(ctx.state.meter_events)
    ctx.state.meter_events.append(
        {
            "event": event,
            "meter": meter["id"],
            "customer": customer,
            "value": str(value),
            "received": ctx.now,
            "cancelled": False,
        }
    )
    return event


def cancel_meter_event(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Cancel one event by identifier, only within 24 h of its receipt."""
    identifier = (params.get("cancel") or {}).get("identifier")
    if not identifier:
        raise missing_param("cancel[identifier]")
    meter = _meter_for(ctx, params["event_name"])
    index = ctx.state.identifiers.get(f"{ctx.livemode}:{identifier}")
    stored = ctx.state.meter_events[index] if index is not None else None
    if stored is None or stored["meter"] != meter["id"]:
        raise invalid_request(
            f"No meter event with identifier '{identifier}' was found for event_name "
            f"'{params['event_name']}'.",
            param="cancel[identifier]",
            code="resource_missing",
        )
    if ctx.now - stored["received"] > CANCEL_WINDOW:
        raise invalid_request(
            "Meter events can only be cancelled within 24 hours of being received.",
            param="cancel[identifier]",
        )
    if stored["cancelled"]:
        raise invalid_request(
            f"The meter event '{identifier}' is already cancelled.", param="cancel[identifier]"
        )
    stored["cancelled"] = True
    return {
        "object": "billing.meter_event_adjustment",
        "event_name": params["event_name"],
        "livemode": ctx.livemode,
        "status": "complete",
        "type": "cancel",
        "cancel": {"identifier": identifier},
    }


def aggregate(formula: str, events: list[JSONObject]) -> Decimal:
    """Fold stored events with a meter formula (sum, count, last by timestamp then receipt)."""
    if formula == "count":
        return Decimal(len(events))
    if formula == "last":
        if not events:
            return Decimal(0)
        latest = max(events, key=lambda e: (e["event"]["timestamp"], e["received"]))
        return Decimal(latest["value"])
    return sum((Decimal(e["value"]) for e in events), Decimal(0))


def meter_total(
    ctx: RequestContext, meter: JSONObject, customer: str, start: int, end: int
) -> Decimal:
    """Aggregate a customer's non-cancelled events with ``start <= timestamp < end``."""
    return aggregate(
        meter["default_aggregation"]["formula"], _events(ctx, meter, customer, start, end)
    )


def _events(
    ctx: RequestContext, meter: JSONObject, customer: str, start: int, end: int
) -> list[JSONObject]:
    return [
        e
        for e in ctx.state.meter_events
        if e["meter"] == meter["id"]
        and e["customer"] == customer
        and not e["cancelled"]
        and start <= e["event"]["timestamp"] < end
    ]


def event_summaries(ctx: RequestContext, meter_id: str, params: JSONObject) -> JSONObject:
    """Summaries over ``[start_time, end_time)``, one in all or one per hour/day window."""
    meter = get_meter(ctx, meter_id)
    start, end = params["start_time"], params["end_time"]
    window = params.get("value_grouping_window")
    step = GROUPING[window] if window else 60
    for name, value in (("start_time", start), ("end_time", end)):
        if value % step:
            unit = window or "minute"
            raise invalid_request(f"{name} must be aligned to {unit} boundaries.", param=name)
    if start >= end:
        raise invalid_request("start_time must be before end_time.", param="start_time")
    bounds = (
        [(s, min(s + step, end)) for s in range(start, end, step)] if window else [(start, end)]
    )
    events = _events(ctx, meter, params["customer"], start, end)
    summaries = []
    for lo, hi in bounds:
        in_window = [e for e in events if lo <= e["event"]["timestamp"] < hi]
        if window and not in_window:
            continue  # grouped summaries list only windows that have usage
        digest = hashlib.sha256(f"{meter_id}:{params['customer']}:{lo}:{hi}".encode()).hexdigest()[
            :24
        ]
        summaries.append(
            {
                "id": f"mtrusg_{digest}",
                "object": "billing.meter_event_summary",
                "aggregated_value": aggregate(meter["default_aggregation"]["formula"], in_window),
                "start_time": lo,
                "end_time": hi,
                "livemode": ctx.livemode,
                "meter": meter_id,
            }
        )
    return list_object(f"/v1/billing/meters/{meter_id}/event_summaries", summaries, params)
