"""The canonical request line: one JSON object per request, as the structlog chain renders it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from stripemeter.observability import logging as logs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    before = logs._request_line
    yield
    logs._request_line = before
    structlog.reset_defaults()


def test_json_request_line_has_the_chain_fields(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "json")
    context = {"request_id": "req-1", "tenant": "acme", "key_id": "key_1"}
    logs.log_request("POST", "/v1/events", 200, 1.25, context)
    structlog.get_logger("t").info("other", request_id="req-1")
    request_line, other_line = capfd.readouterr().err.splitlines()
    line = json.loads(request_line)
    assert line.pop("timestamp").endswith("Z")
    assert line == {
        "method": "POST",
        "path": "/v1/events",
        "status": 200,
        "duration_ms": 1.25,
        "event": "request",
        **context,
        "level": "info",
    }
    assert set(json.loads(other_line)) == {"event", "request_id", "level", "timestamp"}


def test_request_line_follows_the_level(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure("WARNING", "json")
    logs.log_request("POST", "/v1/events", 200, 1.0, {"request_id": "req-1"})
    assert capfd.readouterr().err == ""


def test_request_line_redacts_secret_fields_as_the_chain_does(
    capfd: pytest.CaptureFixture[str],
) -> None:
    logs.configure("INFO", "json")
    logs.log_request("POST", "/v1/events", 200, 1.0, {"request_id": "req-1", "api_key": "sk_1"})
    line = json.loads(capfd.readouterr().err)
    assert line["api_key"] == "[redacted]"
    assert line["request_id"] == "req-1"
