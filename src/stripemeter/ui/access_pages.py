"""Console pages for access and configuration: API keys, metric settings and strict mode, audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from stripemeter.domain.errors import InvalidInput, StripeMeterError
from stripemeter.domain.scopes import Scope
from stripemeter.services.audit_log import AuditLogService
from stripemeter.services.console_sessions import ConsoleSession
from stripemeter.services.keys import IssuedKey
from stripemeter.services.metrics_settings import MetricSettingsService, parse_change
from stripemeter.ui.admin import error_context
from stripemeter.ui.gate import PREFIX, action_gate, actor, chrome, field, page_gate, services
from stripemeter.ui.notices import notice_text
from stripemeter.ui.templating import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)

AUDIT_PAGE = 50
MAX_KEY_DAYS = 3650
SCOPE_HELP = {
    Scope.EVENTS_WRITE: "send usage events",
    Scope.EVENTS_READ: "read the ledger and the review queue",
    Scope.USAGE_READ: "read usage, customers, mappings; mint widget tokens",
    Scope.MAPPINGS_WRITE: "change price mappings, customers' Stripe ids, metric settings",
    Scope.RECONCILIATION_WRITE: "run reconciliation (when it ships)",
    Scope.ADJUSTMENTS_APPROVE: "approve or dismiss held events",
    Scope.ADMIN: "everything, including keys, strict mode and the audit log",
}


# --- API keys --------------------------------------------------------------------------------


async def render_keys(
    request: Request,
    session: ConsoleSession,
    *,
    error: dict[str, Any] | None = None,
    status: int = 200,
    issued: IssuedKey | None = None,
    rotated_from: str | None = None,
) -> Response:
    """The keys page; ``issued`` is a new key's secret, shown on this one response only."""
    context = chrome(request, session, "keys") | {
        "keys": await services(request).keys.list(session.principal.tenant_id),
        "scope_help": [(s.value, text) for s, text in SCOPE_HELP.items()],
        "issued": issued,
        "rotated_from": rotated_from,
        "notice": notice_text(request.query_params.get("notice")),
        "now": datetime.now(UTC),
    }
    return render("admin/keys.html", context | (error or {}), status=status)


@router.get("/keys")
async def keys_page(request: Request) -> Response:
    """The tenant's API keys (secrets are never shown again after creation)."""
    session = await page_gate(request, Scope.ADMIN)
    if isinstance(session, Response):
        return session
    return await render_keys(request, session)


@router.post("/keys")
async def create_key(request: Request) -> Response:
    """Mint a key with the chosen scopes; its secret appears once, in this response."""
    gate = await action_gate(request, Scope.ADMIN)
    if isinstance(gate, Response):
        return gate
    session, form = gate
    try:
        scopes = ",".join(form.get("scopes", []))
        if not scopes:
            raise InvalidInput("choose at least one scope", param="scopes")
        days = field(form, "expires_days").strip()
        expires_at = None
        if days:
            if not days.isdigit() or not 1 <= int(days) <= MAX_KEY_DAYS:
                raise InvalidInput(
                    f"expiry must be 1-{MAX_KEY_DAYS} days, or blank", param="expires_days"
                )
            expires_at = datetime.now(UTC) + timedelta(days=int(days))
        name = field(form, "name").strip()[:200]
        issued = await services(request).keys.create(
            session.principal.tenant_id,
            scopes,
            name=name,
            expires_at=expires_at,
            actor=actor(session),
        )
    except ValueError as exc:  # an unknown scope name
        return await render_keys(request, session, error={"error": str(exc)}, status=400)
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return await render_keys(request, session, error=extra, status=status)
    return await render_keys(request, session, issued=issued)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    """Revoke a key now; console sessions opened with it end too."""
    gate = await action_gate(request, Scope.ADMIN)
    if isinstance(gate, Response):
        return gate
    session, _ = gate
    try:
        await services(request).keys.revoke(
            key_id, tenant_id=session.principal.tenant_id, actor=actor(session)
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return await render_keys(request, session, error=extra, status=status)
    return RedirectResponse(f"{PREFIX}/keys?notice=key_revoked", status_code=303)


@router.post("/keys/{key_id}/rotate")
async def rotate_key(request: Request, key_id: str) -> Response:
    """Issue a replacement with the same scopes; the old key keeps working for 24 hours."""
    gate = await action_gate(request, Scope.ADMIN)
    if isinstance(gate, Response):
        return gate
    session, _ = gate
    try:
        issued = await services(request).keys.rotate(
            key_id, tenant_id=session.principal.tenant_id, actor=actor(session)
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return await render_keys(request, session, error=extra, status=status)
    return await render_keys(request, session, issued=issued, rotated_from=key_id)


# --- settings --------------------------------------------------------------------------------


def _settings_service(request: Request) -> MetricSettingsService:
    svc = services(request)
    return MetricSettingsService(svc.db, svc.catalog)


async def render_settings(
    request: Request,
    session: ConsoleSession,
    *,
    error: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """Metric settings and, for admins, strict mode."""
    service = _settings_service(request)
    tenant = session.principal.tenant_id
    context = chrome(request, session, "settings") | {
        "metrics": await service.list(tenant),
        "default_window": int(service.default_window.total_seconds()),
        "aggregations": ("sum", "max", "last", "count"),
        "can_write": session.allows(Scope.MAPPINGS_WRITE),
        "is_admin": session.allows(Scope.ADMIN),
        "strict": await service.strict_mode(tenant) if session.allows(Scope.ADMIN) else None,
        "notice": notice_text(request.query_params.get("notice")),
        "secret_from_settings": services(request).app_secret.from_settings,
    }
    return render("admin/settings.html", context | (error or {}), status=status)


@router.get("/settings")
async def settings_page(request: Request) -> Response:
    """How each metric is aggregated, its lateness window and unit; strict mode."""
    session = await page_gate(request, Scope.USAGE_READ)
    if isinstance(session, Response):
        return session
    return await render_settings(request, session)


@router.post("/settings/metrics")
async def save_metric(request: Request) -> Response:
    """Create or replace one metric's settings (audited)."""
    gate = await action_gate(request, Scope.MAPPINGS_WRITE)
    if isinstance(gate, Response):
        return gate
    session, form = gate
    try:
        hours = field(form, "lateness_hours").strip()
        window: int | None = None
        if hours:
            try:
                window = int((Decimal(hours) * 3600).to_integral_value())
            except ArithmeticError:
                raise InvalidInput(
                    "the lateness window is a number of hours", param="latenessWindowSeconds"
                ) from None
        body: dict[str, Any] = {"aggregation": field(form, "aggregation")}
        if window is not None:
            body["latenessWindowSeconds"] = window
        for name in ("unit", "description"):
            if field(form, name).strip():
                body[name] = field(form, name).strip()
        await _settings_service(request).put(
            session.principal.tenant_id,
            field(form, "metric").strip(),
            parse_change(body),
            actor=actor(session),
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return await render_settings(request, session, error=extra, status=status)
    return RedirectResponse(f"{PREFIX}/settings?notice=metric_saved", status_code=303)


@router.post("/settings/strict")
async def save_strict(request: Request) -> Response:
    """Turn strict metric mode on or off (admin, audited)."""
    gate = await action_gate(request, Scope.ADMIN)
    if isinstance(gate, Response):
        return gate
    session, form = gate
    await _settings_service(request).set_strict_mode(
        session.principal.tenant_id, field(form, "strict") == "1", actor=actor(session)
    )
    return RedirectResponse(f"{PREFIX}/settings?notice=strict_saved", status_code=303)


# --- audit log -------------------------------------------------------------------------------


@router.get("/audit")
async def audit_page(request: Request) -> Response:
    """Who changed what, newest first."""
    session = await page_gate(request, Scope.ADMIN)
    if isinstance(session, Response):
        return session
    context = chrome(request, session, "audit") | {"entries": [], "next_url": None}
    try:
        page = await AuditLogService(services(request).db).page(
            session.principal.tenant_id,
            cursor=request.query_params.get("cursor") or None,
            limit=AUDIT_PAGE,
        )
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        return render("admin/audit.html", context | extra, status=status)
    if page.next_cursor:
        context["next_url"] = f"{PREFIX}/audit?cursor={page.next_cursor}"
    return render("admin/audit.html", context | {"entries": page.items})
