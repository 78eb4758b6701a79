"""Charts as inline SVG, rendered on the server: no script, no external library, exact labels.

Colours come from CSS classes (``chart-*``), so the console and the widget's light and dark themes
style them; only geometry is computed here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

from stripemeter.ui.templating import number

PAD_LEFT = 52  # room for the y-axis labels, in SVG units
PAD_RIGHT = 12
PAD_TOP = 12
PAD_BOTTOM = 26


@dataclass(frozen=True, slots=True)
class Series:
    """One stacked layer: a CSS class suffix, a legend name and a value per x position."""

    css: str
    name: str
    values: Sequence[Decimal | int]


def nice_ceiling(value: Decimal | int) -> Decimal:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for zero), for a readable axis."""
    amount = Decimal(value)
    if amount <= 0:
        return Decimal(1)
    exponent = math.floor(math.log10(float(amount)))
    for step in (1, 2, 5, 10):
        candidate = Decimal(step).scaleb(exponent)
        if candidate >= amount:
            return candidate
    return Decimal(10).scaleb(exponent)  # pragma: no cover - the loop always returns


def _f(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _frame(width: int, height: int, top: Decimal, label: str) -> list[str]:
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    plot_h = height - PAD_TOP - PAD_BOTTOM
    for i in range(5):
        y = PAD_TOP + plot_h * i / 4
        tick = top * Decimal(4 - i) / 4
        parts.append(
            f'<line class="chart-grid" x1="{PAD_LEFT}" x2="{width - PAD_RIGHT}" '
            f'y1="{_f(y)}" y2="{_f(y)}"/>'
            f'<text class="chart-label" x="{PAD_LEFT - 6}" y="{_f(y + 4)}" '
            f'text-anchor="end">{escape(number(tick.normalize()))}</text>'
        )
    return parts


def _x_labels(labels: Sequence[str], width: int, height: int, every: int) -> list[str]:
    plot_w = width - PAD_LEFT - PAD_RIGHT
    slot = plot_w / max(len(labels), 1)
    return [
        f'<text class="chart-label" x="{_f(PAD_LEFT + slot * (i + 0.5))}" y="{height - 8}" '
        f'text-anchor="middle">{escape(text)}</text>'
        for i, text in enumerate(labels)
        if i % every == 0 and text
    ]


def stacked_bars(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 720,
    height: int = 220,
    label_every: int = 10,
) -> Markup:
    """Stacked bars, one per label, each bar with a hover title listing its values."""
    totals = [sum((Decimal(s.values[i]) for s in series), Decimal(0)) for i in range(len(labels))]
    top = nice_ceiling(max(totals, default=Decimal(0)))
    parts = _frame(width, height, top, title)
    plot_w = width - PAD_LEFT - PAD_RIGHT
    plot_h = height - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(labels), 1)
    bar = max(slot * 0.72, 1.0)
    for i, text in enumerate(labels):
        base = float(PAD_TOP + plot_h)
        detail = ", ".join(f"{s.name} {number(s.values[i])}" for s in series)
        parts.append(f"<g><title>{escape(text)}: {escape(detail)}</title>")
        parts.append(
            f'<rect class="chart-hit" x="{_f(PAD_LEFT + slot * i)}" y="{PAD_TOP}" '
            f'width="{_f(slot)}" height="{plot_h}"/>'
        )
        for s in series:
            value = Decimal(s.values[i])
            if value <= 0:
                continue
            h = float(value / top) * plot_h
            base -= h
            parts.append(
                f'<rect class="chart-{s.css}" x="{_f(PAD_LEFT + slot * i + (slot - bar) / 2)}" '
                f'y="{_f(base)}" width="{_f(bar)}" height="{_f(max(h, 0.5))}" rx="1.5"/>'
            )
        parts.append("</g>")
    parts.extend(_x_labels(labels, width, height, label_every))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped


def area(
    labels: Sequence[str],
    values: Sequence[Decimal],
    *,
    title: str,
    width: int = 720,
    height: int = 200,
    label_every: int = 5,
) -> Markup:
    """A filled line through one value per label, with a dot and hover title on each point."""
    top = nice_ceiling(max(values, default=Decimal(0)))
    parts = _frame(width, height, top, title)
    plot_w = width - PAD_LEFT - PAD_RIGHT
    plot_h = height - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(labels), 1)
    points = [
        (PAD_LEFT + slot * (i + 0.5), PAD_TOP + plot_h - float(Decimal(v) / top) * plot_h)
        for i, v in enumerate(values)
    ]
    if points:
        line = " ".join(f"{_f(x)},{_f(y)}" for x, y in points)
        floor = PAD_TOP + plot_h
        parts.append(
            f'<polygon class="chart-area" points="{_f(points[0][0])},{floor} {line} '
            f'{_f(points[-1][0])},{floor}"/>'
            f'<polyline class="chart-line" points="{line}"/>'
        )
        for (x, y), text, value in zip(points, labels, values, strict=True):
            parts.append(
                f"<g><title>{escape(text)}: {escape(number(value))}</title>"
                f'<rect class="chart-hit" x="{_f(x - slot / 2)}" y="{PAD_TOP}" '
                f'width="{_f(slot)}" height="{plot_h}"/>'
                f'<circle class="chart-dot" cx="{_f(x)}" cy="{_f(y)}" r="2.5"/></g>'
            )
    parts.extend(_x_labels(labels, width, height, label_every))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
