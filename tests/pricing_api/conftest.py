"""Fixtures for the pricing API tests: the fake Stripe over real HTTP, settings pointing at it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import stripe

from stripemeter.config import Settings
from stripemeter.stripe.fake.server import build_server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def fake_stripe_url() -> Iterator[str]:
    """The fake Stripe served by uvicorn in a background thread for the whole session."""
    port = _free_port()
    server = build_server("127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake Stripe did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def settings(database_url: str, fake_stripe_url: str) -> Settings:
    """Settings for the test database, with Stripe pointed at the fake."""
    return Settings(
        database_url=database_url,
        log_format="console",
        log_level="WARNING",
        stripe_api_base=fake_stripe_url,
    )


@pytest.fixture
def stripe_client(fake_stripe_url: str) -> stripe.StripeClient:
    """The official client pointed at the fake, retries off."""
    return stripe.StripeClient(
        "sk_test_pricing",
        base_addresses={"api": fake_stripe_url, "meter_events": fake_stripe_url},
        max_network_retries=0,
    )
