"""Console pages for billing correctness: reconciliation, explain, adjustments and alerts.

Routes stay thin: they call the same services as ``/v1/reconciliation``, ``/v1/explain``,
``/v1/adjustments`` and ``/v1/alerts``, served under ``/admin`` like the other pages.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from stripemeter.domain.errors import InvalidInput, StripeMeterError
from stripemeter.domain.periods import Period, month_from_label
from stripemeter.domain.scopes import Scope
from stripemeter.services.adjustment_flow import REASONS, AdjustmentFlow, parse_new
from stripemeter.services.alert_rules import rule_to_wire
from stripemeter.services.console_sessions import ConsoleSession
from stripemeter.services.explain import explain
from stripemeter.services.reconciler import Reconciler
from stripemeter.store import billing
from stripemeter.store import reconciliation as recon_store
from stripemeter.ui.admin import error_context
from stripemeter.ui.gate import PREFIX, Form, action_gate, actor, chrome, field, page_gate, services
from stripemeter.ui.notices import notice_text
from stripemeter.ui.pages import form_action, render_filled, show_page
from stripemeter.ui.templating import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PAGE_SIZE = 50
ADJUSTMENT_STATUSES = ("pending", "approved", "rejected", "reverted")
STATE_STATUSES = ("triggered", "acknowledged", "resolved")
SNOOZE_CHOICES = {"1h": 3600, "1d": 86_400, "7d": 7 * 86_400}
MAX_ID = 2**63 - 1


def _reconciler(request: Request) -> Reconciler:
    return services(request).reconciliation.reconciler


def _flow(request: Request) -> AdjustmentFlow:
    return services(request).reconciliation.adjustments


def _number(raw: str) -> int:
    """A path id as a number (anything else is 0, which no row has)."""
    return int(raw) if raw.isdigit() and int(raw) <= MAX_ID else 0


def _month(label: str, param: str = "period") -> Period:
    try:
        return month_from_label(label)
    except ValueError:
        raise InvalidInput("period must be YYYY-MM", code="invalid_period", param=param) from None


def _this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def _neighbours(period: Period) -> tuple[str, str | None]:
    before = (period.start - timedelta(days=1)).strftime("%Y-%m")
    after = period.end.strftime("%Y-%m")
    return before, (after if after <= _this_month() else None)


def _note(form: Form) -> str | None:
    return field(form, "note").strip()[:2000] or None


# --- reconciliation ----------------------------------------------------------------------------


async def render_reconciliation(
    request: Request,
    session: ConsoleSession,
    label: str,
    *,
    error: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """A month's report rows, suggestions, invoice parity and held invoices."""
    tenant = session.principal.tenant_id
    context = chrome(request, session, "reconciliation") | {
        "period_label": label,
        "rows": [],
        "parity": [],
        "held": [],
        "runs": [],
        "counts": {},
        "can_write": session.allows(Scope.RECONCILIATION_WRITE),
        "notice": notice_text(request.query_params.get("notice")),
        "prev_period": None,
        "next_period": None,
    }
    try:
        period = _month(label)
        context["prev_period"], context["next_period"] = _neighbours(period)
        async with _reconciler(request).db.read() as conn:
            reports = await recon_store.list_reports(
                conn, tenant, since=period.start, until=period.end, limit=10_000
            )
            suggestions = await recon_store.suggestions_for(conn, tenant, [r.id for r in reports])
            parity = []
            for ref in sorted({r.key.customer_ref for r in reports}):
                parity += await billing.parity_for_customer(conn, tenant, ref, period.start)
            held = [r for r in await billing.held_invoices(conn, 1000) if r["tenant_id"] == tenant]
            runs = await recon_store.list_runs(conn, tenant, 5)
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return render("admin/reconciliation.html", context | extra, status=status)
    counts: dict[str, int] = {}
    for report in reports:
        counts[report.status] = counts.get(report.status, 0) + 1
    context |= {
        "rows": [(r, suggestions.get(r.id)) for r in reports],
        "parity": parity,
        "held": held,
        "runs": runs,
        "counts": counts,
    }
    return render("admin/reconciliation.html", context | (error or {}), status=status)


@router.get("/reconciliation")
async def reconciliation_page(request: Request) -> Response:
    """The reconciliation report of a month (``?period=YYYY-MM``, default this month)."""
    session = await page_gate(request, Scope.USAGE_READ)
    if isinstance(session, Response):
        return session
    label = request.query_params.get("period") or _this_month()
    return await render_reconciliation(request, session, label)


@router.post("/reconciliation/run")
async def run_reconciliation(request: Request) -> Response:
    """Reconcile the tenant's month against Stripe now."""
    gate = await action_gate(request, Scope.RECONCILIATION_WRITE)
    if isinstance(gate, Response):
        return gate
    session, form = gate
    label = field(form, "period") or _this_month()
    try:
        await _reconciler(request).run(
            session.principal.tenant_id, customer_ref=None, period=_month(label), trigger="manual"
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return await render_reconciliation(request, session, label, error=extra, status=status)
    query = urlencode({"period": label, "notice": "reconciled"})
    return RedirectResponse(f"{PREFIX}/reconciliation?{query}", status_code=303)


@router.post("/reconciliation/suggestions/{suggestion_id}/apply")
async def apply_suggestion(request: Request, suggestion_id: str) -> Response:
    """Execute a suggested repair (push or true-up) and re-verify, like the API does."""
    gate = await action_gate(request, Scope.RECONCILIATION_WRITE)
    if isinstance(gate, Response):
        return gate
    session, form = gate
    label = field(form, "period") or _this_month()
    try:
        await _reconciler(request).apply_suggestion(
            session.principal.tenant_id, _number(suggestion_id), actor=actor(session)
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return await render_reconciliation(request, session, label, error=extra, status=status)
    query = urlencode({"period": label, "notice": "suggestion_applied"})
    return RedirectResponse(f"{PREFIX}/reconciliation?{query}", status_code=303)


@router.get("/explain")
async def explain_page(request: Request) -> Response:
    """A customer's metric in a month, down to its events, adjustments, pushes and true-ups."""
    session = await page_gate(request, Scope.USAGE_READ)
    if isinstance(session, Response):
        return session
    ref = request.query_params.get("customerRef", "").strip()
    metric = request.query_params.get("metric", "").strip()
    label = request.query_params.get("period") or _this_month()
    context = chrome(request, session, "reconciliation") | {
        "ref": ref,
        "metric": metric,
        "period_label": label,
        "body": None,
    }
    if not ref and not metric:
        return render("admin/explain.html", context)  # the form and what to do
    try:
        if not ref or not metric:
            raise InvalidInput(
                "give a customer reference and a metric", code="missing_parameter", param="metric"
            )
        context["body"] = await explain(
            _reconciler(request),
            session.principal.tenant_id,
            ref,
            metric,
            _month(label),
            after_id=None,
            limit=200,
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return render("admin/explain.html", context | extra, status=status)
    return render("admin/explain.html", context)


# --- adjustments -------------------------------------------------------------------------------


async def render_adjustments(
    request: Request,
    session: ConsoleSession,
    *,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """The adjustments list (also re-rendered with a failed action's error and form values)."""
    tab = request.query_params.get("status", "")
    context = chrome(request, session, "adjustments") | {
        "tab": tab,
        "statuses": ADJUSTMENT_STATUSES,
        "reasons": REASONS,
        "items": [],
        "next_url": None,
        "can_create": session.allows(Scope.RECONCILIATION_WRITE),
        "can_approve": session.allows(Scope.ADJUSTMENTS_APPROVE),
        "notice": notice_text(request.query_params.get("notice")),
        "draft": {"period": _this_month()},
    }

    async def fill(context: dict[str, Any]) -> None:
        cursor = request.query_params.get("cursor", "")
        items, next_cursor = await _flow(request).list(
            session.principal.tenant_id,
            status=tab if tab in ADJUSTMENT_STATUSES else None,
            metric=None,
            customer_ref=None,
            before_id=_number(cursor) or None,
            limit=PAGE_SIZE,
        )
        context["items"] = items
        if next_cursor:
            query = urlencode({"status": tab, "cursor": next_cursor})
            context["next_url"] = f"{PREFIX}/adjustments?{query}"

    return await render_filled("admin/adjustments.html", context, fill, extra=extra, status=status)


@router.get("/adjustments")
async def adjustments_page(request: Request) -> Response:
    """Adjustments of the tenant, newest first, by status tab."""
    return await show_page(request, render_adjustments)


def _adjustment_draft(form: Form) -> dict[str, str]:
    names = ("metric", "customerRef", "period", "delta", "reason", "note")
    return {name: field(form, name).strip() for name in names}


@router.post("/adjustments")
async def create_adjustment(request: Request) -> Response:
    """Create a pending adjustment (someone with ``adjustments:approve`` decides)."""

    async def work(session: ConsoleSession, form: Form) -> str:
        draft = _adjustment_draft(form)
        body: dict[str, Any] = {k: v for k, v in draft.items() if v or k != "note"}
        await _flow(request).create(
            session.principal.tenant_id, parse_new(body), actor=actor(session), request_id=None
        )
        return f"{PREFIX}/adjustments?notice=adjustment_created"

    return await form_action(
        request, Scope.RECONCILIATION_WRITE, work, render_adjustments, draft=_adjustment_draft
    )


async def _decide_adjustment(request: Request, adjustment_id: str, decision: str) -> Response:
    async def work(session: ConsoleSession, form: Form) -> str:
        flow, tenant, number = _flow(request), session.principal.tenant_id, _number(adjustment_id)
        if decision == "approve":
            await flow.approve(tenant, number, actor=actor(session), request_id=None)
        elif decision == "reject":
            await flow.reject(tenant, number, actor=actor(session), note=_note(form),
                              request_id=None)  # fmt: skip
        else:
            await flow.revert(tenant, number, actor=actor(session), note=_note(form),
                              request_id=None)  # fmt: skip
        return f"{PREFIX}/adjustments?notice=adjustment_{decision}"

    return await form_action(request, Scope.ADJUSTMENTS_APPROVE, work, render_adjustments)


@router.post("/adjustments/{adjustment_id}/approve")
async def approve_adjustment(request: Request, adjustment_id: str) -> Response:
    """Count a pending adjustment and push it (or true up)."""
    return await _decide_adjustment(request, adjustment_id, "approve")


@router.post("/adjustments/{adjustment_id}/reject")
async def reject_adjustment(request: Request, adjustment_id: str) -> Response:
    """Close a pending adjustment without counting it."""
    return await _decide_adjustment(request, adjustment_id, "reject")


@router.post("/adjustments/{adjustment_id}/revert")
async def revert_adjustment(request: Request, adjustment_id: str) -> Response:
    """Take an approved adjustment back out (net zero); Stripe follows."""
    return await _decide_adjustment(request, adjustment_id, "revert")


# --- alerts ------------------------------------------------------------------------------------


async def render_alerts(
    request: Request,
    session: ConsoleSession,
    *,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """Rules, current states and the latest history."""
    tenant = session.principal.tenant_id
    tab = request.query_params.get("status", "")
    alerts = services(request).alerts
    context = chrome(request, session, "alerts") | {
        "tab": tab,
        "statuses": STATE_STATUSES,
        "rules": [],
        "states": [],
        "history": [],
        "can_act": session.allows(Scope.MAPPINGS_WRITE),
        "notice": notice_text(request.query_params.get("notice")),
        "snooze_choices": SNOOZE_CHOICES,
    }

    async def fill(context: dict[str, Any]) -> None:
        context["rules"] = [rule_to_wire(r) for r in await alerts.rules.list(tenant)]
        context["states"], _ = await alerts.list_states(
            tenant,
            status=tab if tab in STATE_STATUSES else None,
            rule_id=None,
            customer_ref=None,
            metric=None,
            cursor=None,
            limit=PAGE_SIZE,
        )
        context["history"], _ = await alerts.list_events(
            tenant,
            cursor=None,
            limit=PAGE_SIZE,
            rule_id=None,
            state_id=None,
            customer_ref=None,
            kind=None,
            since=None,
            until=None,
        )

    return await render_filled("admin/alerts.html", context, fill, extra=extra, status=status)


@router.get("/alerts")
async def alerts_page(request: Request) -> Response:
    """Alert rules, states per customer and metric, and history."""
    return await show_page(request, render_alerts)


@router.post("/alerts/states/{state_id}/acknowledge")
async def acknowledge_alert(request: Request, state_id: str) -> Response:
    """Acknowledge a triggered alert: no re-notification until it escalates or resolves."""

    async def work(session: ConsoleSession, form: Form) -> str:
        await services(request).alerts.acknowledge(
            session.principal.tenant_id, _number(state_id), actor(session), _note(form)
        )
        return f"{PREFIX}/alerts?notice=alert_acknowledged"

    return await form_action(request, Scope.MAPPINGS_WRITE, work, render_alerts)


@router.post("/alerts/states/{state_id}/snooze")
async def snooze_alert(request: Request, state_id: str) -> Response:
    """Silence an alert's notifications for a while (``for`` = 1h, 1d, 7d, or ``off``)."""

    async def work(session: ConsoleSession, form: Form) -> str:
        alerts = services(request).alerts
        choice = field(form, "for", "1h")
        if choice != "off" and choice not in SNOOZE_CHOICES:
            raise InvalidInput("snooze for 1h, 1d or 7d", code="invalid_parameter", param="for")
        until = (
            None if choice == "off" else alerts.clock() + timedelta(seconds=SNOOZE_CHOICES[choice])
        )
        await alerts.snooze(
            session.principal.tenant_id, _number(state_id), actor(session), until, _note(form)
        )
        notice = "alert_unsnoozed" if choice == "off" else "alert_snoozed"
        return f"{PREFIX}/alerts?notice={notice}"

    return await form_action(request, Scope.MAPPINGS_WRITE, work, render_alerts)
