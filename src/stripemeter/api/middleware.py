"""Request context as plain ASGI middleware: request ids, body limits, a canonical log line, metrics."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Mapping
from typing import Any

import structlog
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stripemeter.api.errors import PayloadTooLarge, envelope
from stripemeter.observability import metrics
from stripemeter.observability.logging import log_request

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_QUIET = ("/health/", "/metrics")
_ids = random.Random()  # noqa: S311  # ids, not secrets; seeded from os.urandom (again per fork)
os.register_at_fork(after_in_child=_ids.seed)
# The request counter's children by labels: ``labels()`` validates and locks on every call.
_http_requests: dict[tuple[str, str, int], Counter] = {}


def request_id_for(scope: Scope, incoming: str) -> str:
    """The request's id (the caller's ``X-Request-Id`` when it is safe to echo), kept in its state."""
    # Ids must be unique, not secret: a seeded generator (reseeded in forked workers) spares the
    # system call ``secrets`` makes for every request.
    request_id = incoming if _SAFE_ID.match(incoming) else f"req_{_ids.getrandbits(64):016x}"
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id


def bind_log_context(request_id: str, **fields: str) -> None:
    """Bind the request's id (and tenant, key) to every line logged while it is served."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, **fields)


def start_request(scope: Scope, incoming: str) -> str:
    """Give the request its id and bind it to the log context."""
    request_id = request_id_for(scope, incoming)
    bind_log_context(request_id)
    return request_id


def finish_request(
    method: str,
    path: str,
    template: str,
    status: int,
    started: float,
    context: Mapping[str, Any],
) -> None:
    """Count the request and write its canonical log line with ``context`` (request id, tenant…)."""
    counter = _http_requests.get((method, template, status))
    if counter is None:
        counter = metrics.http_requests.labels(method, template, str(status))
        _http_requests[(method, template, status)] = counter
    counter.inc()
    if not path.startswith(_QUIET):
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        log_request(method, path, status, duration_ms, context)


def too_large(length: bytes | None, limit: int) -> bool:
    """Whether a ``Content-Length`` already says the body is over the limit."""
    return length is not None and length.isdigit() and int(length) > limit


class RequestContext:
    """Gives every request an id (``X-Request-Id`` in and out) and logs one line when it ends."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        request_id = start_request(scope, incoming)
        started = time.perf_counter()
        status = 500

        if too_large(length, self.max_body_bytes):
            response = envelope(
                413,
                "invalid_request_error",
                "payload_too_large",
                f"request body exceeds {self.max_body_bytes} bytes",
                headers={"x-request-id": request_id},
            )
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise PayloadTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            finish_request(
                scope["method"],
                scope["path"],
                template,
                status,
                started,
                structlog.contextvars.get_contextvars(),
            )
