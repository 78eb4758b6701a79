"""``stripemeter backfill FILE``: stream a large event file through ingest, with a progress bar."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from stripemeter.cli.common import DatabaseOption, load_settings, print_json
from stripemeter.domain.events import EventLimits
from stripemeter.services import backfill as backfills
from stripemeter.services.catalog import MetricCatalog
from stripemeter.services.ingest import IngestService
from stripemeter.store import migrate as migrations
from stripemeter.store.database import Database


def register(app: typer.Typer) -> None:
    """Add ``backfill`` to the root command."""
    app.command()(backfill)


def backfill(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    tenant: str = typer.Option(
        "default", "--tenant", envvar="STRIPEMETER_BOOTSTRAP_TENANT", help="Tenant id."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and count; write nothing."),
    file_format: str | None = typer.Option(None, "--format", help="jsonl or csv (default: guess)."),
    database_url: str | None = DatabaseOption,
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    """Ingest FILE (JSONL or CSV) in batches through the real ingest path; re-runs change nothing."""
    settings = load_settings(database_url)
    if settings.is_sqlite:
        migrations.upgrade(settings.database_url)
    with file.open(encoding="utf-8") as handle:
        fmt = file_format or backfills.detect_format(handle.readline(), file.name)
    size = os.path.getsize(file)

    async def run() -> backfills.Progress:
        db = Database.from_url(settings.database_url, pool_size=settings.db_pool_size)
        ingest = IngestService(
            db, MetricCatalog(db, settings.lateness_window), EventLimits(), writers=1
        )
        ingest.start()
        limits = EventLimits(max_future=timedelta(seconds=settings.max_future_seconds))
        service = backfills.BackfillService(db, ingest, limits)
        try:
            with (
                file.open(encoding="utf-8", newline="") as handle,
                Progress(
                    TextColumn("backfill"),
                    BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%  {task.fields[counts]}"),
                    TimeElapsedColumn(),
                    transient=as_json,
                    disable=as_json,
                ) as bar,
            ):
                task = bar.add_task("backfill", total=size, counts="")

                def show(progress: backfills.Progress) -> None:
                    bar.update(
                        task,
                        completed=handle.tell(),
                        counts=f"{progress.accepted} accepted, {progress.duplicate} duplicate, "
                        f"{progress.held} held, {progress.rejected} rejected",
                    )

                return await service.stream(
                    tenant, handle, fmt, dry_run, backfills.Progress(), on_batch=show
                )
        finally:
            await ingest.stop()
            await db.dispose()

    import asyncio

    result = asyncio.run(run())
    if as_json:
        print_json(result.as_dict())
    else:
        typer.echo(
            f"{result.total} events: {result.accepted} accepted, {result.duplicate} duplicate, "
            f"{result.held} held, {result.rejected} rejected, {result.conflict} conflict"
        )
    if result.rejected or result.conflict:
        raise typer.Exit(1)
