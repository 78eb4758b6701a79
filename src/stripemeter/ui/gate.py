"""Who may see a console page or take an action: session cookie, scope, CSRF token.

Pages call ``page_gate``; actions (POST) call ``action_gate``, which also reads the form and
checks its CSRF token against the session's in constant time. Either returns the session, or the
response to send instead (a redirect to sign in, or a 403 page naming the missing scope).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stripemeter.api.deps import services_of
from stripemeter.domain.scopes import Scope
from stripemeter.services.console_sessions import ConsoleSession
from stripemeter.ui.templating import render

if TYPE_CHECKING:
    from stripemeter.api.app import Services

SESSION_COOKIE = "sm_session"
LOGIN_CSRF_COOKIE = "sm_login_csrf"
MAX_FORM_BYTES = 64 * 1024
PREFIX = "/admin"

Form = dict[str, list[str]]


def services(request: Request) -> Services:
    """The process's services."""
    return services_of(request)


async def read_form(request: Request) -> Form:
    """An ``application/x-www-form-urlencoded`` body (other types and oversized bodies are empty)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return {}
    return parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=200)


def field(form: Form, name: str, default: str = "") -> str:
    """The first value of a form field."""
    values = form.get(name)
    return values[0] if values else default


def sign_in_redirect(request: Request) -> RedirectResponse:
    """Send the browser to sign in, coming back here afterwards (GET pages only)."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    to = quote(target, safe="") if request.method == "GET" else quote(PREFIX, safe="")
    return RedirectResponse(f"{PREFIX}/login?next={to}", status_code=303)


def forbidden(request: Request, session: ConsoleSession, scope: Scope) -> Response:
    """The page shown when the session's key lacks a scope."""
    return render(
        "admin/forbidden.html",
        chrome(request, session, "") | {"scope": scope.value},
        status=403,
    )


async def current_session(request: Request) -> ConsoleSession | None:
    """The session behind the request's cookie, if it is live."""
    return await services(request).console_sessions.resolve(request.cookies.get(SESSION_COOKIE))


async def page_gate(request: Request, scope: Scope | None) -> ConsoleSession | Response:
    """The session for a page needing ``scope`` (None: any signed-in key), or the response instead."""
    session = await current_session(request)
    if session is None:
        return sign_in_redirect(request)
    if scope is not None and not session.allows(scope):
        return forbidden(request, session, scope)
    return session


async def action_gate(
    request: Request, scope: Scope | None
) -> tuple[ConsoleSession, Form] | Response:
    """Like ``page_gate`` for a POST, and the form, whose CSRF token must be the session's."""
    session = await current_session(request)
    if session is None:
        return sign_in_redirect(request)
    form = await read_form(request)
    presented = field(form, "csrf_token")
    if not presented or not hmac.compare_digest(presented.encode(), session.csrf_token.encode()):
        return render(
            "admin/error.html",
            chrome(request, session, "")
            | {
                "title": "This form expired",
                "message": "The form's security token did not match your session. Go back, "
                "reload the page and try again.",
            },
            status=403,
        )
    if scope is not None and not session.allows(scope):
        return forbidden(request, session, scope)
    return session, form


def chrome(request: Request, session: ConsoleSession | None, active: str) -> dict[str, Any]:
    """What the layout needs on every page: who is signed in, the navigation, the Stripe mode."""
    stripe = services(request).stripe_sync.health()
    nav: list[dict[str, Any]] = []
    if session is not None:
        can = session.allows
        nav = [
            {"id": "overview", "label": "Overview", "href": PREFIX, "ok": True},
            {"id": "events", "label": "Events", "href": f"{PREFIX}/events",
             "ok": can(Scope.EVENTS_READ)},
            {"id": "held", "label": "Review queue", "href": f"{PREFIX}/held",
             "ok": can(Scope.EVENTS_READ)},
            {"id": "customers", "label": "Customers", "href": f"{PREFIX}/customers",
             "ok": can(Scope.USAGE_READ)},
            {"id": "mappings", "label": "Price mappings", "href": f"{PREFIX}/mappings",
             "ok": can(Scope.USAGE_READ)},
            {"id": "stripe-customers", "label": "Stripe customers",
             "href": f"{PREFIX}/stripe-customers", "ok": can(Scope.USAGE_READ)},
            {"id": "pushes", "label": "Pushes", "href": f"{PREFIX}/pushes",
             "ok": can(Scope.USAGE_READ)},
            {"id": "settings", "label": "Settings", "href": f"{PREFIX}/settings",
             "ok": can(Scope.USAGE_READ)},
            {"id": "reconciliation", "label": "Reconciliation",
             "href": f"{PREFIX}/reconciliation", "ok": can(Scope.USAGE_READ)},
            {"id": "adjustments", "label": "Adjustments", "href": f"{PREFIX}/adjustments",
             "ok": can(Scope.USAGE_READ)},
            {"id": "alerts", "label": "Alerts", "href": f"{PREFIX}/alerts",
             "ok": can(Scope.USAGE_READ)},
            {"id": "keys", "label": "API keys", "href": f"{PREFIX}/keys", "ok": can(Scope.ADMIN)},
            {"id": "audit", "label": "Audit log", "href": f"{PREFIX}/audit",
             "ok": can(Scope.ADMIN)},
        ]  # fmt: skip
    return {
        "session": session,
        "csrf_token": session.csrf_token if session else "",
        "nav": nav,
        "active": active,
        "stripe": stripe,
        "prefix": PREFIX,
        "scopes": sorted(s.value for s in session.principal.scopes) if session else [],
    }


def actor(session: ConsoleSession) -> str:
    """How the audit log names a console user: the key they signed in with."""
    return f"key:{session.principal.key_id}"
