"""The customer usage widget: a loader script, the iframe page it injects, and their assets.

The frame shows exactly one customer of one tenant, both taken from a verified token, never from
the query string; an expired or tampered token gets an error page and no data at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from stripemeter.api.deps import services_of
from stripemeter.domain.errors import StripeMeterError
from stripemeter.domain.widget_tokens import TokenExpired, WidgetTokenError
from stripemeter.services import usage
from stripemeter.services.projection import ProjectionQuery
from stripemeter.ui import charts
from stripemeter.ui.assets import asset_response
from stripemeter.ui.templating import WIDGET_HEADERS, render

router = APIRouter(include_in_schema=False)

THEMES = ("light", "dark")


@router.get("/widget/embed.js")
@router.get("/widget.js")
async def embed_script() -> Response:
    """The loader: ``<script src=…/widget/embed.js data-token=… data-theme=dark>``."""
    return asset_response("embed.js", max_age=300)


@router.get("/widget/static/{name}")
async def widget_asset(name: str) -> Response:
    """The frame's stylesheet."""
    return asset_response(name, allowed=("widget.css",))


def _error(theme: str, title: str, message: str, status: int) -> Response:
    return render(
        "widget/error.html",
        {"theme": theme, "title": title, "message": message},
        status=status,
        headers=WIDGET_HEADERS,
    )


@router.get("/widget/frame")
async def frame(request: Request) -> Response:
    """One customer's usage this period, cost so far and projected, and a daily chart."""
    theme = request.query_params.get("theme", "light")
    theme = theme if theme in THEMES else "light"
    svc = services_of(request)
    try:
        claims = await svc.widget_tokens.verify(request.query_params.get("token", ""))
    except TokenExpired as exc:
        return _error(theme, "This usage view has expired", exc.message, 401)
    except WidgetTokenError as exc:
        return _error(theme, "This usage view cannot be shown", exc.message, 401)
    now = datetime.now(UTC)
    try:
        current = await usage.current_usage(
            svc.db, svc.catalog, claims.tenant_id, claims.customer_ref, None, now
        )
    except StripeMeterError as exc:
        return _error(theme, "Usage is unavailable right now", exc.message, 503)
    period = current.period
    projection: dict[str, Any] | None = None
    try:
        projection = await svc.pricing.projection.project(
            claims.tenant_id, ProjectionQuery(customer_ref=claims.customer_ref, period=period)
        )
    except StripeMeterError:
        projection = None  # usage is still shown; cost lines say they are unavailable
    lines = {line["metric"]: line for line in (projection or {}).get("lineItems", [])}
    tiles = []
    for metric in current.metrics:
        history = await usage.usage_history(
            svc.db, svc.catalog, claims.tenant_id, customer_ref=claims.customer_ref,
            metric=metric.metric, since=(period.start.isoformat(), None),
            until=(min(period.end, now).isoformat(), None), interval=("day", None), now=now,
        )  # fmt: skip
        labels = [b.label.strftime("%b %d") for b in history.buckets]
        values = [b.state.value(history.aggregation) for b in history.buckets]
        tiles.append(
            {
                "usage": metric,
                "line": lines.get(metric.metric),
                "chart": charts.area(
                    labels, values, title=f"{metric.metric} per day", width=560, height=150,
                    label_every=max(len(labels) // 5, 1),
                ),
            }
        )  # fmt: skip
    return render(
        "widget/frame.html",
        {
            "theme": theme,
            "claims": claims,
            "period": period,
            "tiles": tiles,
            "projection": projection,
            "now": now,
        },
        headers=WIDGET_HEADERS,
    )
