"""Console pages for customers: current-period usage for all, and one customer's usage in depth."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from stripemeter.domain.errors import NotFound, StripeMeterError
from stripemeter.domain.scopes import Scope
from stripemeter.services import events_read, usage
from stripemeter.services import sync_store as store
from stripemeter.services.projection import ProjectionQuery
from stripemeter.ui import charts
from stripemeter.ui.admin import error_context
from stripemeter.ui.gate import PREFIX, chrome, page_gate, services
from stripemeter.ui.templating import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)

CUSTOMER_PAGE = 50
RECENT_EVENTS = 20


def _month_label(at: datetime) -> str:
    return at.strftime("%Y-%m")


def _neighbours(period_start: datetime) -> tuple[str, str]:
    year, month = period_start.year, period_start.month
    prev = f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"
    nxt = f"{year + 1}-01" if month == 12 else f"{year}-{month + 1:02d}"
    return prev, nxt


@router.get("/customers")
async def customers_page(request: Request) -> Response:
    """Every customer with usage in the period, with each metric's billing value."""
    session = await page_gate(request, Scope.USAGE_READ)
    if isinstance(session, Response):
        return session
    svc = services(request)
    now = datetime.now(UTC)
    label = request.query_params.get("period") or None
    context = chrome(request, session, "customers") | {"customers": [], "next_url": None}
    try:
        page = await usage.customers_usage(
            svc.db,
            svc.catalog,
            session.principal.tenant_id,
            period_label=label,
            limit=CUSTOMER_PAGE,
            cursor=request.query_params.get("cursor") or None,
            now=now,
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return render("admin/customers.html", context | extra | {"period": None}, status=status)
    prev, nxt = _neighbours(page.period.start)
    metrics = sorted({m.metric for c in page.customers for m in c.metrics})
    if page.next_cursor:
        query = {"period": _month_label(page.period.start), "cursor": page.next_cursor}
        context["next_url"] = f"{PREFIX}/customers?{urlencode(query)}"
    return render(
        "admin/customers.html",
        context
        | {
            "period": page.period,
            "period_label": _month_label(page.period.start),
            "prev_period": prev,
            "next_period": nxt if page.period.end <= now else None,
            "customers": page.customers,
            "metrics": metrics,
        },
    )


@router.get("/customers/detail")
async def customer_page(request: Request) -> Response:
    """One customer: usage per metric with a daily chart, cost, Stripe id, pushes, recent events."""
    session = await page_gate(request, Scope.USAGE_READ)
    if isinstance(session, Response):
        return session
    svc = services(request)
    tenant = session.principal.tenant_id
    ref = request.query_params.get("ref", "")
    now = datetime.now(UTC)
    context = chrome(request, session, "customers") | {"ref": ref}
    try:
        current = await usage.current_usage(
            svc.db, svc.catalog, tenant, ref or None, request.query_params.get("period"), now
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return render("admin/error.html", context | extra | {"title": "Cannot show customer"},
                      status=status)  # fmt: skip
    period = current.period
    until = min(period.end, now) if period.start <= now else period.end
    charts_by_metric: dict[str, Any] = {}
    for metric in current.metrics:
        try:
            history = await usage.usage_history(
                svc.db, svc.catalog, tenant, customer_ref=ref, metric=metric.metric,
                since=(period.start.isoformat(), None), until=(until.isoformat(), None),
                interval=("day", None), now=now,
            )  # fmt: skip
        except StripeMeterError as exc:
            charts_by_metric[metric.metric] = {"error": exc.message}
            continue
        values = [b.state.value(history.aggregation) for b in history.buckets]
        labels = [b.label.strftime("%b %d") for b in history.buckets]
        charts_by_metric[metric.metric] = {
            "chart": charts.area(
                labels,
                values,
                title=f"{metric.metric} per day",
                label_every=max(len(labels) // 6, 1),
            )
        }
    projection: dict[str, Any] | None = None
    projection_error: str | None = None
    try:
        projection = await svc.pricing.projection.project(
            tenant, ProjectionQuery(customer_ref=ref, period=period)
        )
    except StripeMeterError as exc:
        projection_error = exc.message
    stripe_customer = None
    try:
        stripe_customer = await svc.stripe_sync.customers.get(tenant, ref)
    except NotFound:
        stripe_customer = None
    async with svc.db.read() as conn:
        pushes = await store.list_log(
            conn, tenant, status=None, customer_ref=ref, mapping_id=None, after_id=None, limit=20
        )
    recent: list[events_read.EventRecord] = []
    if session.allows(Scope.EVENTS_READ):
        spec = events_read.build_filter(
            metric=None, customer_ref=ref, status=None, source=None,
            since=None, since_alias=None, until=None, until_alias=None,
        )  # fmt: skip
        recent = (await events_read.list_events(svc.db, tenant, spec, limit=RECENT_EVENTS,
                                                cursor=None)).events  # fmt: skip
    prev, nxt = _neighbours(period.start)
    return render(
        "admin/customer.html",
        context
        | {
            "current": current,
            "period_label": _month_label(period.start),
            "prev_period": prev,
            "next_period": nxt if period.end <= now else None,
            "charts": charts_by_metric,
            "projection": projection,
            "projection_error": projection_error,
            "stripe_customer": stripe_customer,
            "pushes": pushes,
            "recent": recent,
            "can_events": session.allows(Scope.EVENTS_READ),
            "zero": Decimal(0),
        },
    )
