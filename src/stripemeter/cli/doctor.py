"""``stripemeter doctor``: is this deployment ready, and if not, what to fix."""

from __future__ import annotations

import typer
from rich.table import Table

from stripemeter.cli.common import DatabaseOption, JsonOption, console, print_json
from stripemeter.cli.diagnostics import Status, run_checks

DEFAULT_TIMEOUT = 5.0  # seconds for each network check
MARKS = {
    Status.OK: "[green]ok[/green]",
    Status.WARN: "[yellow]warn[/yellow]",
    Status.FAIL: "[red]FAIL[/red]",
    Status.SKIP: "[dim]skip[/dim]",
}


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the root command."""
    app.command("doctor")(doctor)


def doctor(
    timeout: float = typer.Option(
        DEFAULT_TIMEOUT,
        "--timeout",
        min=0.1,
        envvar="STRIPEMETER_DOCTOR_TIMEOUT",
        help="Seconds to wait for the database and Stripe.",
    ),
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Check configuration, database, Stripe, webhook secret and clocks; exit 1 on a problem."""
    checks = run_checks(database_url, timeout)
    healthy = not any(check.status is Status.FAIL for check in checks)
    if as_json:
        print_json({"healthy": healthy, "checks": [check.to_wire() for check in checks]})
    else:
        table = Table("check", "status", "finding", "fix")
        for check in checks:
            table.add_row(check.name, MARKS[check.status], check.message, check.fix or "")
        console.print(table)
        console.print("healthy" if healthy else "[red]problems found[/red]: see the fix column")
    if not healthy:
        raise typer.Exit(1)
