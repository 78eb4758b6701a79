"""The scaffolding console pages share: a gated page, a list filled from services, a form action.

A form action that fails re-renders its page with ``extra``: the error banner and, where the form
creates something, its values as ``draft``, so the user corrects them instead of typing again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stripemeter.domain.errors import StripeMeterError
from stripemeter.domain.scopes import Scope
from stripemeter.services.console_sessions import ConsoleSession
from stripemeter.ui.admin import error_context
from stripemeter.ui.gate import Form, action_gate, page_gate
from stripemeter.ui.templating import render

Context = dict[str, Any]
Work = Callable[[ConsoleSession, Form], Awaitable[str]]


class PageRenderer(Protocol):
    """Renders a page for a session, with what a failed action adds (``extra``) on top."""

    def __call__(
        self,
        request: Request,
        session: ConsoleSession,
        *,
        extra: Context | None = None,
        status: int = 200,
    ) -> Awaitable[Response]: ...


async def show_page(
    request: Request, render_page: PageRenderer, scope: Scope = Scope.USAGE_READ
) -> Response:
    """The page for a session allowed ``scope``, or the gate's answer (sign in, forbidden)."""
    session = await page_gate(request, scope)
    if isinstance(session, Response):
        return session
    return await render_page(request, session)


async def render_filled(
    template: str,
    context: Context,
    fill: Callable[[Context], Awaitable[None]],
    *,
    extra: Context | None,
    status: int,
) -> Response:
    """``template`` once ``fill`` has loaded its rows into ``context``; a domain error is the banner.

    What ``fill`` loaded before the error stays on the page.
    """
    try:
        await fill(context)
    except StripeMeterError as exc:
        banner, status = error_context(exc)
        context |= banner
    return render(template, context | (extra or {}), status=status)


async def form_action(
    request: Request,
    scope: Scope,
    work: Work,
    render_page: PageRenderer,
    *,
    draft: Callable[[Form], dict[str, str]] | None = None,
) -> Response:
    """Gate a form, do ``work`` and redirect (303) to the URL it returns.

    A domain error re-renders ``render_page`` with its banner and, given ``draft``, the form's values.
    """
    gate = await action_gate(request, scope)
    if isinstance(gate, Response):
        return gate
    session, form = gate
    try:
        done = await work(session, form)
    except StripeMeterError as exc:
        extra, status = error_context(exc)
        if draft is not None:
            extra["draft"] = draft(form)
        return await render_page(request, session, extra=extra, status=status)
    return RedirectResponse(done, status_code=303)
