"""Invoice items, credit notes, and draft invoices that follow late usage until they finalize.

Stripe keeps a draft subscription invoice's usage lines current until it finalizes (usage that
arrives in the grace window is billed), and pulls a customer's pending invoice items into the next
invoice. The fake's drafts are built once at period end, so these routes refresh a draft's metered
lines and attach pending items whenever a draft is read or finalized, or a meter event arrives.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.routing import Route

from stripemeter.stripe.fake import billing, meters
from stripemeter.stripe.fake.context import RequestContext, list_object
from stripemeter.stripe.fake.endpoints import endpoint
from stripemeter.stripe.fake.errors import invalid_request, no_such
from stripemeter.stripe.fake.runtime import FakeRuntime
from stripemeter.stripe.fake.schemas import SCHEMAS
from stripemeter.stripe.fake.state import new_id
from stripemeter.stripe.fake.types import JSONObject
from stripemeter.stripe.fake.validation import Arr, Int, Obj, Str, StrMap, obj

ITEMS = "invoiceitems"
CREDIT_NOTES = "credit_notes"

_PERIOD = obj(("start", "end"), start=Int(), end=Int())
INVOICE_ITEM_SCHEMA = obj(
    ("customer",),
    customer=Str(5000),
    amount=Int(),
    currency=Str(3),
    description=Str(5000),
    invoice=Str(5000),
    metadata=StrMap(500),
    period=_PERIOD,
    expand=Arr(Str(5000)),
)
_CREDIT_LINE = obj(
    ("type",),
    type=Str(enum=("custom_line_item", "invoice_line_item")),
    unit_amount=Int(),
    quantity=Int(),
    description=Str(5000),
    invoice_line_item=Str(5000),
)
CREDIT_NOTE_SCHEMA = obj(
    ("invoice",),
    invoice=Str(5000),
    amount=Int(),
    lines=Arr(_CREDIT_LINE),
    memo=Str(5000),
    reason=Str(enum=("duplicate", "fraudulent", "order_change", "product_unsatisfactory")),
    metadata=StrMap(500),
    expand=Arr(Str(5000)),
)
_LIST = obj((), customer=Str(5000), invoice=Str(5000), limit=Int(), starting_after=Str(5000))


def _collection(ctx: RequestContext, name: str) -> dict[str, JSONObject]:
    return ctx.state.objects.setdefault(name, {})


def create_invoice_item(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """A one-off amount for a customer: pending until the next invoice, or added to a draft."""
    customer = ctx.state.get("customers", params["customer"], ctx.livemode)
    if customer is None:
        raise no_such("customer", params["customer"])
    if "amount" not in params:
        raise invalid_request("Missing required param: amount.", param="amount")
    now = ctx.time_for_customer(customer["id"])
    item = {
        "id": new_id("ii"),
        "object": "invoiceitem",
        "amount": params["amount"],
        "currency": params.get("currency", "usd"),
        "customer": customer["id"],
        "date": now,
        "description": params.get("description"),
        "invoice": None,
        "livemode": ctx.livemode,
        "metadata": params.get("metadata", {}),
        "period": params.get("period", {"start": now, "end": now}),
        "created": now,
    }
    _collection(ctx, ITEMS)[item["id"]] = item
    target = params.get("invoice")
    if target:
        invoice = billing.get_invoice(ctx, target)
        if invoice["status"] != "draft":
            raise invalid_request("Invoice items can only be added to draft invoices.")
        _attach(invoice, item)
    else:
        refresh_drafts(ctx, customer["id"])
    return item


def list_invoice_items(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Invoice items by customer or invoice."""
    data = [
        i
        for i in _collection(ctx, ITEMS).values()
        if i["livemode"] == ctx.livemode
        and params.get("customer") in (None, i["customer"])
        and params.get("invoice") in (None, i["invoice"])
    ]
    return list_object("/v1/invoiceitems", data, params)


def create_credit_note(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Credit part of a finalized invoice (open or paid); the credit lowers what is due."""
    invoice = billing.get_invoice(ctx, params["invoice"])
    if invoice["status"] not in ("open", "paid"):
        raise invalid_request(
            "Credit notes can only be issued for finalized invoices.", param="invoice"
        )
    lines = params.get("lines") or []
    amount = params.get("amount")
    if amount is None:
        amount = sum(
            int(line.get("unit_amount", 0)) * int(line.get("quantity", 1)) for line in lines
        )
    credited = sum(
        n["amount"]
        for n in _collection(ctx, CREDIT_NOTES).values()
        if n["invoice"] == invoice["id"]
    )
    if amount <= 0 or amount + credited > invoice["total"]:
        raise invalid_request(
            "The credit note amount must be positive and at most the invoice's remaining total.",
            param="amount",
        )
    note = {
        "id": new_id("cn"),
        "object": "credit_note",
        "amount": amount,
        "currency": invoice["currency"],
        "customer": invoice["customer"],
        "invoice": invoice["id"],
        "livemode": ctx.livemode,
        "memo": params.get("memo"),
        "metadata": params.get("metadata", {}),
        "reason": params.get("reason"),
        "status": "issued",
        "lines": {"object": "list", "data": lines, "has_more": False},
        "created": ctx.time_for_customer(invoice["customer"]),
    }
    _collection(ctx, CREDIT_NOTES)[note["id"]] = note
    invoice["pre_payment_credit_notes_amount"] += amount
    invoice["amount_remaining"] = max(0, invoice["amount_remaining"] - amount)
    invoice["amount_due"] = max(0, invoice["amount_due"] - amount)
    return note


def list_credit_notes(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Credit notes by invoice or customer."""
    data = [
        n
        for n in _collection(ctx, CREDIT_NOTES).values()
        if n["livemode"] == ctx.livemode
        and params.get("customer") in (None, n["customer"])
        and params.get("invoice") in (None, n["invoice"])
    ]
    return list_object("/v1/credit_notes", data, params)


def _attach(invoice: JSONObject, item: JSONObject) -> None:
    item["invoice"] = invoice["id"]
    invoice["lines"]["data"].append(
        {
            "id": new_id("il"),
            "object": "line_item",
            "amount": item["amount"],
            "currency": item["currency"],
            "description": item["description"],
            "livemode": item["livemode"],
            "metadata": item["metadata"],
            "period": item["period"],
            "quantity": 1,
            "parent": {
                "type": "invoice_item_details",
                "invoice_item_details": {"invoice_item": item["id"]},
            },
        }
    )
    _retotal(invoice)


def _retotal(invoice: JSONObject) -> None:
    total = sum(line["amount"] for line in invoice["lines"]["data"])
    invoice["subtotal"] = invoice["total"] = total
    invoice["amount_due"] = invoice["amount_remaining"] = total


def refresh_draft(ctx: RequestContext, invoice: JSONObject) -> None:
    """Re-price a draft's metered lines from current usage and attach pending invoice items."""
    if invoice["status"] != "draft" or invoice.get("billing_reason") != "subscription_cycle":
        return
    for line in invoice["lines"]["data"]:
        details = (line.get("parent") or {}).get("subscription_item_details")
        if not details:
            continue
        item = ctx.state.get("subscription_items", details["subscription_item"], ctx.livemode)
        if item is None or item["price"]["recurring"]["usage_type"] != "metered":
            continue
        quantity = _usage(ctx, item, invoice["customer"], line["period"])
        line["amount"] = billing.line_amount(item["price"], quantity)
        line["quantity"] = int(quantity) if quantity == quantity.to_integral_value() else None
        line["quantity_decimal"] = str(quantity)
    for pending in list(_collection(ctx, ITEMS).values()):
        if (
            pending["invoice"] is None
            and pending["customer"] == invoice["customer"]
            and pending["livemode"] == ctx.livemode
        ):
            _attach(invoice, pending)
    _retotal(invoice)


def _usage(ctx: RequestContext, item: JSONObject, customer: str, period: Any) -> Decimal:
    recurring = item["price"]["recurring"]
    meter = (
        ctx.state.get("meters", recurring["meter"], ctx.livemode)
        if recurring.get("meter")
        else None
    )
    if meter is not None:
        return meters.meter_total(ctx, meter, customer, period["start"], period["end"])
    from stripemeter.stripe.fake.legacy import usage_total

    return Decimal(usage_total(ctx.state, item["id"], period["start"], period["end"]))


def refresh_drafts(ctx: RequestContext, customer: str) -> None:
    """Refresh every draft invoice of a customer."""
    for invoice in ctx.state.all("invoices", ctx.livemode):
        if invoice["customer"] == customer:
            refresh_draft(ctx, invoice)


def _get_invoice(ctx: RequestContext, params: JSONObject, id: str) -> JSONObject:
    invoice = billing.get_invoice(ctx, id)
    refresh_draft(ctx, invoice)
    return invoice


def _finalize(ctx: RequestContext, params: JSONObject, id: str) -> JSONObject:
    invoice = billing.get_invoice(ctx, id)
    refresh_draft(ctx, invoice)
    return billing.finalize_invoice(ctx, invoice, ctx.now)


def _meter_event(ctx: RequestContext, params: JSONObject) -> JSONObject:
    event = meters.record_meter_event(
        ctx,
        params["event_name"],
        params["payload"],
        params.get("identifier"),
        params.get("timestamp"),
    )
    refresh_drafts(ctx, ctx.state.meter_events[-1]["customer"])
    return event


def routes(runtime: FakeRuntime) -> list[Route]:
    """Routes registered before the fake's own, so drafts refresh on reads and finalization."""
    page: Obj = _LIST

    def route(method: str, path: str, schema: Obj, handler: Any) -> Route:
        return Route(path, endpoint(runtime, schema, handler), methods=[method])

    return [
        route("POST", "/v1/invoiceitems", INVOICE_ITEM_SCHEMA, create_invoice_item),
        route("GET", "/v1/invoiceitems", page, list_invoice_items),
        route("POST", "/v1/credit_notes", CREDIT_NOTE_SCHEMA, create_credit_note),
        route("GET", "/v1/credit_notes", page, list_credit_notes),
        route(
            "GET",
            "/v1/invoices/{id}",
            SCHEMAS.get("GET /v1/invoices/{id}", obj((), expand=Arr(Str(5000)))),
            _get_invoice,
        ),
        route(
            "POST",
            "/v1/invoices/{id}/finalize",
            SCHEMAS.get(
                "POST /v1/invoices/{id}/finalize", obj((), auto_advance=Str(), expand=Arr(Str()))
            ),
            _finalize,
        ),
        route(
            "POST",
            "/v1/billing/meter_events",
            SCHEMAS["POST /v1/billing/meter_events"],
            _meter_event,
        ),
    ]
