"""Jinja2 rendering for the console and the widget: one environment, filters, security headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"

# The console is never framed and loads nothing from elsewhere; charts are inline SVG markup.
CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# The widget frame is made to be embedded anywhere, and never sends its token URL as a referrer.
WIDGET_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def number(value: Any, places: int | None = None) -> str:
    """A quantity with thousands separators and no float rounding (Decimal in, text out)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    if places is not None:
        amount = amount.quantize(Decimal(1).scaleb(-places))
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):f}"
    whole, _, fraction = text.partition(".")
    grouped = f"{int(whole):,}"
    return f"{sign}{grouped}.{fraction}" if fraction else f"{sign}{grouped}"


def when(value: datetime | str | None) -> str:
    """An instant as ``2026-11-27 21:30:05 UTC``."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def day(value: datetime | None) -> str:
    """An instant's UTC date."""
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d")


def ago(value: datetime | None) -> str:
    """How long ago an instant was, roughly."""
    if value is None:
        return "never"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 0:
        return "in the future"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def pretty_json(value: Any) -> str:
    """Indented JSON for display (text that is not JSON is shown as it is)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def duration(seconds: int) -> str:
    """Seconds as the largest whole unit (``48 h``, ``90 min``)."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "js"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(
    number=number, when=when, day=day, ago=ago, pretty_json=pretty_json, duration=duration
)


def render(
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a template into an HTML response with the console's security headers."""
    html = environment.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=headers or CONSOLE_HEADERS)


def base_url(request: Request) -> str:
    """The server's origin as the browser reached it."""
    return str(request.base_url).rstrip("/")
