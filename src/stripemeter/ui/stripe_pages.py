"""Console pages for the Stripe sync: price mappings, customers' Stripe ids, the push write log."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from stripemeter.domain.errors import StripeMeterError
from stripemeter.domain.scopes import Scope
from stripemeter.services import sync_store as store
from stripemeter.services.console_sessions import ConsoleSession
from stripemeter.services.mappings import DRIVERS
from stripemeter.ui.admin import error_context
from stripemeter.ui.gate import PREFIX, Form, chrome, field, page_gate, services
from stripemeter.ui.notices import notice_text
from stripemeter.ui.pages import PageRenderer, form_action, render_filled, show_page
from stripemeter.ui.templating import render

router = APIRouter(prefix=PREFIX, include_in_schema=False)

AGGREGATIONS = ("sum", "max", "last", "count")
TEXT_FIELDS = (
    "metric", "aggregation", "driver", "stripeAccount", "meterEventName", "meterId", "priceId",
    "subscriptionItemId", "currency", "shadowStripeAccount", "shadowMeterEventName",
    "shadowPriceId", "shadowSubscriptionItemId",
)  # fmt: skip
PAGE_SIZE = 50


def mapping_body(form: Form, *, editing: bool) -> dict[str, Any]:
    """The mapping fields of a submitted form, in API wire names.

    Creating: blank fields are left out (defaults apply). Editing: a blank field clears the value,
    and the two check boxes are always sent (an unticked box is absent from a form).
    """
    body: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if name not in form:
            continue
        value = field(form, name).strip()
        if value:
            body[name] = value
        elif editing and name not in ("metric", "aggregation", "driver", "stripeAccount"):
            body[name] = None
    if editing or "shadow" in form:
        body["shadow"] = field(form, "shadow") == "on"
    if editing:
        body["active"] = field(form, "active") == "on"
        body.pop("metric", None)
    return body


def _mapping_chrome(request: Request, session: ConsoleSession) -> dict[str, Any]:
    """What the mapping list and the edit page both need: the layout and the form's choices."""
    return chrome(request, session, "mappings") | {
        "aggregations": AGGREGATIONS,
        "drivers": DRIVERS,
        "can_write": session.allows(Scope.MAPPINGS_WRITE),
        "shadow_configured": services(request).stripe_sync.accounts.shadow is not None,
    }


async def render_mappings(
    request: Request,
    session: ConsoleSession,
    *,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """The mappings page (also re-rendered with a failed form's error and values)."""
    context = _mapping_chrome(request, session) | {
        "mappings": [],
        "notice": notice_text(request.query_params.get("notice")),
        "draft": {},
    }

    async def fill(context: dict[str, Any]) -> None:
        context["mappings"] = await services(request).stripe_sync.mappings.list(
            session.principal.tenant_id, active=None, metric=None
        )

    return await render_filled("admin/mappings.html", context, fill, extra=extra, status=status)


@router.get("/mappings")
async def mappings_page(request: Request) -> Response:
    """Every price mapping of the tenant, and a form to add one."""
    return await show_page(request, render_mappings)


def _mapping_draft(form: Form) -> dict[str, str]:
    return {name: field(form, name) for name in (*TEXT_FIELDS, "shadow")}


@router.post("/mappings")
async def create_mapping(request: Request) -> Response:
    """Create a mapping, validated against Stripe like the API does."""

    async def work(session: ConsoleSession, form: Form) -> str:
        await services(request).stripe_sync.mappings.create(
            session.principal.tenant_id, mapping_body(form, editing=False)
        )
        return f"{PREFIX}/mappings?notice=mapping_created"

    return await form_action(
        request, Scope.MAPPINGS_WRITE, work, render_mappings, draft=_mapping_draft
    )


def _edit_page(mapping_id: str) -> PageRenderer:
    """The page of one mapping's settings (an error page if the tenant has no such mapping)."""

    async def render_edit(
        request: Request,
        session: ConsoleSession,
        *,
        extra: dict[str, Any] | None = None,
        status: int = 200,
    ) -> Response:
        context = _mapping_chrome(request, session)
        try:
            mapping = await services(request).stripe_sync.mappings.get(
                session.principal.tenant_id, mapping_id
            )
        except StripeMeterError as exc:
            banner, code = error_context(exc)
            return render("admin/error.html", context | banner | {"title": "Mapping not found"},
                          status=code)  # fmt: skip
        return render(
            "admin/mapping_edit.html", context | {"m": mapping} | (extra or {}), status=status
        )

    return render_edit


@router.get("/mappings/{mapping_id}")
async def edit_mapping_page(request: Request, mapping_id: str) -> Response:
    """One mapping's settings, editable with ``mappings:write``."""
    return await show_page(request, _edit_page(mapping_id))


@router.post("/mappings/{mapping_id}")
async def update_mapping(request: Request, mapping_id: str) -> Response:
    """Save a mapping's changed fields (validated as a whole)."""

    async def work(session: ConsoleSession, form: Form) -> str:
        await services(request).stripe_sync.mappings.update(
            session.principal.tenant_id, mapping_id, mapping_body(form, editing=True)
        )
        return f"{PREFIX}/mappings?notice=mapping_saved"

    return await form_action(request, Scope.MAPPINGS_WRITE, work, _edit_page(mapping_id))


@router.post("/mappings/{mapping_id}/active")
async def set_active(request: Request, mapping_id: str) -> Response:
    """Deactivate (stop pushing) or reactivate a mapping."""

    async def work(session: ConsoleSession, form: Form) -> str:
        active = field(form, "active") == "1"
        await services(request).stripe_sync.mappings.update(
            session.principal.tenant_id, mapping_id, {"active": active}
        )
        notice = "mapping_activated" if active else "mapping_deactivated"
        return f"{PREFIX}/mappings?notice={notice}"

    return await form_action(request, Scope.MAPPINGS_WRITE, work, render_mappings)


# --- customers' Stripe ids -------------------------------------------------------------------


async def render_stripe_customers(
    request: Request,
    session: ConsoleSession,
    *,
    extra: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    """Customer mappings, a page at a time by customerRef, and the form to add one."""
    after = request.query_params.get("after") or None
    context = chrome(request, session, "stripe-customers") | {
        "customers": [],
        "can_write": session.allows(Scope.MAPPINGS_WRITE),
        "notice": notice_text(request.query_params.get("notice")),
        "draft": {},
        "next_url": None,
    }

    async def fill(context: dict[str, Any]) -> None:
        found = await services(request).stripe_sync.customers.list(
            session.principal.tenant_id, after=after, limit=PAGE_SIZE + 1
        )
        context["customers"] = found[:PAGE_SIZE]
        if len(found) > PAGE_SIZE:
            query = urlencode({"after": found[PAGE_SIZE - 1].customer_ref})
            context["next_url"] = f"{PREFIX}/stripe-customers?{query}"

    return await render_filled(
        "admin/stripe_customers.html", context, fill, extra=extra, status=status
    )


@router.get("/stripe-customers")
async def stripe_customers_page(request: Request) -> Response:
    """Which Stripe customer each customerRef bills to."""
    return await show_page(request, render_stripe_customers)


def _customer_body(form: Form) -> dict[str, str]:
    body = {
        "customerRef": field(form, "customerRef").strip(),
        "stripeCustomerId": field(form, "stripeCustomerId").strip(),
    }
    if field(form, "shadowStripeCustomerId").strip():
        body["shadowStripeCustomerId"] = field(form, "shadowStripeCustomerId").strip()
    return body


@router.post("/stripe-customers")
async def save_stripe_customer(request: Request) -> Response:
    """Create or replace one customer's Stripe id (and test-mode id for shadow pushes)."""

    async def work(session: ConsoleSession, form: Form) -> str:
        body: dict[str, Any] = dict(_customer_body(form))
        await services(request).stripe_sync.customers.put(session.principal.tenant_id, body)
        return f"{PREFIX}/stripe-customers?notice=customer_saved"

    return await form_action(
        request, Scope.MAPPINGS_WRITE, work, render_stripe_customers, draft=_customer_body
    )


@router.post("/stripe-customers/delete")
async def delete_stripe_customer(request: Request) -> Response:
    """Remove one customer mapping (its pushes park until it is mapped again)."""

    async def work(session: ConsoleSession, form: Form) -> str:
        await services(request).stripe_sync.customers.delete(
            session.principal.tenant_id, field(form, "customerRef")
        )
        return f"{PREFIX}/stripe-customers?notice=customer_deleted"

    return await form_action(request, Scope.MAPPINGS_WRITE, work, render_stripe_customers)


# --- pushes ----------------------------------------------------------------------------------


@router.get("/pushes")
async def pushes_page(request: Request) -> Response:
    """The two-phase write log: what Stripe confirmed, what is in flight, what is parked."""
    session = await page_gate(request, Scope.USAGE_READ)
    if isinstance(session, Response):
        return session
    status = request.query_params.get("status") or None
    if status not in (None, "ok", "pending", "parked"):
        status = None
    cursor = request.query_params.get("cursor", "")
    async with services(request).db.read() as conn:
        rows = await store.list_log(
            conn,
            session.principal.tenant_id,
            status=status,
            customer_ref=request.query_params.get("customerRef") or None,
            mapping_id=None,
            after_id=int(cursor) if cursor.isdigit() else None,
            limit=PAGE_SIZE + 1,
        )
    next_url = None
    if len(rows) > PAGE_SIZE:
        query = {"cursor": rows[PAGE_SIZE - 1].id} | ({"status": status} if status else {})
        next_url = f"{PREFIX}/pushes?{urlencode(query)}"
    return render(
        "admin/pushes.html",
        chrome(request, session, "pushes")
        | {"rows": rows[:PAGE_SIZE], "status": status, "next_url": next_url},
    )
