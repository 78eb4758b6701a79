"""Serve the fake Stripe over HTTP with uvicorn (``stripemeter fake-stripe``)."""

from __future__ import annotations

import logging

import uvicorn

from stripemeter.stripe.fake.app import create_app
from stripemeter.stripe.fake.state import FakeStripeState

logger = logging.getLogger(__name__)


def build_server(
    host: str,
    port: int,
    state_file: str | None = None,
    *,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
) -> uvicorn.Server:
    """Return a configured (not started) uvicorn server for the fake; tests run it in a thread."""
    state = FakeStripeState.load(state_file) if state_file else FakeStripeState()
    app = create_app(
        state, webhook_url=webhook_url, webhook_secret=webhook_secret, state_file=state_file
    )
    # h11, not httptools: dropped-connection faults rely on the h11 request cycle's transport.
    config = uvicorn.Config(
        app, host=host, port=port, http="h11", lifespan="off", log_level="warning"
    )
    return uvicorn.Server(config)


def run(host: str, port: int, state_file: str | None) -> None:
    """Serve the FAKE Stripe on ``host:port`` until interrupted; state kept in ``state_file``."""
    logger.warning("Starting the FAKE Stripe server on http://%s:%s (not Stripe)", host, port)
    build_server(host, port, state_file).run()
