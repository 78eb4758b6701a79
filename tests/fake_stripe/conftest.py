"""Fixtures: the fake Stripe served by uvicorn over real HTTP, a webhook receiver, a stripe client."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from stripemeter.stripe.fake.server import build_server

WEBHOOK_SECRET = "whsec_test_fake"
#: A fixed, minute-aligned start for the fake clock (2026-08-03T12:00:00Z, a Monday).
START = 1_785_758_400
OPENAPI_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "stripe-openapi"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WebhookReceiver:
    """A tiny HTTP server that keeps every webhook POST (raw body and headers)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((body, dict(self.headers)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[bytes, dict[str, str]]]:
        """Wait until ``count`` webhooks arrived and return them."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)

    def types(self) -> list[str]:
        """Return the event types received so far, in order."""
        return [json.loads(body)["type"] for body, _ in self.received]


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver for the whole session."""
    rec = WebhookReceiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture(scope="session")
def fake_url(receiver: WebhookReceiver) -> Iterator[str]:
    """Start the fake Stripe on a free port in a background thread; yield its base URL."""
    port = _free_port()
    server = build_server(
        "127.0.0.1", port, webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET
    )
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


class ControlClient:
    """Drives ``/_control/`` of the fake."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=10)

    def reset(self) -> None:
        self.http.post("/_control/reset").raise_for_status()

    def set_clock(self, timestamp: int) -> None:
        self.http.post("/_control/clock", json={"set": timestamp}).raise_for_status()

    def advance_clock(self, seconds: int) -> None:
        self.http.post("/_control/clock", json={"advance": seconds}).raise_for_status()

    def now(self) -> int:
        now: int = self.http.get("/_control/clock").json()["now"]
        return now

    def fault(self, **spec: Any) -> None:
        self.http.post("/_control/faults", json=spec).raise_for_status()

    def requests(self, path: str = "") -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.http.get(
            "/_control/requests", params={"path": path}
        ).json()["requests"]
        return data

    def settings(self, **values: int) -> None:
        self.http.post("/_control/settings", json=values).raise_for_status()


@pytest.fixture
def control(fake_url: str, receiver: WebhookReceiver) -> Iterator[ControlClient]:
    """A fresh fake account at a frozen clock, and an empty webhook inbox."""
    ctl = ControlClient(fake_url)
    ctl.reset()
    ctl.set_clock(START)
    receiver.received.clear()
    yield ctl
    ctl.http.close()


@pytest.fixture
def client(fake_url: str, control: ControlClient) -> stripe.StripeClient:
    """The official stripe client pointed at the fake, with retries off."""
    return stripe.StripeClient(
        "sk_test_fake",
        base_addresses={"api": fake_url, "meter_events": fake_url},
        max_network_retries=0,
    )


@pytest.fixture
def openapi_dir() -> Path:
    """The shared Stripe OpenAPI fragments; their absence is a failure, not a skip."""
    assert OPENAPI_DIR.is_dir(), f"missing {OPENAPI_DIR}"
    return OPENAPI_DIR
