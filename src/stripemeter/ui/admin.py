"""Console pages: sign in and out, the overview, the events explorer and the review queue."""

from __future__ import annotations

import csv
import hmac
import io
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from stripemeter.api.errors import status_of
from stripemeter.domain.errors import StripeMeterError
from stripemeter.domain.scopes import Scope
from stripemeter.services import events_read
from stripemeter.services.console_sessions import SESSION_LIFETIME
from stripemeter.services.review import ReviewService
from stripemeter.ui import charts
from stripemeter.ui.gate import (
    LOGIN_CSRF_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    action_gate,
    actor,
    chrome,
    current_session,
    field,
    page_gate,
    read_form,
    services,
)
from stripemeter.ui.notices import notice_text
from stripemeter.ui.templating import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)

EVENT_FILTERS = ("customerRef", "metric", "status", "source", "from", "to")
PAGE_SIZE = 50
CSV_COLUMNS = (
    "id", "idempotencyKey", "metric", "customerRef", "quantity", "ts", "status", "heldReason",
    "source", "resourceId", "receivedAt",
)  # fmt: skip


def _safe_next(target: str) -> str:
    """Only paths inside the console are followed after sign-in (no open redirect)."""
    if target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def error_context(exc: StripeMeterError) -> tuple[dict[str, Any], int]:
    """A domain error as the page's error banner and HTTP status."""
    status, _ = status_of(exc)
    return {"error": exc.message, "error_code": exc.code, "error_param": exc.param}, status


# --- sign in / out ---------------------------------------------------------------------------


def _login_page(
    request: Request, *, error: str | None = None, status: int = 200, notice: str | None = None
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        "admin/login.html",
        chrome(request, None, "")
        | {
            "login_csrf": token,
            "next": _safe_next(request.query_params.get("next", PREFIX)),
            "error": error,
            "notice": notice,
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=f"{PREFIX}/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The sign-in form (already signed in: straight on)."""
    if await current_session(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next", PREFIX)), 303)
    return _login_page(request, notice=notice_text(request.query_params.get("notice")))


@router.post("/login")
async def login(request: Request) -> Response:
    """Exchange an API key for a session cookie; the key itself is never stored in the browser."""
    form = await read_form(request)
    presented = field(form, "csrf_token")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not presented or not expected or not hmac.compare_digest(presented, expected):
        return _login_page(request, error="The sign-in form expired; please try again.", status=403)
    try:
        cookie, _ = await services(request).console_sessions.sign_in(field(form, "api_key"))
    except StripeMeterError as exc:
        return _login_page(request, error=f"That key was not accepted: {exc.message}", status=401)
    response = RedirectResponse(_safe_next(field(form, "next", PREFIX)), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=f"{PREFIX}/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Close the session (CSRF-checked, so another site cannot sign you out)."""
    gate = await action_gate(request, None)
    if isinstance(gate, Response):
        return gate
    await services(request).console_sessions.sign_out(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"{PREFIX}/login?notice=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


# --- overview --------------------------------------------------------------------------------


@router.get("")
async def overview(request: Request) -> Response:
    """Ingest over the last hour, the review queue, customers and the Stripe pushes."""
    session = await page_gate(request, None)
    if isinstance(session, Response):
        return session
    context = chrome(request, session, "overview")
    now = datetime.now(UTC)
    try:
        data = await services(request).console.overview(session.principal.tenant_id, now)
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return render("admin/overview.html", context | extra, status=status)
    labels = [b.start.strftime("%H:%M") for b in data.minutes]
    chart = charts.stacked_bars(
        labels,
        [
            charts.Series("accepted", "accepted", [b.accepted for b in data.minutes]),
            charts.Series("held", "held", [b.held for b in data.minutes]),
        ],
        title="Events stored per minute over the last hour",
    )
    return render("admin/overview.html", context | {"data": data, "chart": chart})


# --- events ----------------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str]:
    return {
        name: request.query_params[name].strip()
        for name in EVENT_FILTERS
        if request.query_params.get(name, "").strip()
    }


def _event_filter(values: dict[str, str]) -> Any:
    return events_read.build_filter(
        metric=values.get("metric"),
        customer_ref=values.get("customerRef"),
        status=values.get("status"),
        source=values.get("source"),
        since=values.get("from"),
        since_alias=None,
        until=values.get("to"),
        until_alias=None,
    )


@router.get("/events")
async def events_page(request: Request) -> Response:
    """Search the ledger by customer, metric, status, source and time; newest first."""
    session = await page_gate(request, Scope.EVENTS_READ)
    if isinstance(session, Response):
        return session
    values = _filters(request)
    context = chrome(request, session, "events") | {
        "filters": values,
        "statuses": events_read.STATUSES,
        "export_url": f"{PREFIX}/events/export.csv?{urlencode(values)}",
        "events": [],
        "next_url": None,
    }
    try:
        page = await events_read.list_events(
            services(request).db,
            session.principal.tenant_id,
            _event_filter(values),
            limit=PAGE_SIZE,
            cursor=request.query_params.get("cursor") or None,
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return render("admin/events.html", context | extra, status=status)
    if page.next_cursor:
        context["next_url"] = f"{PREFIX}/events?{urlencode(values | {'cursor': page.next_cursor})}"
    context["events"] = page.events
    context["paged"] = bool(request.query_params.get("cursor"))
    return render("admin/events.html", context)


def _csv_cell(value: object) -> str:
    """Text as a spreadsheet shows it, never as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/events/export.csv")
async def export_events(request: Request) -> Response:
    """Every event matching the filters, as CSV, streamed."""
    session = await page_gate(request, Scope.EVENTS_READ)
    if isinstance(session, Response):
        return session
    try:
        spec = _event_filter(_filters(request))
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return render("admin/error.html", chrome(request, session, "events") | extra
                      | {"title": "Cannot export"}, status=status)  # fmt: skip
    db, tenant = services(request).db, session.principal.tenant_id

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        async for event in events_read.export_events(db, tenant, spec):
            writer.writerow(
                [
                    event.id, _csv_cell(event.idempotency_key), _csv_cell(event.metric),
                    _csv_cell(event.customer_ref), event.quantity, event.ts, event.status,
                    event.held_reason or "", event.source, _csv_cell(event.resource_id),
                    event.received_at.isoformat(),
                ]
            )  # fmt: skip
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="events-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/events/{event_id}")
async def event_detail(request: Request, event_id: str) -> Response:
    """One event: its idempotency key, payload, status and review."""
    session = await page_gate(request, Scope.EVENTS_READ)
    if isinstance(session, Response):
        return session
    context = chrome(request, session, "events") | {
        "can_review": session.allows(Scope.ADJUSTMENTS_APPROVE),
        "notice": notice_text(request.query_params.get("notice")),
    }
    try:
        number = int(event_id) if event_id.isdigit() else 0
        event = await events_read.get_event(services(request).db, session.principal.tenant_id,
                                            number)  # fmt: skip
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return render("admin/error.html", context | extra | {"title": "Event not found"},
                      status=status)  # fmt: skip
    return render("admin/event.html", context | {"event": event})


# --- review queue ----------------------------------------------------------------------------


async def render_held(
    request: Request, session: Any, *, error: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """The review queue page (also re-rendered with the error of a failed decision)."""
    tab = request.query_params.get("status", "pending")
    context = chrome(request, session, "held") | {
        "tab": tab,
        "items": [],
        "can_review": session.allows(Scope.ADJUSTMENTS_APPROVE),
        "notice": notice_text(request.query_params.get("notice")),
        "next_url": None,
    }
    try:
        page = await ReviewService(services(request).db).list_held(
            session.principal.tenant_id,
            status=tab,
            cursor=request.query_params.get("cursor") or None,
            limit=PAGE_SIZE,
        )
        context["items"] = page.items
        if page.next_cursor:
            context["next_url"] = (
                f"{PREFIX}/held?{urlencode({'status': tab, 'cursor': page.next_cursor})}"
            )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        context |= extra
    return render("admin/held.html", context | (error or {}), status=status)


@router.get("/held")
async def held_page(request: Request) -> Response:
    """Held events awaiting review (and the decided ones, by tab)."""
    session = await page_gate(request, Scope.EVENTS_READ)
    if isinstance(session, Response):
        return session
    return await render_held(request, session)


async def _decide(request: Request, event_id: str, decision: str) -> Response:
    gate = await action_gate(request, Scope.ADJUSTMENTS_APPROVE)
    if isinstance(gate, Response):
        return gate
    session, form = gate
    note = field(form, "note").strip() or None
    review = ReviewService(services(request).db)
    try:
        number = int(event_id) if event_id.isdigit() else 0
        decide = review.approve if decision == "approved" else review.dismiss
        await decide(session.principal.tenant_id, number, actor=actor(session), note=note)
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return await render_held(request, session, error=extra, status=status)
    back = field(form, "back")
    if back == "event":
        return RedirectResponse(f"{PREFIX}/events/{event_id}?notice={decision}", 303)
    return RedirectResponse(f"{PREFIX}/held?notice={decision}", status_code=303)


@router.post("/held/{event_id}/approve")
async def approve(request: Request, event_id: str) -> Response:
    """Count a held event (as an approved adjustment, audited)."""
    return await _decide(request, event_id, "approved")


@router.post("/held/{event_id}/dismiss")
async def dismiss(request: Request, event_id: str) -> Response:
    """Close a held event without counting it (audited)."""
    return await _decide(request, event_id, "dismissed")
