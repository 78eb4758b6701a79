"""``stripemeter replay``: recompute counters from the ledger, report differences, repair with --apply."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stripemeter.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    err_console,
    load_settings,
    print_json,
    run_with_db,
)
from stripemeter.services.replay import (
    ReplayProgress,
    ReplayReport,
    ReplayScope,
    ReplayService,
    difference_to_wire,
    report_to_wire,
    resolve_instant,
)
from stripemeter.store.database import Database

TIME_HELP = "RFC 3339, 'now', or a duration before now such as -PT24H or -P7D."


def register(app: typer.Typer) -> None:
    """Add the ``replay`` command to the command tree."""
    app.command("replay")(replay)


def replay(
    metric: list[str] | None = typer.Option(
        None, "--metric", help="Only this metric (repeatable)."
    ),
    customer: str | None = typer.Option(None, "--customer", help="Only this customerRef."),
    since: str | None = typer.Option(None, "--since", help=TIME_HELP),
    until: str | None = typer.Option(None, "--until", help=TIME_HELP + " Exclusive."),
    apply: bool = typer.Option(False, "--apply", help="Repair the differences (default: dry run)."),
    tenant: str | None = typer.Option(
        None,
        "--tenant",
        envvar="STRIPEMETER_TENANT",
        help="Tenant id (default: the bootstrap tenant).",
    ),
    check: bool = typer.Option(
        False, "--check", help="Exit with status 1 when a difference was found (for monitoring)."
    ),
    as_json: bool = JsonOption,
    database_url: str | None = DatabaseOption,
) -> None:
    """Check every counter in scope against the ledger plus approved adjustments.

    Periods overlapping [since, until) are recomputed whole; --apply rewrites the ones that differ.
    """
    settings = load_settings(database_url)
    tenant_id = tenant or settings.bootstrap_tenant
    now = datetime.now(UTC)

    async def work(db: Database) -> ReplayReport:
        scope = ReplayScope(
            metrics=tuple(dict.fromkeys(metric)) if metric else None,
            customer_ref=customer,
            since=resolve_instant(since, now, "since"),
            until=resolve_instant(until, now, "until"),
        )
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[different]} different"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err_console, transient=as_json) as bar:
            task = bar.add_task("apply" if apply else "dry run", total=None, different=0)

            def advance(step: ReplayProgress) -> None:
                bar.update(task, completed=step.done, total=step.total, different=step.different)

            return await ReplayService(db).run(
                tenant_id, scope, apply=apply, actor="cli", progress=advance
            )

    report = run_with_db(settings, work)
    if as_json:
        print_json(report_to_wire(report))
    else:
        _print_report(report)
    if check and report.counters_different:
        raise typer.Exit(1)


def _print_report(report: ReplayReport) -> None:
    if report.differences:
        table = Table("metric", "customer", "period", "kind", "sum", "max", "last", "count")
        for difference in report.differences:
            wire = difference_to_wire(difference)
            stored, recomputed = wire["stored"] or {}, wire["recomputed"] or {}
            table.add_row(
                wire["metric"],
                wire["customerRef"],
                difference.period.label,
                wire["kind"],
                *(
                    _change(stored.get(f), recomputed.get(f))
                    for f in ("sum", "max", "last", "count")
                ),
            )
        console.print(table)
        if report.differences_truncated:
            console.print("(more differences than shown; use --json or narrow the scope)")
    verb = "repaired" if report.apply else "would repair (dry run; add --apply)"
    console.print(
        f"tenant {report.tenant_id}: {report.counters_checked} counters checked, "
        f"{report.counters_different} different, "
        f"{report.counters_repaired if report.apply else report.counters_different} {verb}"
    )


def _change(before: object, after: object) -> str:
    if before == after:
        return "" if before is None else str(before)
    return f"{'-' if before is None else before} -> {'-' if after is None else after}"
