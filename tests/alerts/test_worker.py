"""``stripemeter worker`` evaluates alert rules too, so deployments need no API process for them."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stripemeter.stripe.fake.server import build_server
from tests.acceptance.support import (
    STRIPEMETER,
    create_key,
    environment,
    free_port,
    migrate,
    running_server,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def fake_stripe() -> Iterator[str]:
    """A FAKE Stripe in a thread (the worker refuses to run without a Stripe to push to)."""
    port = free_port()
    server = build_server("127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake Stripe did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


def test_a_worker_fires_an_alert_that_no_api_process_evaluates(
    tmp_path: Path, fake_stripe: str
) -> None:
    """With alerts off in the API, a held event still triggers the rule: the worker evaluated it."""
    database_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    migrate(database_url, tmp_path)
    key = create_key(database_url, tmp_path, "acme")
    stripe = {"STRIPE_API_BASE": fake_stripe, "STRIPE_SECRET_KEY": "sk_test_worker_alerts"}
    api_env = {**stripe, "STRIPEMETER_ALERTS_ENABLED": "false", "STRIPEMETER_PUSH_ENABLED": "false"}
    headers = {"Authorization": f"Bearer {key}"}
    with running_server(database_url, tmp_path, env=api_env) as url:
        rule = httpx.post(
            f"{url}/v1/alerts",
            json={
                "name": "held",
                "type": "held_events",
                "thresholds": [1],
                "channels": [{"type": "log"}],
            },
            headers=headers,
        )
        assert rule.status_code == 201, rule.text
        event = {"metric": "m", "customerRef": "c", "quantity": 1}
        batch = [{**event, "ts": "2025-01-20T00:00:00Z"}, {**event, "ts": "2025-01-10T00:00:00Z"}]
        ingested = httpx.post(f"{url}/v1/events/ingest", json={"events": batch}, headers=headers)
        assert ingested.json()["held"] == 1
        worker = subprocess.Popen(
            [STRIPEMETER, "worker"],
            cwd=tmp_path,
            env=environment(database_url, {**stripe, "STRIPEMETER_ALERTS_INTERVAL_SECONDS": "0.3"}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            triggered: list[dict[str, object]] = []
            while not triggered and time.monotonic() < deadline:
                states = httpx.get(
                    f"{url}/v1/alerts/states", params={"status": "triggered"}, headers=headers
                )
                triggered = states.json().get("states", states.json().get("data", []))
                time.sleep(0.3)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert triggered, "the worker never evaluated the rule"
    assert triggered[0]["ruleId"] == rule.json()["id"]
