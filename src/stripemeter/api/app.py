"""The application factory: settings in, a FastAPI app with its services and background work out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import structlog
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from stripemeter._version import __version__
from stripemeter.api import errors
from stripemeter.api.ingest_edge import IngestEdge, ingest_route
from stripemeter.api.middleware import RequestContext
from stripemeter.api.routes import (
    adjustments_api,
    backfill_api,
    events,
    limits,
    ops,
    reconciliation_api,
    webhooks_api,
)
from stripemeter.api.routes import alerts as alerts_api
from stripemeter.api.routes import audit as audit_api
from stripemeter.api.routes import customers as customers_api
from stripemeter.api.routes import held as held_api
from stripemeter.api.routes import ledger as ledger_api
from stripemeter.api.routes import mappings as mappings_api
from stripemeter.api.routes import metrics as metrics_api
from stripemeter.api.routes import projection as projection_api
from stripemeter.api.routes import pushes as pushes_api
from stripemeter.api.routes import replay as replay_api
from stripemeter.api.routes import simulations as simulations_api
from stripemeter.api.routes import usage as usage_api
from stripemeter.api.routes import widget as widget_tokens_api
from stripemeter.api.schemas import ERRORS
from stripemeter.config import Settings
from stripemeter.domain.events import EventLimits
from stripemeter.services.alerts import AlertService, alerts_from_settings
from stripemeter.services.app_secret import AppSecret
from stripemeter.services.catalog import MetricCatalog
from stripemeter.services.console import ConsoleOverview
from stripemeter.services.console_sessions import ConsoleSessions
from stripemeter.services.housekeeping import Housekeeping
from stripemeter.services.ingest import IngestService
from stripemeter.services.keys import KeyService
from stripemeter.services.pricing import PricingServices
from stripemeter.services.reconciliation import Reconciliation
from stripemeter.services.stripe_sync import StripeSync
from stripemeter.services.widget_tokens import WidgetTokenService
from stripemeter.store.database import Database
from stripemeter.ui import access_pages, admin, assets, billing_pages, customers, stripe_pages
from stripemeter.ui import widget as widget_pages

log = structlog.get_logger("stripemeter")


@dataclass
class Services:
    """Everything a request handler may use, built once per process."""

    settings: Settings
    db: Database
    keys: KeyService
    catalog: MetricCatalog
    ingest: IngestService
    housekeeping: Housekeeping
    _running: bool = False
    pricing: PricingServices = field(init=False)
    stripe_sync: StripeSync = field(init=False)
    reconciliation: Reconciliation = field(init=False)
    app_secret: AppSecret = field(init=False)
    widget_tokens: WidgetTokenService = field(init=False)
    console_sessions: ConsoleSessions = field(init=False)
    console: ConsoleOverview = field(init=False)
    alerts: AlertService = field(init=False)

    def __post_init__(self) -> None:
        self.pricing = PricingServices.build(self.settings, self.db, self.catalog)
        self.stripe_sync = StripeSync(self.settings, self.db)
        self.reconciliation = Reconciliation(
            self.settings,
            self.db,
            self.stripe_sync,
            price_updated=self.pricing.stripe.price_updated,
            run_loop=self.settings.reconcile_enabled and self.settings.push_enabled,
        )
        configured = self.settings.secret_key
        self.app_secret = AppSecret(
            self.db, configured.get_secret_value() if configured is not None else None
        )
        self.widget_tokens = WidgetTokenService(self.app_secret)
        self.console_sessions = ConsoleSessions(self.db, self.app_secret, self.keys)
        self.console = ConsoleOverview(self.db)
        self.alerts = alerts_from_settings(self.settings, self.db, self.catalog, self.pricing)
        if hasattr(self.ingest, "alert_hooks"):  # once ingest calls the hooks (docs/alerts.md)
            self.ingest.alert_hooks = self.alerts.hooks

    @classmethod
    def build(cls, settings: Settings, db: Database | None = None) -> Services:
        """Wire the services for these settings."""
        database = db or Database.from_url(settings.database_url, pool_size=settings.db_pool_size)
        catalog = MetricCatalog(database, settings.lateness_window)
        from datetime import timedelta

        limits = EventLimits(
            max_future=timedelta(seconds=settings.max_future_seconds),
            max_meta_bytes=settings.max_meta_bytes,
        )
        ingest = IngestService(
            database,
            catalog,
            limits,
            max_group=settings.max_group_events,
            writers=settings.writer_count,
        )
        return cls(
            settings, database, KeyService(database), catalog, ingest, Housekeeping(database)
        )

    async def start(self) -> None:
        """Start background work (the group-commit writers)."""
        self.ingest.start()
        self.housekeeping.start()
        await self.stripe_sync.start()
        self.alerts.start()
        self._running = True

    async def stop(self) -> None:
        """Finish queued work and release connections."""
        self._running = False
        await self.alerts.stop()
        await self.stripe_sync.stop()
        await self.housekeeping.stop()
        await self.ingest.stop()
        await self.db.dispose()

    def ingest_running(self) -> bool:
        """Whether the ingest writers are accepting work."""
        return self._running


class StripeMeterAPI(FastAPI):
    """The FastAPI app, with the ingest routes served ahead of its middleware and router."""

    ingest_edge: IngestEdge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self.ingest_edge
        if edge is not None and (single := ingest_route(scope)) is not None:
            scope["app"] = self
            await edge(scope, receive, send, single=single)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the ASGI app; the lifespan starts and stops the services."""
    settings = settings or (services.settings if services else Settings())
    built = services or Services.build(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await built.start()
        log.info("started", version=__version__, database=built.db.dialect)
        try:
            yield
        finally:
            await built.stop()

    app = StripeMeterAPI(
        title="StripeMeter",
        version=__version__,
        summary="Usage metering for Stripe billing.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        # Every operation may answer in the error envelope; routes add their own success shapes.
        responses=ERRORS,
    )
    app.state.services = built
    errors.install(app)
    app.include_router(ops.router)
    app.include_router(held_api.router)
    app.include_router(metrics_api.router)
    app.include_router(replay_api.router)
    app.include_router(audit_api.router)
    app.include_router(events.router)
    app.include_router(ledger_api.router)
    app.include_router(usage_api.router)
    app.include_router(projection_api.router)
    app.include_router(simulations_api.router)
    app.include_router(mappings_api.router)
    app.include_router(customers_api.router)
    app.include_router(pushes_api.router)
    app.include_router(reconciliation_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(adjustments_api.router)
    app.include_router(backfill_api.router)
    app.include_router(widget_tokens_api.router)
    app.include_router(alerts_api.router)
    app.include_router(limits.router)
    app.include_router(assets.router)
    app.include_router(admin.router)
    app.include_router(customers.router)
    app.include_router(stripe_pages.router)
    app.include_router(access_pages.router)
    app.include_router(billing_pages.router)
    app.include_router(widget_pages.router)
    app.add_middleware(RequestContext, max_body_bytes=settings.max_body_bytes)
    if settings.ingest_fast_path:
        app.ingest_edge = IngestEdge(built, max_body_bytes=settings.max_body_bytes)
    return app
