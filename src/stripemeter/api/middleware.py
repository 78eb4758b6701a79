"""Request context as plain ASGI middleware: request ids, body limits, a canonical log line, metrics."""

from __future__ import annotations

import re
import secrets
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stripemeter.api.errors import PayloadTooLarge, envelope
from stripemeter.observability import metrics

log = structlog.get_logger("stripemeter.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_QUIET = ("/health/", "/metrics")


class RequestContext:
    """Gives every request an id (``X-Request-Id`` in and out) and logs one line when it ends."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else "req_" + secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            response = envelope(
                413, "invalid_request_error", "payload_too_large",
                f"request body exceeds {self.max_body_bytes} bytes", headers={"x-request-id": request_id},
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
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            path = scope["path"]
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            metrics.http_requests.labels(scope["method"], template, str(status)).inc()
            if not path.startswith(_QUIET):
                log.info(
                    "request",
                    method=scope["method"],
                    path=path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )

