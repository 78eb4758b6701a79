"""The fake Stripe ASGI application factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from stripemeter.stripe.fake import billing, catalog, invoice_items, legacy, meters, v2
from stripemeter.stripe.fake.clock import FakeClock
from stripemeter.stripe.fake.context import RequestContext
from stripemeter.stripe.fake.control import Control
from stripemeter.stripe.fake.control_api import control_routes
from stripemeter.stripe.fake.endpoints import endpoint, not_found
from stripemeter.stripe.fake.middleware import FaultMiddleware
from stripemeter.stripe.fake.runtime import FakeRuntime
from stripemeter.stripe.fake.schemas import PAGE_ONLY, SCHEMAS
from stripemeter.stripe.fake.state import FakeStripeState
from stripemeter.stripe.fake.types import JSONObject
from stripemeter.stripe.fake.validation import obj
from stripemeter.stripe.fake.webhooks import WebhookDispatcher

_NO_PARAMS = obj()


def _ignore_params(fn: Callable[[RequestContext, str], JSONObject]) -> Callable[..., JSONObject]:
    """Adapt a ``fn(ctx, id)`` lookup to the ``handler(ctx, params, id=...)`` shape."""

    def handler(ctx: RequestContext, params: JSONObject, id: str) -> JSONObject:
        return fn(ctx, id)

    return handler


def _with_id(
    fn: Callable[[RequestContext, str, JSONObject], JSONObject],
) -> Callable[..., JSONObject]:
    """Adapt ``fn(ctx, id, params)`` to the handler shape."""

    def handler(ctx: RequestContext, params: JSONObject, id: str) -> JSONObject:
        return fn(ctx, id, params)

    return handler


def _stripe_routes(runtime: FakeRuntime) -> list[Route]:
    def route(method: str, path: str, handler: Callable[..., JSONObject], **options: Any) -> Route:
        schema = SCHEMAS.get(f"{method} {path}", PAGE_ONLY if method == "GET" else _NO_PARAMS)
        return Route(path, endpoint(runtime, schema, handler, **options), methods=[method])

    def meter_event(ctx: RequestContext, params: JSONObject) -> JSONObject:
        return meters.record_meter_event(
            ctx,
            params["event_name"],
            params["payload"],
            params.get("identifier"),
            params.get("timestamp"),
        )

    def invoice_finalize(ctx: RequestContext, params: JSONObject, id: str) -> JSONObject:
        return billing.finalize_invoice(ctx, billing.get_invoice(ctx, id), ctx.now)

    def clock_advance(ctx: RequestContext, params: JSONObject, id: str) -> JSONObject:
        return billing.advance_test_clock(ctx, id, params)

    return [
        route("POST", "/v1/customers", catalog.create_customer),
        route("GET", "/v1/customers", catalog.list_customers),
        route("GET", "/v1/customers/{id}", _ignore_params(catalog.get_customer)),
        route("POST", "/v1/customers/{id}", _with_id(catalog.update_customer)),
        route("POST", "/v1/products", catalog.create_product),
        route("GET", "/v1/products", catalog.list_products),
        route("GET", "/v1/products/{id}", _ignore_params(catalog.get_product)),
        route("POST", "/v1/prices", catalog.create_price),
        route("GET", "/v1/prices", catalog.list_prices),
        route("GET", "/v1/prices/{id}", _ignore_params(catalog.get_price)),
        route("POST", "/v1/subscriptions", billing.create_subscription),
        route("GET", "/v1/subscriptions", billing.list_subscriptions),
        route("GET", "/v1/subscriptions/{id}", _ignore_params(billing.get_subscription)),
        route("GET", "/v1/subscription_items/{id}", _ignore_params(billing.get_subscription_item)),
        route(
            "POST",
            "/v1/subscription_items/{id}/usage_records",
            _with_id(legacy.create_usage_record),
        ),
        route(
            "GET",
            "/v1/subscription_items/{id}/usage_record_summaries",
            _with_id(legacy.usage_record_summaries),
        ),
        route("POST", "/v1/test_helpers/test_clocks", billing.create_test_clock),
        route("GET", "/v1/test_helpers/test_clocks/{id}", _ignore_params(billing.get_test_clock)),
        route("POST", "/v1/test_helpers/test_clocks/{id}/advance", clock_advance),
        route("POST", "/v1/billing/meters", meters.create_meter),
        route("GET", "/v1/billing/meters", meters.list_meters),
        route("GET", "/v1/billing/meters/{id}", _ignore_params(meters.get_meter)),
        route("POST", "/v1/billing/meters/{id}", _with_id(meters.update_meter)),
        route(
            "POST",
            "/v1/billing/meters/{id}/deactivate",
            _ignore_params(lambda c, i: meters.set_meter_status(c, i, False)),
        ),
        route(
            "POST",
            "/v1/billing/meters/{id}/reactivate",
            _ignore_params(lambda c, i: meters.set_meter_status(c, i, True)),
        ),
        route("GET", "/v1/billing/meters/{id}/event_summaries", _with_id(meters.event_summaries)),
        route("POST", "/v1/billing/meter_events", meter_event),
        route("POST", "/v1/billing/meter_event_adjustments", meters.cancel_meter_event),
        route("GET", "/v1/invoices", billing.list_invoices),
        route("GET", "/v1/invoices/{id}", _ignore_params(billing.get_invoice)),
        route("POST", "/v1/invoices/{id}", _with_id(billing.update_invoice)),
        route("POST", "/v1/invoices/{id}/finalize", invoice_finalize),
        route(
            "POST",
            "/v2/billing/meter_event_session",
            lambda ctx, params: v2.create_session(ctx),
            api="v2",
        ),
        route("POST", "/v2/billing/meter_event_stream", v2.stream_events, api="v2", auth="session"),
        route("POST", "/v2/billing/meter_events", v2.create_meter_event, api="v2"),
    ]


def create_app(
    state: FakeStripeState | None = None,
    *,
    clock: FakeClock | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    state_file: str | None = None,
) -> ASGIApp:
    """Build the fake Stripe ASGI app over ``state`` (fresh if None) and ``clock`` (wall time)."""
    control = Control()
    runtime = FakeRuntime(
        state=state if state is not None else FakeStripeState(),
        clock=clock if clock is not None else FakeClock(),
        control=control,
        webhooks=WebhookDispatcher(webhook_url, webhook_secret, control.webhook_duplicates),
        state_file=state_file,
    )
    app = Starlette(
        routes=[
            *control_routes(runtime),
            # Invoice items, credit notes and refreshing drafts; before the routes they wrap.
            *invoice_items.routes(runtime),
            *_stripe_routes(runtime),
        ]
    )
    app.add_exception_handler(404, lambda request, exc: not_found(request))
    app.add_exception_handler(405, lambda request, exc: not_found(request))
    app.state.runtime = runtime
    fronted = FaultMiddleware(app, runtime)
    fronted.runtime = runtime
    return fronted
