"""Reconciliation reports, runs, suggestions, settings, invoice parity and explain."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from stripemeter.api.auth import require
from stripemeter.api.deps import request_id_of, services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import actor_of, read_optional_object, reject_unknown
from stripemeter.domain.drift import Totals
from stripemeter.domain.errors import InvalidInput, NotFound
from stripemeter.domain.periods import Period, month_from_label
from stripemeter.domain.scopes import Scope
from stripemeter.services.explain import explain
from stripemeter.services.keys import Principal
from stripemeter.services.reconciliation import Reconciliation
from stripemeter.store import billing
from stripemeter.store import reconciliation as store

router = APIRouter(tags=["reconciliation"])

PERIOD_PATTERN = r"^\d{4}-\d{2}$"


def _recon(request: Request) -> Reconciliation:
    return services_of(request).reconciliation


def _month(label: str, param: str = "period") -> Period:
    try:
        return month_from_label(label)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="invalid_period", param=param) from None


def report_to_wire(report: store.Report, suggestion: store.Suggestion | None) -> dict[str, Any]:
    """A current report row in wire names (the original's names where sound)."""
    return {
        "id": report.id,
        "metric": report.key.metric,
        "mappingId": report.key.mapping_id or None,
        "target": report.key.target,
        "customerRef": report.key.customer_ref,
        "stripeCustomerId": report.stripe_customer_id,
        "period": report.key.period.label,
        "periodStart": report.key.period.start,
        "periodEnd": report.key.period.end,
        "localTotal": report.local_total,
        "pushedTotal": report.pushed_total,
        "stripeTotal": report.stripe_total,
        "truedUp": report.trued_up,
        "diff": report.drift_abs,
        "driftPct": report.drift_pct,
        "epsilon": report.epsilon,
        "status": report.status,
        "detail": report.detail,
        "closed": report.closed,
        "runId": report.run_id,
        "checkedAt": report.checked_at,
        "suggestion": suggestion_to_wire(suggestion) if suggestion else None,
    }


def suggestion_to_wire(s: store.Suggestion) -> dict[str, Any]:
    """A suggestion in wire names."""
    return {
        "id": s.id,
        "reportId": s.report_id,
        "kind": s.kind,
        "delta": s.delta,
        "description": s.description,
        "status": s.status,
        "result": s.result,
        "appliedBy": s.applied_by,
        "appliedAt": s.applied_at,
        "updatedAt": s.updated_at,
    }


async def _reports(
    request: Request, tenant_id: str, period: Period | None, **filters: Any
) -> tuple[list[store.Report], dict[int, store.Suggestion]]:
    async with _recon(request).reconciler.db.read() as conn:
        reports = await store.list_reports(
            conn,
            tenant_id,
            since=period.start if period else None,
            until=period.end if period else None,
            limit=10_000,
            **filters,
        )
        suggestions = await store.suggestions_for(conn, tenant_id, [r.id for r in reports])
    return reports, suggestions


def _csv_response(rows: list[list[Any]], filename: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(["" if v is None else str(v) for v in row])
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _period_report(
    request: Request, principal: Principal, label: str, fmt: str, status: str | None
) -> Response:
    period = _month(label)
    reports, suggestions = await _reports(request, principal.tenant_id, period, status=status)
    if fmt == "csv":
        rows: list[list[Any]] = [
            [
                "metric",
                "mapping_id",
                "customer_ref",
                "period",
                "local",
                "pushed",
                "stripe",
                "drift_abs",
                "drift_pct",
                "status",
            ]
        ]
        rows += [
            [
                r.key.metric,
                r.key.mapping_id,
                r.key.customer_ref,
                r.key.period.label,
                r.local_total,
                r.pushed_total,
                r.stripe_total,
                r.drift_abs,
                r.drift_pct,
                r.status,
            ]
            for r in reports
        ]
        return _csv_response(rows, f"reconciliation_{principal.tenant_id}_{label}.csv")
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.status] = counts.get(r.status, 0) + 1
    return JSON(
        {
            "period": label,
            "reports": [report_to_wire(r, suggestions.get(r.id)) for r in reports],
            "suggestedAdjustments": [
                suggestion_to_wire(s) for s in suggestions.values() if s.status == "open"
            ],
            "summary": {
                "total": len(reports),
                **{k: counts.get(k, 0) for k in ("ok", "drift", "pending", "unmapped", "error")},
                "maxDiff": max((r.drift_abs or Decimal(0) for r in reports), default=Decimal(0)),
            },
        }
    )


@router.get(
    "/v1/reconciliation",
    summary="Current reconciliation report of a month",
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV with format=csv",
        }
    },
)
async def get_reconciliation(
    request: Request,
    period: str = Query(..., pattern=PERIOD_PATTERN),
    format: str = Query("json", pattern="^(json|csv)$"),
    status: str | None = Query(None, pattern="^(ok|drift|pending|unmapped|error)$"),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """One row per (mapping, target, customer, period) starting in the month."""
    return await _period_report(request, principal, period, format, status)


@router.get(
    "/v1/reconciliation/summary",
    summary="Totals per metric and overall",
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV with format=csv",
        }
    },
)
async def summary(
    request: Request,
    period_start: str | None = Query(None, alias="periodStart", pattern=PERIOD_PATTERN),
    period_end: str | None = Query(None, alias="periodEnd", pattern=PERIOD_PATTERN),
    period: str | None = Query(None, pattern=PERIOD_PATTERN),
    format: str = Query("json", pattern="^(json|csv)$"),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Sums of the current rows (never of every run), per metric and overall."""
    first = _month(period_start or period or "", "periodStart")
    last = _month(period_end or period_start or period or "", "periodEnd")
    if last.start < first.start:
        raise InvalidInput(
            "periodEnd is before periodStart", code="invalid_range", param="periodEnd"
        )
    async with _recon(request).reconciler.db.read() as conn:
        reports = await store.list_reports(
            conn, principal.tenant_id, since=first.start, until=last.end, limit=100_000
        )
    per_metric: dict[str, Totals] = {}
    overall = Totals()
    for r in reports:
        if r.key.target != "live":
            continue
        per_metric[r.key.metric] = per_metric.get(r.key.metric, Totals()).add(
            r.local_total, r.stripe_total
        )
        overall = overall.add(r.local_total, r.stripe_total)

    def wire(name: str | None, t: Totals) -> dict[str, Any]:
        body: dict[str, Any] = {
            "local": t.local,
            "stripe": t.stripe,
            "drift_abs": t.drift.absolute,
            "drift_pct": t.drift.relative,
            "items": t.items,
        }
        return {"metric": name, **body} if name is not None else body

    if format == "csv":
        rows: list[list[Any]] = [["metric", "local", "stripe", "drift_abs", "drift_pct", "items"]]
        for name, t in sorted(per_metric.items()):
            rows.append([name, t.local, t.stripe, t.drift.absolute, t.drift.relative, t.items])
        o = overall
        rows.append(["TOTAL", o.local, o.stripe, o.drift.absolute, o.drift.relative, o.items])
        return _csv_response(rows, f"reconciliation_summary_{principal.tenant_id}.csv")
    return JSON(
        {
            "periodStart": first.label,
            "periodEnd": last.label,
            "perMetric": [wire(name, t) for name, t in sorted(per_metric.items())],
            "overall": {**wire(None, overall), "metrics": len(per_metric)},
        }
    )


@router.post("/v1/reconciliation/run", summary="Reconcile now", status_code=200)
async def run(
    request: Request, principal: Principal = Depends(require(Scope.RECONCILIATION_WRITE))
) -> Response:
    """``{customerRef?, period?}``: run now for the key's tenant and return the rows written."""
    body = await read_optional_object(request, principal) or {}
    reject_unknown(body, {"customerRef", "period"})
    ref = body.get("customerRef")
    if ref is not None and (not isinstance(ref, str) or not ref):
        raise InvalidInput("customerRef must be a string", code="invalid_type", param="customerRef")
    label = body.get("period")
    period = _month(label) if isinstance(label, str) else None
    result = await _recon(request).reconciler.run(
        principal.tenant_id, customer_ref=ref, period=period, trigger="manual"
    )
    return JSON(
        {
            "runId": result.run_id,
            "status": result.status,
            "counts": result.counts,
            "reports": [report_to_wire(r, None) for r in result.reports],
        }
    )


@router.get("/v1/reconciliation/runs", summary="Recent reconciliation runs")
async def runs(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Runs of the tenant (and scheduled all-tenant runs), newest first."""
    async with _recon(request).reconciler.db.read() as conn:
        rows = await store.list_runs(conn, principal.tenant_id, limit)
    return JSON(
        {
            "data": [
                {
                    "id": r["id"],
                    "trigger": r["trigger"],
                    "customerRef": r["customer_ref"],
                    "status": r["status"],
                    "counts": r["counts"],
                    "error": r["error"],
                    "startedAt": r["started_at"],
                    "finishedAt": r["finished_at"],
                }
                for r in rows
            ]
        }
    )


@router.get("/v1/reconciliation/suggestions", summary="Suggested repairs")
async def suggestions(
    request: Request,
    status: str | None = Query("open", pattern="^(open|applying|applied|resolved)$"),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Suggestions, newest first."""
    async with _recon(request).reconciler.db.read() as conn:
        found = await store.list_suggestions(conn, principal.tenant_id, status, 1000)
    return JSON({"data": [suggestion_to_wire(s) for s in found]})


@router.post("/v1/reconciliation/suggestions/{suggestion_id}/apply", summary="Apply a repair")
async def apply(
    request: Request,
    suggestion_id: int = Path(..., ge=1, le=2**63 - 1),
    principal: Principal = Depends(require(Scope.RECONCILIATION_WRITE)),
) -> Response:
    """Execute the suggestion through the pusher (or a true-up) and re-verify."""
    result = await _recon(request).reconciler.apply_suggestion(
        principal.tenant_id,
        suggestion_id,
        actor=actor_of(principal),
        request_id=request_id_of(request),
    )
    return JSON({"id": suggestion_id, "status": "applied", "result": result})


@router.get("/v1/reconciliation/settings", summary="Reconciliation settings")
async def get_settings(
    request: Request, principal: Principal = Depends(require(Scope.USAGE_READ))
) -> Response:
    """The tenant's settings and each mapping's epsilon."""
    found = await _recon(request).reconciler.settings_for(principal.tenant_id)
    return JSON(_settings_wire(found))


@router.put("/v1/reconciliation/settings", summary="Change reconciliation settings")
async def put_settings(
    request: Request, principal: Principal = Depends(require(Scope.RECONCILIATION_WRITE))
) -> Response:
    """``{epsilon?, gatePolicy?, allowSelfApproval?, mappingId?}`` (epsilon only per mapping)."""
    body = await read_optional_object(request, principal) or {}
    reject_unknown(body, {"epsilon", "gatePolicy", "allowSelfApproval", "mappingId"})
    values: dict[str, Any] = {}
    mapping_id = body.get("mappingId") or ""
    if "epsilon" in body:
        eps = body["epsilon"]
        if isinstance(eps, bool) or not isinstance(eps, (int, Decimal)) or not 0 <= eps < 1:
            raise InvalidInput("epsilon must be a number in [0, 1)", param="epsilon")
        values["epsilon"] = Decimal(eps)
    if "gatePolicy" in body:
        if body["gatePolicy"] not in ("hold", "report") or mapping_id:
            raise InvalidInput("gatePolicy is hold|report, per tenant", param="gatePolicy")
        values["gate_policy"] = body["gatePolicy"]
    if "allowSelfApproval" in body:
        if not isinstance(body["allowSelfApproval"], bool) or mapping_id:
            raise InvalidInput(
                "allowSelfApproval is a boolean, per tenant", param="allowSelfApproval"
            )
        values["allow_self_approval"] = body["allowSelfApproval"]
    found = await _recon(request).reconciler.update_settings(
        principal.tenant_id, str(mapping_id), values, actor=actor_of(principal)
    )
    return JSON(_settings_wire(found))


def _settings_wire(found: dict[str, store.Settings]) -> dict[str, Any]:
    tenant = found[store.TENANT_SCOPE]
    return {
        "epsilon": tenant.epsilon,
        "gatePolicy": tenant.gate_policy,
        "allowSelfApproval": tenant.allow_self_approval,
        "mappings": {k: {"epsilon": v.epsilon} for k, v in found.items() if k},
    }


@router.get("/v1/invoices/{invoice_id}/parity", summary="Pre-invoice parity of an invoice")
async def parity(
    request: Request,
    invoice_id: str = Path(..., max_length=255),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Local vs Stripe per usage line, and every action the gate took."""
    async with _recon(request).reconciler.db.read() as conn:
        row = await billing.get_parity(conn, principal.tenant_id, invoice_id)
    if row is None:
        raise NotFound(f"no parity record for invoice {invoice_id}", code="parity_not_found")
    return JSON(
        {
            "invoiceId": row["invoice_id"],
            "customerRef": row["customer_ref"],
            "stripeCustomerId": row["stripe_customer_id"],
            "periodStart": row["period_start"],
            "periodEnd": row["period_end"],
            "policy": row["policy"],
            "status": row["status"],
            "lines": row["lines"],
            "actions": row["actions"],
            "updatedAt": row["updated_at"],
        }
    )


@router.get("/v1/reconciliation/alerts", summary="Billing alerts raised by the invoice gate")
async def billing_alerts(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Alerts newest first (issue 8 builds the full alerting on top)."""
    async with _recon(request).reconciler.db.read() as conn:
        rows = await billing.list_alerts(conn, principal.tenant_id, limit)
    return JSON(
        {
            "data": [
                {
                    "id": r["id"],
                    "kind": r["kind"],
                    "severity": r["severity"],
                    "subject": r["subject"],
                    "message": r["message"],
                    "details": r["details"],
                    "createdAt": r["created_at"],
                    "resolvedAt": r["resolved_at"],
                }
                for r in rows
            ]
        }
    )


@router.get("/v1/explain", summary="Explain a billed total down to its events")
async def explain_route(
    request: Request,
    customer_ref: str = Query(..., alias="customerRef", min_length=1, max_length=255),
    metric: str = Query(..., min_length=1, max_length=100),
    period: str = Query(..., pattern=PERIOD_PATTERN),
    limit: int = Query(100, ge=1, le=1000),
    cursor: int | None = Query(None, ge=0),
    format: str = Query("json", pattern="^(json|csv)$"),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """Invoice line (or counter) → events, adjustments, pushes, true-ups, reconciliation."""
    body = await explain(
        _recon(request).reconciler,
        principal.tenant_id,
        customer_ref,
        metric,
        _month(period),
        after_id=cursor,
        limit=100_000 if format == "csv" else limit,
    )
    if format == "csv":
        rows: list[list[Any]] = [["kind", "id", "ts", "quantity", "status", "reference"]]
        for e in body["events"]:
            rows.append(
                ["event", e["id"], e["ts"], e["quantity"], e["status"], e["idempotencyKey"]]
            )
        for a in body["adjustments"]:
            rows.append(
                ["adjustment", a["id"], a["createdAt"], a["delta"], a["status"], a["reason"]]
            )
        for p in body["pushes"]:
            rows.append(
                ["push", p["id"], p["updatedAt"], p["pushedTotal"], p["status"], p["identifier"]]
            )
        for t in body["trueUps"]:
            rows.append(
                ["true_up", t["id"], t["createdAt"], t["quantity"], t["status"], t["stripeId"]]
            )
        return _csv_response(rows, f"explain_{customer_ref}_{metric}_{period}.csv")
    return JSON(body)


@router.get(
    "/v1/reconciliation/{period}",
    summary="Current reconciliation report of a month",
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV with format=csv",
        }
    },
)
async def get_reconciliation_by_path(
    request: Request,
    period: str = Path(..., pattern=PERIOD_PATTERN),
    format: str = Query("json", pattern="^(json|csv)$"),
    principal: Principal = Depends(require(Scope.USAGE_READ)),
) -> Response:
    """The original product's path form of ``GET /v1/reconciliation?period=``."""
    return await _period_report(request, principal, period, format, None)
