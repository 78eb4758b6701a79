"""``stripemeter usage CUSTOMER``: a customer's usage this period, or a metric's history."""

from __future__ import annotations

from enum import StrEnum

import typer
from rich.table import Table

from stripemeter.cli.common import JsonOption, console, print_json
from stripemeter.cli.remote import ApiKeyOption, UrlOption, cell, connect
from stripemeter.client import StripeMeterClient, Usage, UsageHistory


class Interval(StrEnum):
    """History bucket sizes."""

    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


def register(app: typer.Typer) -> None:
    """Add ``usage`` to the root command."""
    app.command("usage")(usage)


def usage(
    customer: str = typer.Argument(..., help="The customerRef."),
    metric: list[str] | None = typer.Option(
        None, "--metric", help="Only this metric (repeatable)."
    ),
    period: str | None = typer.Option(None, "--period", help="YYYY-MM (default: the current one)."),
    history: bool = typer.Option(False, "--history", help="Buckets over time instead of totals."),
    interval: Interval = typer.Option(
        Interval.DAY, "--interval", help="History bucket size.", envvar="STRIPEMETER_USAGE_INTERVAL"
    ),
    since: str | None = typer.Option(
        None, "--from", help="History start (RFC 3339 or YYYY-MM-DD)."
    ),
    until: str | None = typer.Option(None, "--to", help="History end, exclusive."),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Billing value per metric (sum, max, last or count as configured) for the period."""
    with connect(url, api_key) as client:
        current = client.get_usage(customer, period=period)
        metrics = metric or [m.name for m in current.metrics]
        histories = [
            fetch_history(client, customer, m, interval, since, until)
            for m in (metrics if history else [])
        ]
    if history:
        print_histories(histories, as_json)
    else:
        print_current(current, set(metric or ()), as_json)


def fetch_history(
    client: StripeMeterClient,
    customer: str,
    metric: str,
    interval: Interval,
    since: str | None,
    until: str | None,
) -> UsageHistory:
    """One metric's buckets over ``[since, until)``."""
    return client.get_usage_history(
        customer, metric=metric, interval=interval.value, period_start=since, period_end=until
    )


def print_current(current: Usage, only: set[str], as_json: bool) -> None:
    """The period's totals, as a table or the server's JSON."""
    metrics = [m for m in current.metrics if not only or m.name in only]
    if as_json:
        print_json({**current.raw, "metrics": [m.raw for m in metrics]})
        return
    start = current.period_start.date().isoformat() if current.period_start else "?"
    end = current.period_end.date().isoformat() if current.period_end else "?"
    table = Table(
        "metric", "aggregation", "value", "sum", "max", "last", "events", "updated",
        title=f"{current.customer_ref}: {start} to {end} (end exclusive)",
    )  # fmt: skip
    for m in metrics:
        updated = m.updated_at.isoformat(timespec="seconds") if m.updated_at else ""
        table.add_row(
            m.name, cell(m.aggregation), str(m.current), cell(m.sum), cell(m.max), cell(m.last),
            cell(m.count), updated,
        )  # fmt: skip
    console.print(table)
    if not metrics:
        console.print("no usage in this period")


def print_histories(histories: list[UsageHistory], as_json: bool) -> None:
    """Each metric's buckets, as tables or the server's JSON."""
    if as_json:
        print_json([h.raw for h in histories])
        return
    for history in histories:
        title = f"{history.metric} ({history.aggregation}, per {history.interval})"
        table = Table("from", "value", title=title)
        for point in history.points:
            table.add_row(point.start.isoformat(timespec="seconds"), str(point.value))
        table.add_row("total", cell(history.total))
        console.print(table)
    if not histories:
        console.print("no usage in this period")
