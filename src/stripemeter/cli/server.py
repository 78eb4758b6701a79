"""``stripemeter serve`` and ``stripemeter migrate``."""

from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING

import typer
import uvicorn

from stripemeter.cli.common import DatabaseOption, console, err_console, load_settings
from stripemeter.config import Settings
from stripemeter.observability import logging as logs
from stripemeter.services.bootstrap import bootstrap
from stripemeter.store import migrate as migrations
from stripemeter.store.database import Database

if TYPE_CHECKING:
    from fastapi import FastAPI


def register(app: typer.Typer) -> None:
    """Add the server commands to the root command."""
    app.command()(serve)
    app.command()(migrate)


def serve(
    host: str | None = typer.Option(
        None, "--host", envvar="STRIPEMETER_HOST", help="Bind address."
    ),
    port: int | None = typer.Option(
        None, "--port", envvar="STRIPEMETER_PORT", help="Port (default 3000)."
    ),
    workers: int | None = typer.Option(None, "--workers", envvar="STRIPEMETER_WORKERS", min=1),
    database_url: str | None = DatabaseOption,
) -> None:
    """Run the API and its background work; migrates the embedded SQLite database on start."""
    settings = load_settings(database_url, host=host, port=port, workers=workers)
    logs.configure(settings.log_level, settings.log_format)
    if settings.is_sqlite:
        migrations.upgrade(settings.database_url)
        _bootstrap(settings)
    if settings.workers > 1:
        # Each worker process builds its own app from the same environment.
        import os

        os.environ["DATABASE_URL"] = settings.database_url
        uvicorn.run(
            "stripemeter.cli.server:worker_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="warning",
            access_log=False,
            loop="uvloop",
            http="httptools",
        )
        return
    from stripemeter.api.app import create_app

    app = create_app(settings)
    tune_gc(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def worker_app() -> FastAPI:
    """The app of one ``serve --workers N`` process, built from the environment."""
    from stripemeter.api.app import create_app

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    app = create_app(settings)
    tune_gc(settings)
    return app


def tune_gc(settings: Settings) -> None:
    """Make garbage collection cheap for a long-running server.

    Everything built at start (modules, routes, models, the app) is moved out of the collector's
    sight (``gc.freeze``), so full collections no longer rescan it; and the youngest generation is
    collected every ``gc_gen0_threshold`` allocations instead of 700, since ingest allocates a few
    objects per event that reference counting frees anyway. Only cycles wait a little longer.
    """
    gc.collect()
    gc.freeze()
    if settings.gc_gen0_threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(settings.gc_gen0_threshold, gen1, gen2)


def migrate(database_url: str | None = DatabaseOption) -> None:
    """Apply every pending schema migration."""
    settings = load_settings(database_url)
    migrations.upgrade(settings.database_url)
    console.print(f"Database is at revision {migrations.current(settings.database_url)}")


def _bootstrap(settings: Settings) -> None:
    async def run() -> str | None:
        db = Database.from_url(settings.database_url)
        try:
            return await bootstrap(db, settings.bootstrap_tenant)
        finally:
            await db.dispose()

    key = asyncio.run(run())
    if key is not None:
        err_console.print(
            f"First start: created tenant [bold]{settings.bootstrap_tenant}[/bold] and an admin key. "
            "Store it now; it is not shown again:"
        )
        err_console.print(key, markup=False, highlight=False)
