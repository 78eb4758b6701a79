"""``stripemeter worker``: the pusher loop without the HTTP API, for production deployments."""

from __future__ import annotations

import asyncio
import signal

import typer

from stripemeter.cli.common import DatabaseOption, err_console, load_settings
from stripemeter.observability import logging as logs
from stripemeter.services.alerts import alerts_from_settings
from stripemeter.services.catalog import MetricCatalog
from stripemeter.services.pricing import PricingServices
from stripemeter.services.pusher import crash_hook_from_env
from stripemeter.services.reconciliation import Reconciliation
from stripemeter.services.stripe_sync import StripeSync
from stripemeter.store import migrate as migrations
from stripemeter.store.database import Database


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the root command."""
    app.command()(worker)


def worker(
    database_url: str | None = DatabaseOption,
    interval: float | None = typer.Option(
        None,
        "--interval",
        envvar="STRIPEMETER_PUSH_INTERVAL_SECONDS",
        help="Seconds between ticks.",
    ),
) -> None:
    """Push counter changes to Stripe until stopped (SIGINT/SIGTERM); many may run at once."""
    settings = load_settings(database_url, push_interval_seconds=interval)
    logs.configure(settings.log_level, settings.log_format)
    if settings.uses_fake_stripe:
        err_console.print(
            "[red]error:[/red] a worker needs STRIPE_SECRET_KEY, or STRIPE_API_BASE pointing at "
            "a fake Stripe (stripemeter fake-stripe); the embedded fake lives in `serve` only"
        )
        raise typer.Exit(2)
    if settings.is_sqlite:
        migrations.upgrade(settings.database_url)

    async def run() -> None:
        db = Database.from_url(settings.database_url, pool_size=settings.db_pool_size)
        sync = StripeSync(settings, db, run_loop=True, hook=crash_hook_from_env())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        # The reconciler's schedule and the webhook recovery sweep share the worker; advisory
        # locks keep several workers from running the same reconciliation at once.
        reconciliation = Reconciliation(settings, db, sync)
        catalog = MetricCatalog(db, settings.lateness_window)
        alerts = alerts_from_settings(
            settings, db, catalog, PricingServices.build(settings, db, catalog)
        )
        await sync.start()
        await reconciliation.start()
        alerts.start()  # evaluation and deliveries; advisory locks and leases make it multi-process
        err_console.print(
            f"worker {sync.pusher.owner} pushing every {settings.push_interval_seconds}s"
        )
        try:
            await stop.wait()
        finally:
            await alerts.stop()
            await reconciliation.stop()
            await sync.stop()
            await db.dispose()

    asyncio.run(run())
