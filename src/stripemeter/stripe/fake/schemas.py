"""The request schema of every endpoint the fake serves, mirroring Stripe's OpenAPI fragments."""

from __future__ import annotations

from stripemeter.stripe.fake.validation import (
    Arr,
    Bool,
    Dec,
    Int,
    Obj,
    OneOf,
    Spec,
    Str,
    StrMap,
    obj,
)

_EXPAND = Arr(Str(max_length=5000))
_METADATA = StrMap(max_value_length=500)
_PAGE: dict[str, Spec] = {
    "limit": Int(),
    "starting_after": Str(5000),
    "ending_before": Str(5000),
    "expand": _EXPAND,
}

_METER_EVENT_V2 = obj(
    ("event_name", "payload"),
    event_name=Str(100),
    identifier=Str(100),
    payload=StrMap(),
    timestamp=Str(),
)
_TIER = obj(
    ("up_to",),
    up_to=OneOf((Int(), Str(enum=("inf",)))),
    unit_amount=Int(),
    unit_amount_decimal=Dec(),
    flat_amount=Int(),
    flat_amount_decimal=Dec(),
)

#: Request rules keyed by "METHOD /path" with ``{id}`` for path parameters.
SCHEMAS: dict[str, Obj] = {
    "POST /v1/customers": obj(
        (),
        email=Str(512),
        name=Str(256),
        description=Str(5000),
        metadata=_METADATA,
        test_clock=Str(5000),
        expand=_EXPAND,
    ),
    "POST /v1/customers/{id}": obj(
        (), email=Str(512), name=Str(256), description=Str(5000), metadata=_METADATA, expand=_EXPAND
    ),
    "GET /v1/customers": obj((), email=Str(512), test_clock=Str(5000), **_PAGE),
    "POST /v1/products": obj(
        ("name",),
        id=Str(5000),
        name=Str(5000),
        active=Bool(),
        description=Str(40000),
        metadata=_METADATA,
        expand=_EXPAND,
    ),
    "GET /v1/products": obj((), active=Bool(), **_PAGE),
    "POST /v1/prices": obj(
        ("currency",),
        currency=Str(3),
        product=Str(5000),
        product_data=obj(("name",), name=Str(5000), metadata=_METADATA),
        unit_amount=Int(),
        unit_amount_decimal=Dec(),
        billing_scheme=Str(enum=("per_unit", "tiered")),
        tiers_mode=Str(enum=("graduated", "volume")),
        tiers=Arr(_TIER),
        transform_quantity=obj(
            ("divide_by", "round"), divide_by=Int(), round=Str(enum=("down", "up"))
        ),
        recurring=obj(
            ("interval",),
            interval=Str(enum=("day", "month", "week", "year")),
            interval_count=Int(),
            usage_type=Str(enum=("licensed", "metered")),
            meter=Str(5000),
        ),
        active=Bool(),
        nickname=Str(5000),
        lookup_key=Str(200),
        metadata=_METADATA,
        expand=_EXPAND,
    ),
    "GET /v1/prices": obj((), product=Str(5000), active=Bool(), **_PAGE),
    "POST /v1/subscriptions": obj(
        ("customer",),
        customer=Str(5000),
        items=Arr(obj(("price",), price=Str(5000), quantity=Int(), metadata=_METADATA)),
        billing_cycle_anchor=Int(),
        collection_method=Str(enum=("charge_automatically", "send_invoice")),
        days_until_due=Int(),
        metadata=_METADATA,
        expand=_EXPAND,
    ),
    "GET /v1/subscriptions": obj(
        (), customer=Str(5000), test_clock=Str(5000), status=Str(), **_PAGE
    ),
    "POST /v1/test_helpers/test_clocks": obj(
        ("frozen_time",), frozen_time=Int(), name=Str(300), expand=_EXPAND
    ),
    "POST /v1/test_helpers/test_clocks/{id}/advance": obj(
        ("frozen_time",), frozen_time=Int(), expand=_EXPAND
    ),
    "POST /v1/billing/meters": obj(
        ("default_aggregation", "display_name", "event_name"),
        customer_mapping=obj(
            ("event_payload_key", "type"), event_payload_key=Str(100), type=Str(enum=("by_id",))
        ),
        default_aggregation=obj(("formula",), formula=Str(enum=("count", "last", "sum"))),
        display_name=Str(250),
        event_name=Str(100),
        event_time_window=Str(enum=("day", "hour")),
        expand=_EXPAND,
        value_settings=obj(("event_payload_key",), event_payload_key=Str(100)),
    ),
    "POST /v1/billing/meters/{id}": obj((), display_name=Str(250), expand=_EXPAND),
    "GET /v1/billing/meters": obj((), status=Str(enum=("active", "inactive")), **_PAGE),
    "POST /v1/billing/meter_events": obj(
        ("event_name", "payload"),
        event_name=Str(100),
        expand=_EXPAND,
        identifier=Str(100),
        payload=StrMap(),
        timestamp=Int(),
    ),
    "POST /v1/billing/meter_event_adjustments": obj(
        ("event_name", "type"),
        cancel=obj((), identifier=Str(100)),
        event_name=Str(100),
        expand=_EXPAND,
        type=Str(enum=("cancel",)),
    ),
    "GET /v1/billing/meters/{id}/event_summaries": obj(
        ("customer", "end_time", "start_time"),
        customer=Str(5000),
        end_time=Int(),
        start_time=Int(),
        value_grouping_window=Str(enum=("day", "hour")),
        **_PAGE,
    ),
    "POST /v1/subscription_items/{id}/usage_records": obj(
        ("quantity",),
        action=Str(enum=("increment", "set")),
        expand=_EXPAND,
        quantity=Int(),
        timestamp=OneOf((Int(), Str(enum=("now",)))),
    ),
    "GET /v1/subscription_items/{id}/usage_record_summaries": obj((), **_PAGE),
    "GET /v1/invoices": obj((), customer=Str(5000), subscription=Str(5000), status=Str(), **_PAGE),
    "POST /v1/invoices/{id}": obj(
        (), auto_advance=Bool(), description=Str(1500), metadata=_METADATA, expand=_EXPAND
    ),
    "POST /v2/billing/meter_event_session": obj(()),
    "POST /v2/billing/meter_event_stream": obj(
        ("events",), events=Arr(_METER_EVENT_V2, max_items=100)
    ),
    "POST /v2/billing/meter_events": _METER_EVENT_V2,
}

#: Query rules for plain list/retrieve GETs that take only pagination or expansion.
PAGE_ONLY = obj((), **_PAGE)
