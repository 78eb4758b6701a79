"""``stripemeter reconcile``: compare local totals with Stripe's now, and show the report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer
from rich.table import Table

from stripemeter.cli.common import JsonOption, console, print_json
from stripemeter.cli.remote import ApiKeyOption, UrlOption, cell, connect

PROBLEMS = frozenset({"drift", "error"})


def register(app: typer.Typer) -> None:
    """Add ``reconcile`` to the root command."""
    app.command("reconcile")(reconcile)


def reconcile(
    customer: str | None = typer.Option(None, "--customer", help="Only this customerRef."),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Reconcile now against Stripe; exit 1 when a total drifts or cannot be read."""
    with connect(url, api_key) as client:
        result = client.run_reconciliation(customer)
    reports: list[Mapping[str, Any]] = list(result.raw.get("reports", []))
    if as_json:
        print_json(dict(result.raw))
    else:
        print_reports(reports)
    if any(r.get("status") in PROBLEMS for r in reports):
        raise typer.Exit(1)


def print_reports(reports: list[Mapping[str, Any]]) -> None:
    """One row per (mapping, customer, period): ours, Stripe's and the verdict."""
    if not reports:
        console.print("Nothing to reconcile: no mapped metric has usage yet.")
        return
    table = Table("metric", "customer", "period", "local", "pushed", "stripe", "drift %", "status")
    for row in reports:
        status = str(row.get("status"))
        style = "red" if status in PROBLEMS else ("yellow" if status != "ok" else "green")
        table.add_row(
            cell(row.get("metric")),
            cell(row.get("customerRef")),
            cell(row.get("period")),
            cell(row.get("localTotal")),
            cell(row.get("pushedTotal")),
            cell(row.get("stripeTotal")),
            cell(row.get("driftPct")),
            f"[{style}]{status}[/{style}]",
        )
    console.print(table)
